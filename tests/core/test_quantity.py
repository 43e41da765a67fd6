from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gibbous.core.errors import InvalidQuantityError
from gibbous.core.quantity import format_bytes, format_cpu, parse_quantity, to_millis, to_units


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
    "text", ["", "abc", "1.2.3", "1Kb", "Mi", "1 Gi", "1e", "--1", "1ki", True, None, "1e999"]
)
def test_rejects_invalid_quantities_naming_field_and_value(text: object) -> None:
    with pytest.raises(InvalidQuantityError) as raised:
        parse_quantity(text, "spec.containers[0].resources.requests.cpu")
    message = str(raised.value)
    assert "spec.containers[0].resources.requests.cpu" in message
    assert repr(text) in message
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
