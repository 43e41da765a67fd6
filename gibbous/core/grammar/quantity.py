"""Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity).

Grammar, as upstream's scanner (`parseQuantityString`, not its doc comment) accepts it:

    <quantity>        ::= <sign>? "0"* <digits>? ("." <digits>?)? <suffix>
    <suffix>          ::= run of [eEinumkKMGTP], then an optional sign, then digits
    interpreted as    ::= "" | n | u | m | k | M | G | T | P | E      (decimal SI)
                        | Ki | Mi | Gi | Ti | Pi | Ei                  (binary SI)
                        | (e|E) <signed integer>                       (decimal exponent)

So `1E` is exa (10^18) while `1E3` is 1000; `.`, `-`, `Ki` and `e3` are all zero; a string
that ends in the sign or the leading zeros is zero. Digits are ASCII only, and no white space
is allowed inside (JSON values are trimmed of ASCII white space first, as `UnmarshalJSON`
does).

The scanner is one pass over at most `MAX_QUANTITY_CHARS` characters, checked before any
scanning, so a hostile string costs nothing. Values are exact (Fraction), rounded away from
zero to a multiple of 10^-9 and binary values capped at 2^63-1, as upstream stores them.
Conversions to integers round up, as Quantity.MilliValue() and Quantity.Value() do, so a
request is never under-counted.

Where Gibbous is stricter than upstream (`docs/decisions.md`): quantities longer than 64
characters, and exponents above 1000 or outside upstream's int32 (which it wraps around
silently), are refused with a message saying so.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

from gibbous.core.errors import InvalidQuantityError

MAX_QUANTITY_CHARS = 64
# 10^1000 is far beyond any resource; the bound keeps the exact arithmetic cheap. Below
# -100 every non-zero value of at most 64 characters rounds up to 1n, so the lower bound
# changes no result.
_MAX_EXPONENT = 1000
_MIN_EXPONENT = -100
_INT32 = 2**31
_NANO = 10**9
_MAX_BINARY = Fraction(2**63 - 1)

_DIGITS = frozenset("0123456789")
_SUFFIX_LETTERS = frozenset("eEinumkKMGTP")
_ASCII_SPACE = " \t\n\r\v\f"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def _digits_end(text: str, pos: int) -> int:
    end = len(text)
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    return pos


def _scan(text: str) -> tuple[bool, str, str, str, bool] | None:
    """(positive, integer digits, fraction digits, suffix, whether the number part has any
    digit), or None when the string is not a quantity. One left-to-right pass, as upstream's
    `parseQuantityString`."""
    end = len(text)
    pos = 0
    positive = True
    if pos < end and text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    zeros_start = pos
    while pos < end and text[pos] == "0":
        pos += 1
    if pos == end:
        return positive, "", "", "", True
    had_zeros = pos > zeros_start
    digits_end = _digits_end(text, pos)
    whole = text[pos:digits_end]
    pos = digits_end
    fraction = ""
    if pos < end and text[pos] == ".":
        fraction_end = _digits_end(text, pos + 1)
        fraction = text[pos + 1 : fraction_end]
        pos = fraction_end
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_LETTERS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    pos = _digits_end(text, pos)
    if pos != end:
        return None
    return positive, whole, fraction, text[suffix_start:], had_zeros or bool(whole or fraction)


def _exponent(suffix: str) -> int | None:
    """The exponent of an `e`/`E` suffix, read as Go's strconv.ParseInt(rest, 10, 64)."""
    rest = suffix[1:]
    digits = rest[1:] if rest[:1] in ("+", "-") else rest
    if not digits or any(c not in _DIGITS for c in digits):
        return None
    return int(rest)


def _round_to_nano(value: Fraction) -> Fraction:
    """Away from zero to a multiple of 10^-9, as upstream stores every quantity."""
    scaled = value * _NANO
    if scaled.denominator == 1:
        return value
    magnitude = -((-abs(scaled.numerator)) // scaled.denominator)
    return Fraction(magnitude if value > 0 else -magnitude, _NANO)


def parse_quantity(value: object, field: str) -> Fraction:
    """Parse a quantity given as a string or a YAML/JSON number."""
    if isinstance(value, bool) or value is None:
        raise InvalidQuantityError(field, value, "not a number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidQuantityError(field, value, "not finite")
        return Fraction(repr(value)) if "e" not in repr(value) else Fraction(value)
    if not isinstance(value, str):
        raise InvalidQuantityError(field, value, "not a string or number")
    if len(value) > MAX_QUANTITY_CHARS:
        raise InvalidQuantityError(field, value, f"longer than {MAX_QUANTITY_CHARS} characters")
    text = value.strip(_ASCII_SPACE)
    if not text:
        raise InvalidQuantityError(field, value, "empty")
    scanned = _scan(text)
    if scanned is None:
        raise InvalidQuantityError(field, value)
    positive, whole, fraction, suffix, has_digit = scanned
    magnitude = Fraction(int(whole + fraction or "0"), 10 ** len(fraction))
    if suffix in _DECIMAL:
        magnitude *= _DECIMAL[suffix]
    elif suffix in _BINARY:
        # Upstream reads a digitless number as zero on its fast path, but its big-decimal
        # path (taken for Pi and Ei) refuses it: `Ki` is 0, `Pi` is an error.
        if not has_digit and _BINARY[suffix] >= 2**50:
            raise InvalidQuantityError(field, value, "no digits")
        magnitude *= _BINARY[suffix]
    elif len(suffix) > 1 and suffix[0] in "eE":
        exponent = _exponent(suffix)
        if exponent is None:
            raise InvalidQuantityError(field, value, f"unknown suffix {suffix!r}")
        if not -_INT32 <= exponent < _INT32 or exponent > _MAX_EXPONENT:
            raise InvalidQuantityError(
                field, value, f"exponent out of range (at most {_MAX_EXPONENT})"
            )
        if not has_digit and exponent < -9:  # the same big-decimal path refusal as above
            raise InvalidQuantityError(field, value, "no digits")
        magnitude *= Fraction(10) ** max(exponent, _MIN_EXPONENT)
    else:
        raise InvalidQuantityError(field, value, f"unknown suffix {suffix!r}")
    magnitude = _round_to_nano(magnitude)
    if suffix in _BINARY and magnitude > _MAX_BINARY:
        magnitude = _MAX_BINARY
    return magnitude if positive else -magnitude


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


# The same few strings ("1", "2Gi", "500m") recur across every pod, and exact
# Fraction parsing dominates admission time, so conversions are memoised by text.
# Errors are not cached: they carry the field name.
@functools.lru_cache(maxsize=8192)
def _scaled(text: str, scale: int) -> int | None:
    try:
        quantity = parse_quantity(text, "")
    except InvalidQuantityError:
        return None
    return None if quantity < 0 else _ceil(quantity * scale)


def _memoised(value: object, scale: int) -> int | None:
    """The memo's answer for a well-formed quantity string; None otherwise (caller reports).
    Only short strings reach the memo, so it holds at most 8,192 x 64 characters."""
    if isinstance(value, str) and len(value) <= MAX_QUANTITY_CHARS:
        return _scaled(value, scale)
    return None


def cached_millis(value: object) -> int | None:
    return _memoised(value, 1000)


def cached_units(value: object) -> int | None:
    return _memoised(value, 1)


def _convert(value: object, field: str, scale: int) -> int:
    result = _memoised(value, scale)
    if result is not None:
        return result
    quantity = parse_quantity(value, field)
    if quantity < 0:
        raise InvalidQuantityError(field, value, "must not be negative")
    return _ceil(quantity * scale)


def to_millis(value: object, field: str) -> int:
    """Quantity in thousandths, rounded up (CPU in millicores)."""
    return _convert(value, field, 1000)


def to_units(value: object, field: str) -> int:
    """Quantity as a whole number, rounded up (bytes, GPUs, pods)."""
    return _convert(value, field, 1)


def format_cpu(millis: int) -> str:
    """`1500` -> `1500m`, `2000` -> `2`."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(count: int) -> str:
    """Largest binary suffix that divides exactly: `2147483648` -> `2Gi`."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def format_gib(count: int) -> str:
    """Human-readable GiB with up to two decimals, for reports."""
    gib = count / 2**30
    return f"{gib:.0f}Gi" if gib == int(gib) else f"{gib:.2f}Gi"
