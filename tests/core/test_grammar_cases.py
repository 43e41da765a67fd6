"""Edge cases of the grammar layer that the mutation report (docs/mutation.md) showed no
test held: boundaries, error messages a user reads, and Go's text/template printing rules.
Every expected value is written here from the rule it comes from (Go's time and template
packages, RE2's documented memory budget, the proleptic Gregorian calendar), never from
the code under test."""

from __future__ import annotations

import calendar
import math

import pytest

from gibbous.core.errors import ConfigError, InvalidQuantityError
from gibbous.core.grammar.duration import format_duration, parse_duration, shown
from gibbous.core.grammar.gotemplate import TemplateError, parse_template
from gibbous.core.grammar.numerals import parse_decimal, parse_whole
from gibbous.core.grammar.pattern import PatternError, compile_pattern
from gibbous.core.grammar.quantity import parse_quantity, to_millis, to_units
from gibbous.core.grammar.timestamps import epoch_seconds

TEN_YEARS = 10 * 365 * 86400  # the documented limit: 315,360,000 s

# --- durations: Go's units plus d and w -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1m1s", 61.0),  # parts add up
        ("1.5h", 5400.0),
        ("7d", 7 * 86400.0),
        ("2w", 14 * 86400.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("  10m ", 600.0),
        ("1s" * 32, 32.0),  # 64 characters: at the limit, accepted
    ],
)
def test_duration_text(text: str, seconds: float) -> None:
    assert parse_duration(text, "k") == seconds


@pytest.mark.parametrize("text", ["x1h", "1hx", "h", "1h x", "1y", "5", "-1s", "1s" * 32 + "1"])
def test_duration_text_refused_naming_key_and_value(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(text, "spec.ttl")
    message = str(raised.value)
    assert message.startswith("spec.ttl: ")
    if len(text) <= 64:
        assert f"invalid duration {text!r} (accepted: e.g. 30s, 10m, 1h30m, 7d)" in message
    else:
        assert "duration longer than 64 characters" in message


def test_empty_duration_says_what_to_do_instead() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration("  ", "spec.ttl")
    assert str(raised.value) == (
        "spec.ttl: empty duration (write 0 to disable where the key allows it, "
        "or leave the key out for its default)"
    )


def test_numbers_are_seconds_up_to_ten_years() -> None:
    assert parse_duration(30, "k") == 30.0 and isinstance(parse_duration(30, "k"), float)
    assert parse_duration(1.5, "k") == 1.5
    assert parse_duration(0, "k") == 0.0
    assert parse_duration(TEN_YEARS, "k") == float(TEN_YEARS)
    assert parse_duration(f"{TEN_YEARS}s", "k") == float(TEN_YEARS)
    for too_long in (TEN_YEARS + 1, float(TEN_YEARS) + 0.5, f"{TEN_YEARS + 1}s"):
        with pytest.raises(ConfigError) as raised:
            parse_duration(too_long, "spec.ttl")
        assert str(raised.value).startswith(f"spec.ttl: duration {too_long!r} ")
        assert "longer than the limit of ten years (315360000s)" in str(raised.value)


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf, -(10**400)])
def test_negative_and_infinite_durations_are_refused(value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(value, "spec.ttl")
    shown_value = "an integer of 401 digits" if value == -(10**400) else repr(value)
    assert str(raised.value) == f"spec.ttl: duration {shown_value} must be finite and not negative"


def test_a_huge_integer_is_too_long_not_an_overflow() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(10**400, "spec.ttl")
    assert str(raised.value) == (
        "spec.ttl: duration an integer of 401 digits is longer than the limit of ten years "
        "(315360000s)"
    )


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}])
def test_durations_of_other_types_are_refused(value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(value, "spec.ttl")
    assert str(raised.value) == (
        f"spec.ttl: invalid duration {value!r} (accepted: e.g. 30s, 10m, 1h30m, 7d)"
    )


def test_values_in_messages_are_cut_to_forty_characters() -> None:
    assert shown("x" * 38) == "'" + "x" * 38 + "'"  # 40 characters: whole
    assert shown("x" * 39) == "'" + "x" * 36 + "..."  # 41: cut to 37 and an ellipsis
    assert shown("x" * 10, limit=8) == "'xxxx..."
    assert shown(2**128 - 1) == "340282366920938463463374607431768211455"  # 128 bits
    assert shown(2**128) == "an integer of 39 digits"  # 129 bits
    assert shown(-(2**200)) == "an integer of 61 digits"
    assert shown(True) == "True"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1.5, "1.5s"),
        (59, "59s"),
        (600, "10m"),
        (3600, "1h"),
        (7200, "2h"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
        (172800 + 7200, "2d2h"),
    ],
)
def test_duration_formatting(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- RE2 patterns --------------------------------------------------------------------


def test_pattern_length_limit_is_512_characters() -> None:
    assert compile_pattern("a" * 512).search("a" * 512)
    with pytest.raises(PatternError, match=r"^longer than 512 characters$"):
        compile_pattern("a" * 513)


def test_patterns_search_unanchored_like_gos_matchstring() -> None:
    pattern = compile_pattern("b+")
    assert pattern.search("abbc") and not pattern.search("ac")
    assert pattern.source == "b+" and repr(pattern) == "UserPattern('b+')"


def test_pattern_errors_carry_re2s_reason() -> None:
    with pytest.raises(PatternError) as raised:
        compile_pattern("a(")
    assert str(raised.value) == "missing ): a("


def test_a_pattern_over_one_mebibyte_of_program_is_refused() -> None:
    # \pL (any Unicode letter) is hundreds of ranges; a hundred of them in a row needs more
    # than the 1 MiB Gibbous gives RE2 (RE2's own default, 8 MiB, would take it).
    assert compile_pattern(r"\pL{50}").search("x" * 50)
    with pytest.raises(PatternError) as raised:
        compile_pattern(r"\pL{100}")
    assert str(raised.value) == "pattern too large - compile failed"


# --- timestamps: days from the civil calendar ------------------------------------------


def test_epoch_seconds_on_every_month_boundary_from_1970_to_2401() -> None:
    wrong = []
    for year in range(1970, 2402):
        for month in range(1, 13):
            last = calendar.monthrange(year, month)[1]
            for day, clock in ((1, (0, 0, 0)), (last, (23, 59, 59))):
                stamp = f"{year:04d}-{month:02d}-{day:02d}T{clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d}Z"
                want = calendar.timegm((year, month, day, *clock, 0, 0, 0))
                if epoch_seconds(stamp) != want:
                    wrong.append(stamp)
    assert wrong == []


def test_epoch_seconds_reads_only_utc_rfc3339() -> None:
    # 1970-01-01 to 2027-01-01: 57 years, 14 of them leap (1972 ... 2024) = 20,819 days;
    # + 14 days = 20,833 days = 1,799,971,200 s; + 8 h = 1,800,000,000 s.
    assert epoch_seconds("2027-01-15T08:00:00Z") == 1_800_000_000
    assert epoch_seconds("2027-01-15T08:00:00.75Z") == 1_800_000_000
    for other in ("2027-01-15T08:00:00+01:00", "2027-01-15 08:00:00Z", "2027-1-15T08:00:00Z", ""):
        assert epoch_seconds(other) is None


def test_whole_numerals_up_to_32_characters() -> None:
    assert parse_whole("1" * 32) == int("1" * 32)
    assert parse_decimal("1" * 30 + ".5") == float("1" * 30 + ".5")
    assert parse_whole("1" * 33) is None


# --- Go's text/template: truth, and, or, comparisons, printing -------------------------


def _render(source: str, **data: object) -> str:
    return parse_template(source).render(data)


def test_and_or_return_an_argument_as_go_does() -> None:
    # text/template: "and" returns the first empty argument or the last argument; "or"
    # the first non-empty argument or the last argument.
    assert _render("{{ and 1 2 3 }}") == "3"
    assert _render("{{ and 1 0 3 }}") == "0"
    assert _render("{{ or 1 2 }}") == "1"
    assert _render('{{ or 0 "x" 3 }}') == "x"
    assert _render('{{ or 0 "" }}') == ""
    assert _render('{{ or "" 0 }}') == "0"


def test_truth_of_nil_and_of_values_without_a_rule() -> None:
    assert _render("{{ if .Nil }}yes{{ else }}no{{ end }}", Nil=None) == "no"
    assert _render("{{ if .F }}yes{{ else }}no{{ end }}", F=False) == "no"
    # Go: a struct (any value that is not a number, string, slice, map, pointer or bool)
    # is always true.
    assert _render("{{ if .S }}yes{{ else }}no{{ end }}", S=object()) == "yes"


def test_comparisons() -> None:
    assert _render("{{ eq 1 1 }} {{ eq 1 2 }} {{ ne 1 2 }}") == "true false true"
    assert _render("{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 3 }}") == "true true false false"
    assert _render('{{ eq "a" "a" }} {{ lt "a" "b" }}') == "true true"
    assert _render("{{ if eq .N 3 }}three{{ end }}", N=3) == "three"
    with pytest.raises(TemplateError, match=r"^incompatible types for comparison: 1 and '1'$"):
        _render('{{ eq 1 "1" }}')


def test_values_print_as_gos_fmt_prints_them() -> None:
    assert _render("{{ .Nil }}", Nil=None) == "<no value>"
    assert _render("{{ .T }} {{ .F }}", T=True, F=False) == "true false"
    assert _render("{{ .M }}", M={"b": 2, "a": 1}) == "map[a:1 b:2]"
    assert _render("{{ .L }}", L=[1, "x", None, False]) == "[1 x <no value> false]"
    assert _render("{{ .L }}", L=[{"k": True}, []]) == "[map[k:true] []]"
    assert _render("{{ .M }}", M={"k": [None]}) == "map[k:[<no value>]]"


# --- quantities that do not go through the memo ----------------------------------------


def test_numbers_convert_like_strings() -> None:
    assert to_millis(2, "cpu") == 2000
    assert to_millis(0.25, "cpu") == 250
    assert to_units(3, "memory") == 3
    assert to_units(1.5, "memory") == 2  # Value() rounds up


@pytest.mark.parametrize("value", ["-1", -1, -0.5])
def test_negative_quantities_name_field_and_value(value: object) -> None:
    for convert in (to_millis, to_units):
        with pytest.raises(InvalidQuantityError) as raised:
            convert(value, "spec.containers[0].resources.requests.cpu")
        text = '"-1"' if value == "-1" else str(value)
        assert str(raised.value) == (
            f"spec.containers[0].resources.requests.cpu: invalid quantity {text}: must not be "
            "negative (accepted: a Kubernetes quantity such as 500m, 1.5, 2Gi, 512M or 1e3)"
        )


def test_expression_errors_name_their_line() -> None:
    with pytest.raises(TemplateError, match=r'^line 2: bad string "\\q"$'):
        parse_template('a\n{{ "\\q" }}')
    with pytest.raises(TemplateError, match=r"^line 3: missing \)$"):
        parse_template("\n\n{{ (.A .B) }}")


def test_output_limit_is_64_kib_exactly() -> None:
    limit = 64 * 1024
    assert len(parse_template("x" * limit).render({})) == limit
    assert len(_render("{{ .S }}", S="y" * limit)) == limit
    with pytest.raises(TemplateError, match=r"^the rendered text is longer than 65536 characters$"):
        _render("{{ .S }}", S="y" * (limit + 1))


def test_render_budget_is_100_000_steps() -> None:
    # One step for the range, one per element for the `if` inside it (which writes nothing).
    loop = "{{ range .L }}{{ if . }}{{ end }}{{ end }}"
    assert _render(loop, L=[0] * 99_999) == ""
    with pytest.raises(TemplateError, match=r"^rendering takes more than 100000 steps"):
        _render(loop, L=[0] * 100_000)


def test_if_and_range_expressions_name_their_line() -> None:
    with pytest.raises(TemplateError, match=r"^line 2: missing \)$"):
        parse_template("\n{{ if (.A .B) }}x{{ end }}")
    with pytest.raises(TemplateError, match=r"^line 1: missing \)$"):
        parse_template("{{ range (.A .B) }}x{{ end }}")
    with pytest.raises(TemplateError, match=r"^line 1: unexpected end of action$"):
        parse_template("{{}}")


@pytest.mark.parametrize("word", ["with", "define", "template", "block", "break", "continue"])
def test_go_actions_outside_the_subset_are_refused_by_name(word: str) -> None:
    with pytest.raises(TemplateError, match=rf"^line 1: '{word}' is not supported$"):
        parse_template(f"{{{{ {word} .A }}}}x{{{{ end }}}}")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ([1], "[1]: not a string or number"),
        ("1" * 65, f'"{"1" * 65}": longer than 64 characters'),
        ("e-10", '"e-10": no digits'),  # apimachinery refuses a digitless exponent below -9
    ],
)
def test_quantity_errors_say_why(value: object, why: str) -> None:
    with pytest.raises(InvalidQuantityError) as raised:
        parse_quantity(value, "f")
    assert str(raised.value) == (
        f"f: invalid quantity {why} (accepted: a Kubernetes quantity such as 500m, 1.5, 2Gi, "
        "512M or 1e3)"
    )
