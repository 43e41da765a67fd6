"""The kinds of values options take: how each is read, checked and written back.

Bad values fail with a ConfigError naming the key, the value and the accepted form.
"""

from __future__ import annotations

import math
from typing import Any

from gibbous.core.errors import ConfigError, GibbousError
from gibbous.core.grammar.duration import format_duration, parse_duration
from gibbous.core.grammar.pattern import PatternError, UserPattern, compile_pattern
from gibbous.core.grammar.quantity import format_bytes, format_cpu, to_millis, to_units
from gibbous.core.podmodel.constraints import PriceCategory, parse_offerings
from gibbous.core.settings.option import ValueType, as_list, unchanged


def _bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{key}: invalid boolean {value!r} (accepted: true or false)")


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f", {low} to {high}"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def parse_number(value: object, key: str, low: float | None, high: float | None) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: invalid number {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: invalid number {value!r}") from None
    if (
        not math.isfinite(number)
        or (low is not None and number < low)
        or (high is not None and number > high)
    ):
        raise ConfigError(f"{key}: {value!r} is out of range [{low}, {high}]")
    return number


def number(low: float | None = None, high: float | None = None) -> ValueType:
    return ValueType(
        f"number{_bounds(low, high)}", lambda v, k: parse_number(v, k, low, high), unchanged
    )


def parse_whole_number(value: object, key: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{key}: invalid whole number {value!r}")
    try:
        whole = int(str(value).strip()) if not isinstance(value, int | float) else int(value)
    except ValueError:
        raise ConfigError(f"{key}: invalid whole number {value!r}") from None
    if whole < low or (high is not None and whole > high):
        raise ConfigError(f"{key}: {value!r} is out of range [{low}, {high}]")
    return whole


def whole_number(low: int = 0, high: int | None = None) -> ValueType:
    return ValueType(
        f"whole number{_bounds(low, high)}",
        lambda v, k: parse_whole_number(v, k, low, high),
        unchanged,
    )


def _is_unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "null", "none"))


def _optional_limit(value: object, key: str) -> int | None:
    return None if _is_unset(value) else parse_whole_number(value, key, 0, None)


def _optional_cost(value: object, key: str) -> float | None:
    return None if _is_unset(value) else parse_number(value, key, 0.0, None)


def _cpu(value: object, key: str) -> int:
    try:
        return to_millis(value, key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _bytes(value: object, key: str) -> int:
    try:
        return to_units(value, key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _pattern(value: object, key: str) -> UserPattern | None:
    if value is None or value == "":
        return None
    try:
        return compile_pattern(str(value))
    except PatternError as error:
        raise ConfigError(f"{key}: invalid RE2 regular expression {value!r}: {error}") from None


def _render_pattern(value: Any) -> object:
    return value.source if value is not None else ""


def _offerings(value: object, key: str) -> frozenset[PriceCategory]:
    try:
        return parse_offerings(str(value), key)
    except GibbousError as error:
        raise ConfigError(str(error)) from None


def _render_categories(value: Any) -> object:
    return ",".join(sorted(value, reverse=True))


def parse_string_list(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # `a,b`, and Helm's `{a,b}` and JSON's `["a","b"]` as --set writes them
        text = value.strip().strip("{}[]")
        items = [v.strip().strip('"').strip("'") for v in text.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    elif value is None:
        items = []
    else:
        raise ConfigError(f"{key}: expected a list or a comma-separated string, got {value!r}")
    return tuple(items)


def _text(value: object, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ConfigError(f"{key}: expected text, got {type(value).__name__}")
    return str(value)


def choice(options: tuple[str, ...]) -> ValueType:
    def parse(value: object, key: str) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ConfigError(f"{key}: invalid value {value!r} (accepted: {', '.join(options)})")
        return text

    return ValueType(f"one of {', '.join(options)}", parse, unchanged)


BOOLEAN = ValueType("boolean", _bool, unchanged)
PERCENT = ValueType("percent, 0 to 100", lambda v, k: parse_number(v, k, 0.0, 100.0), unchanged)
OPTIONAL_LIMIT = ValueType("whole number >= 0, or null (no limit)", _optional_limit, unchanged)
OPTIONAL_COST = ValueType("$/hr >= 0, or null (no limit)", _optional_cost, unchanged)
CPU = ValueType("CPU quantity (2, 500m)", _cpu, format_cpu)
BYTES = ValueType("memory quantity (4Gi, 512Mi)", _bytes, format_bytes)
DURATION = ValueType("duration (90s, 10m, 1h30m, 7d)", parse_duration, format_duration)
PATTERN = ValueType("RE2 regular expression (empty: none)", _pattern, _render_pattern)
PRICE_CATEGORIES = ValueType(
    "price categories, comma-separated (on-demand, spot)", _offerings, _render_categories
)
STRING_LIST = ValueType("list of strings", parse_string_list, as_list)
TEXT = ValueType("text", _text, unchanged)
TRIMMED_TEXT = ValueType("text", lambda v, k: str(v).strip(), unchanged)
VERBATIM_TEXT = ValueType("text", lambda v, k: str(v), unchanged)
