"""Numbers in annotations and labels: ASCII decimals only, as Go's strconv reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gibbous.core.grammar.numerals import parse_decimal, parse_int64, parse_whole


@pytest.mark.parametrize(
    ("text", "whole", "decimal"),
    [
        ("2", 2, 2.0),
        ("007", 7, 7.0),
        ("4.75", None, 4.75),
        (".5", None, 0.5),
        ("5.", None, 5.0),
        ("²", None, None),
        ("①", None, None),
        ("٣", None, None),
        ("１", None, None),
        ("1_000", None, None),
        ("1e3", None, None),
        ("inf", None, None),
        ("nan", None, None),
        ("-1", None, None),
        (" 1", None, None),
        ("1\u00a0", None, None),
        ("", None, None),
        (".", None, None),
        ("9" * 33, None, None),
    ],
)
def test_ascii_only(text: str, whole: int | None, decimal: float | None) -> None:
    assert parse_whole(text) == whole
    assert parse_decimal(text) == decimal


def test_int64_as_strconv_reads_it() -> None:
    assert parse_int64("-3") == -3 and parse_int64("+3") == 3
    assert parse_int64(str(2**63 - 1)) == 2**63 - 1
    assert parse_int64(str(2**63)) is None and parse_int64(str(-(2**63))) == -(2**63)
    assert parse_int64("٣") is None and parse_int64("1_0") is None


@given(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.floats()))
def test_never_raises_and_only_reads_ascii(value: object) -> None:
    for parse in (parse_whole, parse_decimal, parse_int64):
        result = parse(value)
        if result is not None:
            assert isinstance(value, str) and value.isascii()
