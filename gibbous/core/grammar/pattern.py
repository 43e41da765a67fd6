"""User-supplied regular expressions, compiled with RE2.

Any pod author can put a regexp in an annotation, and the webhook, the extender
and the planner all evaluate it. RE2 matches in time linear in the input, so no
pattern can stall them (Python's backtracking `re` can be made to take
exponential time). Patterns are also capped in length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2

MAX_PATTERN_LENGTH = 512

_OPTIONS: Any = re2.Options()
_OPTIONS.max_mem = 1 << 20  # a pathological pattern fails to compile instead of growing
_OPTIONS.log_errors = False  # errors are reported to the user, not printed by RE2


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class UserPattern:
    """A compiled pattern that matches with search semantics (unanchored), like Go's MatchString."""

    source: str
    _compiled: Any

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None

    def __repr__(self) -> str:
        return f"UserPattern({self.source!r})"


def compile_pattern(source: str) -> UserPattern:
    """Compile `source`; raise PatternError with RE2's reason when it is not valid."""
    if len(source) > MAX_PATTERN_LENGTH:
        raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re2.compile(source, options=_OPTIONS)
    except Exception as error:  # re2 raises its own error type, not re.error
        reason = error.args[0] if error.args else b""
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise PatternError(text or "not a valid RE2 expression") from error
    return UserPattern(source, compiled)
