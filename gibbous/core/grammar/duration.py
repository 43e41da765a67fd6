"""Durations in configuration: Go-style (`1h30m`, `90s`, `500ms`) plus days and weeks (`7d`)."""

from __future__ import annotations

import re

from gibbous.core.errors import ConfigError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object, key: str) -> float:
    """Seconds in `value`. Bare numbers are seconds; `0` disables where a key allows it."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: invalid duration {value!r} (accepted: e.g. 30s, 10m, 1h30m, 7d)")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{key}: duration {value!r} must not be negative")
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ConfigError(f"{key}: invalid duration {value!r} (accepted: e.g. 30s, 10m, 1h30m, 7d)")
    return total


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
