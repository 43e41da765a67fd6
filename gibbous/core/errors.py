"""Errors raised by the core.

    GibbousError
    ├── InvalidQuantityError      a resource quantity does not parse
    ├── InvalidAnnotationError    one pod annotation is malformed
    ├── InvalidAnnotationsError   several problems on one pod, collected
    ├── ConfigError               configuration key or value is wrong
    ├── CatalogError              a catalog row is wrong (file:line)
    └── ManifestError             an input manifest cannot be understood

Every message names the offending field or key, the bad value, and what is
accepted, so the user can fix it without reading the source.
"""

from __future__ import annotations

import json

# Values are quoted in messages up to this many characters: a hostile 2 MB annotation must
# not become a 2 MB event, log line or admission denial.
QUOTED_CHARS = 80


def quoted(value: object) -> str:
    """`repr(value)`, shortened to QUOTED_CHARS with the full length said."""
    if isinstance(value, str) and len(value) > QUOTED_CHARS:
        return f"{value[:QUOTED_CHARS]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]}..."


def as_json(value: object) -> str:
    """`value` as JSON (`true`, `null`, `"2Gi"`: what the author of a manifest wrote), a long
    string shortened to QUOTED_CHARS with the full length said, other long values cut."""
    if isinstance(value, str) and len(value) > QUOTED_CHARS:
        shown = json.dumps(value[:QUOTED_CHARS], ensure_ascii=False)
        return f"{shown}... ({len(value)} characters)"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not a JSON value (a caller's Python object)
        text = repr(value)
    return text if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]}..."


class GibbousError(ValueError):
    """Base class: bad input, reported to the user with a clear message."""


class InvalidQuantityError(GibbousError):
    def __init__(self, field: str, value: object, why: str = "") -> None:
        self.field = field
        self.value = value
        detail = f": {why}" if why else ""
        super().__init__(
            f"{field}: invalid quantity {as_json(value)}{detail} "
            "(accepted: a Kubernetes quantity such as 500m, 1.5, 2Gi, 512M or 1e3)"
        )


class InvalidAnnotationError(GibbousError):
    def __init__(self, key: str, value: str, accepted: str, why: str = "") -> None:
        self.key = key
        self.value = value
        self.accepted = accepted
        detail = f" ({why})" if why else ""
        super().__init__(
            f"annotation {key}: invalid value {as_json(value)}{detail}; accepted: {accepted}"
        )


class InvalidAnnotationsError(GibbousError):
    """All problems found on one pod, so a user fixes them in one round."""

    def __init__(self, problems: list[GibbousError]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class ConfigError(GibbousError):
    pass


class CatalogError(GibbousError):
    def __init__(self, source: str, line: int, why: str) -> None:
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {why}")


class ManifestError(GibbousError):
    pass
