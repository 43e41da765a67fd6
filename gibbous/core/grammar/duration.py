"""Durations in configuration: Go-style (`1h30m`, `90s`, `500ms`) plus days and weeks (`7d`).

Digits are ASCII only (Python's `\\d` would read `٣s` as 3 seconds), text is at most
`MAX_DURATION_CHARS` characters, checked before any matching, and a duration is finite and
at most `MAX_DURATION_SECONDS`, so a value can neither overflow the date arithmetic it is
used in nor cost anything to refuse (docs/decisions.md, issue #32).
"""

from __future__ import annotations

import math
import re

from gibbous.core.errors import ConfigError

MAX_DURATION_CHARS = 64
# Ten years: far beyond any timeout, grace period or node lifetime, far below where
# `datetime + timedelta` overflows.
MAX_DURATION_SECONDS = 10 * 365 * 86400

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)", re.ASCII)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_ACCEPTED = "(accepted: e.g. 30s, 10m, 1h30m, 7d)"


def shown(value: object, limit: int = 40) -> str:
    """`repr(value)` cut to `limit` characters, for messages about values of any size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _negative(value: object, key: str) -> ConfigError:
    return ConfigError(f"{key}: duration {shown(value)} must be finite and not negative")


def _too_long(value: object, key: str) -> ConfigError:
    return ConfigError(
        f"{key}: duration {shown(value)} is longer than the limit of ten years "
        f"({MAX_DURATION_SECONDS}s)"
    )


def _checked(seconds: float, value: object, key: str) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise _negative(value, key)
    if seconds > MAX_DURATION_SECONDS:
        raise _too_long(value, key)
    return seconds


def parse_duration(value: object, key: str) -> float:
    """Seconds in `value`. Bare numbers are seconds; `0` disables where a key allows it.
    An empty text is refused: a key left out (or null) takes its default instead."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: invalid duration {value!r} {_ACCEPTED}")
    if isinstance(value, int):
        # compared as an integer first: float() of a 400-digit integer overflows (either sign)
        if value < 0:
            raise _negative(value, key)
        if value > MAX_DURATION_SECONDS:
            raise _too_long(value, key)
        return float(value)
    if isinstance(value, float):
        return _checked(value, value, key)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: invalid duration {shown(value)} {_ACCEPTED}")
    text = value.strip()
    if not text:
        raise ConfigError(
            f"{key}: empty duration (write 0 to disable where the key allows it, "
            "or leave the key out for its default)"
        )
    if len(text) > MAX_DURATION_CHARS:
        raise ConfigError(f"{key}: duration longer than {MAX_DURATION_CHARS} characters")
    if text == "0":
        return 0.0
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ConfigError(f"{key}: invalid duration {shown(value)} {_ACCEPTED}")
    return _checked(total, value, key)


def format_duration(seconds: float) -> str:
    """Shortest exact rendering: 600 -> `10m`, 5400 -> `1h30m`."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
