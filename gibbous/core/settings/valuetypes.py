"""The kinds of values options take: how each is read, checked and written back.

Bad values fail with a ConfigError naming the key, the value and the accepted form.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gibbous.core.errors import ConfigError, GibbousError
from gibbous.core.grammar.duration import format_duration, parse_duration, shown
from gibbous.core.grammar.numerals import MAX_NUMERAL_CHARS, parse_int64
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


# ASCII only, as Go's strconv reads numbers: Python's float() also takes `٣`, `1_000`,
# `inf` and `nan` (gibbous/core/grammar/numerals.py).
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# float() of a 400-digit integer overflows; no option's range comes near 2^63
_LARGEST_INTEGER = 2**63


def _out_of_range(value: object, key: str, low: float | None, high: float | None) -> ConfigError:
    return ConfigError(f"{key}: {shown(value)} is out of range [{low}, {high}]")


def parse_number(value: object, key: str, low: float | None, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: invalid number {shown(value)}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMERAL_CHARS or not _DECIMAL_TEXT.fullmatch(text):
            raise ConfigError(f"{key}: invalid number {shown(value)}")
        number = float(text)
    elif isinstance(value, int) and abs(value) > _LARGEST_INTEGER:
        raise _out_of_range(value, key, low, high)
    else:
        number = float(value)
    if (
        not math.isfinite(number)
        or (low is not None and number < low)
        or (high is not None and number > high)
    ):
        raise _out_of_range(value, key, low, high)
    return number


def number(low: float | None = None, high: float | None = None) -> ValueType:
    return ValueType(
        f"number{_bounds(low, high)}", lambda v, k: parse_number(v, k, low, high), unchanged
    )


def parse_whole_number(value: object, key: str, low: int, high: int | None) -> int:
    whole: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        whole = int(value)
    elif isinstance(value, str):
        whole = parse_int64(value.strip())
    if whole is None:
        raise ConfigError(f"{key}: invalid whole number {shown(value)} (ASCII digits 0-9)")
    if whole < low or (high is not None and whole > high):
        raise _out_of_range(value, key, low, high)
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
        return compile_pattern(_text(value, key))
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
        items = []
        for index, item in enumerate(value):
            # YAML reads `- null`, `- 7` and `- yes` as something other than the text written
            if not isinstance(item, str):
                raise ConfigError(
                    f"{key}[{index}]: expected a string, got {yaml_kind(item)} "
                    "(quote it if it is meant as text)"
                )
            items.append(item.strip())
    elif value is None:
        items = []
    else:
        raise ConfigError(f"{key}: expected a list or a comma-separated string, got {shown(value)}")
    return tuple(items)


def yaml_kind(value: object) -> str:
    """What YAML made of a value, for messages: "null", "a list", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _text(value: object, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected text, got {yaml_kind(value)}")
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
TRIMMED_TEXT = ValueType("text", lambda v, k: _text(v, k).strip(), unchanged)
VERBATIM_TEXT = ValueType("text", _text, unchanged)
