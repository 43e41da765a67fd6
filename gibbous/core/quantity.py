"""Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity).

Grammar, as upstream documents it:

    <quantity>        ::= <signedNumber><suffix>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

Values are exact (Fraction). Conversions to integers round up, as
Quantity.MilliValue() and Quantity.Value() do, so a request is never
under-counted.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from gibbous.core.errors import InvalidQuantityError

# Python `re` is fine here: the pattern is ours and has no nested quantifiers.
_QUANTITY = re.compile(r"([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)")

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
# Upstream caps exponents far below this; the cap keeps Fraction arithmetic cheap.
_MAX_EXPONENT = 64


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
    text = value.strip()
    match = _QUANTITY.fullmatch(text)
    if match is None or len(text) > 64:
        raise InvalidQuantityError(field, value)
    sign, number, suffix = match.groups()
    magnitude = Fraction(number)
    if suffix in _BINARY:
        magnitude *= _BINARY[suffix]
    elif suffix[:1] in ("e", "E"):
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise InvalidQuantityError(field, value, "exponent out of range")
        magnitude *= Fraction(10) ** exponent
    else:
        magnitude *= _DECIMAL[suffix]
    return -magnitude if sign == "-" else magnitude


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


def cached_millis(value: object) -> int | None:
    """Millis of a well-formed quantity string, from the memo; None otherwise (caller reports)."""
    return _scaled(value, 1000) if isinstance(value, str) else None


def cached_units(value: object) -> int | None:
    return _scaled(value, 1) if isinstance(value, str) else None


def _convert(value: object, field: str, scale: int) -> int:
    if isinstance(value, str):
        result = _scaled(value, scale)
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
