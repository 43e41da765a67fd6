"""Numbers written as text in annotations and labels, read with ASCII-only rules.

Python's `int()` and `float()` accept far more than a Kubernetes user means: `int("²")`
passes `isdigit()` and then fails, `int("٣")` is 3, `float("1_000")` is 1000, and both take
`"inf"`, `"nan"` and surrounding Unicode white space. Luna's annotations, Gibbous's labels
and the node labels of NVIDIA's GPU feature discovery are plain ASCII decimals, and Go reads
them with `strconv`, so Gibbous reads them that way too: digits 0-9, an optional fraction,
at most `MAX_NUMERAL_CHARS` characters, checked before any matching. Every reader returns
None for anything else; callers say what is accepted.
"""

from __future__ import annotations

import re

MAX_NUMERAL_CHARS = 32

_WHOLE = re.compile(r"[0-9]+", re.ASCII)
_SIGNED = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
_INT64 = 2**63


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_NUMERAL_CHARS:
        return None
    return value


def parse_whole(value: object) -> int | None:
    """`"2"` -> 2; a non-negative ASCII integer, else None."""
    text = _text(value)
    return int(text) if text is not None and _WHOLE.fullmatch(text) else None


def parse_int64(value: object) -> int | None:
    """A signed ASCII integer in int64's range, as Go's strconv.ParseInt(value, 10, 64)
    reads it (node affinity's Gt and Lt), else None."""
    text = _text(value)
    if text is None or not _SIGNED.fullmatch(text):
        return None
    number = int(text)
    return number if -_INT64 <= number < _INT64 else None


def parse_decimal(value: object) -> float | None:
    """`"4.75"` -> 4.75, `".5"` -> 0.5; a non-negative finite ASCII decimal, else None."""
    text = _text(value)
    return float(text) if text is not None and _DECIMAL.fullmatch(text) else None
