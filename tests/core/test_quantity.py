import json
import re
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gibbous.core.errors import InvalidQuantityError
from gibbous.core.grammar import quantity
from gibbous.core.grammar.quantity import (
    MAX_QUANTITY_CHARS,
    format_bytes,
    format_cpu,
    parse_quantity,
    to_millis,
    to_units,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", Fraction(1, 10)),
        ("1.5", Fraction(3, 2)),
        ("2Gi", 2 * 2**30),
        ("500M", 500 * 10**6),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1e-3", Fraction(1, 1000)),
        ("0.5Ki", 512),
        (".5", Fraction(1, 2)),
        ("5.", 5),
        ("+2", 2),
        ("-1", -1),
        ("187537279n", Fraction(187537279, 10**9)),
        ("1627520Ki", 1627520 * 1024),
        ("3u", Fraction(3, 10**6)),
        ("1k", 1000),
        ("2Ti", 2 * 2**40),
        ("1Ei", 2**60),
        (2, 2),
        (0.5, Fraction(1, 2)),
    ],
)
def test_parses_the_quantity_grammar(text: object, expected: object) -> None:
    assert parse_quantity(text, "f") == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "1.2.3", "1Kb", "Pi", "1 Gi", "1e", "--1", "1ki", True, None, "1e1001"]
)
def test_rejects_invalid_quantities_naming_field_and_value(text: object) -> None:
    with pytest.raises(InvalidQuantityError) as raised:
        parse_quantity(text, "spec.containers[0].resources.requests.cpu")
    message = str(raised.value)
    assert "spec.containers[0].resources.requests.cpu" in message
    assert json.dumps(text) in message  # the value as the manifest's JSON
    assert "500m" in message  # the accepted form


def test_conversions_round_up_like_upstream() -> None:
    assert to_millis("1m", "cpu") == 1
    assert to_millis("0.0001", "cpu") == 1  # MilliValue rounds up
    assert to_millis("1.5", "cpu") == 1500
    assert to_units("1.1", "memory") == 2
    assert to_units("1Gi", "memory") == 2**30


def test_negative_requests_are_rejected() -> None:
    with pytest.raises(InvalidQuantityError, match="negative"):
        to_millis("-1", "cpu")


def test_formatting() -> None:
    assert format_cpu(1500) == "1500m"
    assert format_cpu(2000) == "2"
    assert format_bytes(2 * 2**30) == "2Gi"
    assert format_bytes(1000) == "1000"


@given(st.integers(min_value=0, max_value=2**62))
def test_bytes_round_trip(count: int) -> None:
    assert to_units(format_bytes(count), "memory") == count


@given(st.integers(min_value=0, max_value=10**9))
def test_cpu_round_trip(millis: int) -> None:
    assert to_millis(format_cpu(millis), "cpu") == millis


# --- against upstream ---------------------------------------------------------------------
# tests/fixtures/quantity-vectors.json is what k8s.io/apimachinery v0.37.2's
# resource.ParseQuantity made of 3,500 inputs (scripts/quantity-vectors: curated edge cases,
# the examples of upstream's own tests, and seeded random strings over the alphabet).
VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "quantity-vectors.json").read_text()
)


def _deviation(text: str) -> str:
    """Where Gibbous is stricter or looser on purpose (docs/decisions.md), else ""."""
    if text != text.strip(" \t\n\r\v\f"):
        return "trimmed, as UnmarshalJSON trims"
    match = re.search(r"[eE]([+-]?[0-9]+)$", text, re.ASCII)
    if match and int(match.group(1)) > 1000:
        return "exponent above 1000 refused"
    return ""


def test_vectors_cover_the_issue_cases() -> None:
    inputs = {v["input"] for v in VECTORS}
    assert {"1E", "1E3", "²", "①", "٣", "１", "1_000", "1\u00a0", "Pi", "Ki"} <= inputs
    assert len(VECTORS) > 3000


def test_reads_every_upstream_vector_as_apimachinery_does() -> None:
    disagreements = []
    for vector in VECTORS:
        text = vector["input"]
        try:
            got: Fraction | None = parse_quantity(text, "f")
        except InvalidQuantityError:
            got = None
        want = Fraction(Decimal(vector["decimal"])) if vector["ok"] else None
        if got != want and not _deviation(text):
            disagreements.append((text, got, want))
    assert disagreements == []


def test_exa_and_unicode_digits() -> None:
    assert parse_quantity("1E", "f") == 10**18  # exa, not an exponent
    assert to_units("1E", "memory") == 10**18
    assert parse_quantity("1E3", "f") == 1000
    for text in ("²", "①", "٣", "１", "1\u00a0", "1_000", "1,5"):
        with pytest.raises(InvalidQuantityError):
            parse_quantity(text, "f")


# An independent reading of the grammar for the property test: one regular expression (fine
# for the short strings hypothesis makes) and the suffix tables as the docs list them.
_GRAMMAR = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)", re.ASCII)
_SUFFIXES: dict[str, Fraction] = {
    **{
        s: Fraction(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
    "": Fraction(1),
    **{f"{p}i": Fraction(2) ** (10 * (i + 1)) for i, p in enumerate("KMGTPE")},
}


def _reference(text: str) -> Fraction | None:
    if not text or len(text) > MAX_QUANTITY_CHARS:
        return None
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, suffix = match.groups()
    if re.fullmatch(r"[+-]?0*", text):
        return Fraction(0)  # upstream: the string ended in the sign or the zeros
    fraction = fraction or ""
    digits = whole + fraction
    value = Fraction(int(digits or "0"), 10 ** len(fraction))
    if suffix in _SUFFIXES:
        scale = _SUFFIXES[suffix]
        if not digits and suffix in ("Pi", "Ei"):
            return None
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        exponent = int(suffix[1:])
        if exponent > 1000 or (not digits and exponent < -9):
            return None
        scale = Fraction(10) ** max(exponent, -100)
    else:
        return None
    value *= scale
    nanos = value * 10**9
    if nanos.denominator != 1:
        value = Fraction(-((-nanos.numerator) // nanos.denominator), 10**9)
    if suffix.endswith("i"):
        value = min(value, Fraction(2**63 - 1))
    return -value if sign == "-" else value


@given(
    st.text(alphabet="0123456789.+-eEinumkKMGTPx ²٣１", max_size=12)
    | st.from_regex(
        r"[+-]?[0-9]{0,5}(\.[0-9]{0,4})?([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,3})?",
        fullmatch=True,
    )
)
def test_agrees_with_the_grammar_and_raises_nothing_else(text: str) -> None:
    try:
        got: Fraction | None = parse_quantity(text, "f")
    except InvalidQuantityError:
        got = None
    if text.strip(" ") != text:
        return  # trimmed, as UnmarshalJSON does (the reference reads ParseQuantity)
    assert got == _reference(text)


def _line_events(call: Any) -> int:
    """Python lines executed inside gibbous.core.grammar.quantity while `call` runs: an operation
    count that does not depend on the machine's speed."""
    count = 0
    filename = quantity.__file__

    def tracer(frame: FrameType, event: str, _: object) -> Any:
        nonlocal count
        if frame.f_code.co_filename == filename:
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        call()
    except InvalidQuantityError:
        pass
    finally:
        sys.settrace(None)
    return count


def test_parsing_is_linear_and_bounded_by_length() -> None:
    # The inputs of the report: a long run of digits ending in a bad character. The memo is
    # bypassed (parse_quantity directly) so every call really parses.
    counts = {
        n: _line_events(lambda n=n: parse_quantity("1" * n + "x", "f")) for n in (8, 16, 32, 63)
    }
    # A bounded number of lines per character, the same at every length (no backtracking).
    steps = [(counts[b] - counts[a]) / (b - a) for a, b in ((8, 16), (16, 32), (32, 63))]
    assert max(steps) <= 3
    assert max(steps) - min(steps) <= 0.5
    assert counts[8] <= 100
    # Past the limit nothing is scanned at all: 12,000 and 24,000 characters cost the same.
    long = [_line_events(lambda n=n: parse_quantity("1" * n + "x", "f")) for n in (12_000, 24_000)]
    assert long[0] == long[1] <= counts[8]
