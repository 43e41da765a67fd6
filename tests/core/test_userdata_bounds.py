"""The `aws.userData` template renderer and the user data are bounded (issue #32, second
pass): linear parsing, bounded nesting, a render budget, and EC2's 16 KB user-data limit."""

from __future__ import annotations

import time

import pytest

from gibbous.core.errors import ConfigError
from gibbous.core.grammar.gotemplate import TemplateError, parse_template
from gibbous.core.settings.userdata import (
    ClusterInfo,
    NodeBootstrap,
    UserDataType,
    check_user_data,
    render_user_data,
)


def _parse_seconds(source: str) -> float:
    started = time.perf_counter()
    with pytest.raises(TemplateError):
        parse_template(source)
    return time.perf_counter() - started


def test_ten_thousand_open_actions_parse_in_linear_time() -> None:
    small = _parse_seconds("{{" * 100)
    large = _parse_seconds("{{" * 10_000)
    # 100 times the input: linear is ~100x, the old quadratic parse was ~10 000x (11 s).
    assert large < max(1.0, 1000 * small)


def test_many_closed_actions_parse_in_linear_time() -> None:
    source = "{{ .MaxPods }}\n" * 4000  # 60 kB, under the template bound
    started = time.perf_counter()
    parse_template(source)
    assert time.perf_counter() - started < 2.0


def test_deep_nesting_is_a_configuration_error() -> None:
    source = "{{ if true }}" * 1000 + "x" + "{{ end }}" * 1000
    with pytest.raises(ConfigError, match="nested deeper than 64"):
        check_user_data(UserDataType.TEMPLATE, source)
    parens = "{{ " + "(" * 1000 + "true" + ")" * 1000 + " }}"
    with pytest.raises(ConfigError, match="nested deeper than 64"):
        check_user_data(UserDataType.TEMPLATE, parens)


def test_nesting_within_the_bound_still_renders() -> None:
    source = "{{ if true }}" * 64 + "x" + "{{ end }}" * 64
    assert parse_template(source).render({}) == "x"


def test_exponential_range_is_refused_by_the_render_budget() -> None:
    # 2 labels at depth 7 render 2^7 lines at start-up; real nodes carry 8 labels (8^7).
    source = "{{ range $.Labels }}" * 7 + "--node-labels=abcdefgh\n" + "{{ end }}" * 7
    labels = {f"k{i}": "v" for i in range(8)}
    with pytest.raises(TemplateError, match="longer than 65536"):
        parse_template(source).render({"Labels": labels})
    empty_body = "{{ range $.Labels }}" * 7 + "{{ end }}" * 7
    with pytest.raises(TemplateError, match="steps"):
        parse_template(empty_body).render({"Labels": labels})


def test_an_oversized_template_is_refused() -> None:
    with pytest.raises(TemplateError, match="65536"):
        parse_template("x" * (64 * 1024 + 1))


def test_user_data_over_16_kb_is_refused_naming_the_limit() -> None:
    script = "#!/bin/sh\n" + "echo 0123456789abcdef\n" * (17 * 1024 // 21)  # about 17 KB
    assert 16 * 1024 < len(script.encode()) < 18 * 1024
    with pytest.raises(ConfigError, match="16384 bytes") as raised:
        check_user_data(UserDataType.NONE, script)
    assert "aws.userData" in str(raised.value)
    with pytest.raises(ConfigError, match="16384 bytes"):
        check_user_data(UserDataType.TEMPLATE, script)


def test_user_data_at_the_limit_is_accepted() -> None:
    script = "x" * (16 * 1024)
    check_user_data(UserDataType.NONE, script)


def test_a_launch_whose_labels_push_user_data_over_the_limit_is_refused() -> None:
    template = "{{ range $k, $v := .Labels }}--node-labels={{ $k }}={{ $v }}\n{{ end }}"
    check_user_data(UserDataType.TEMPLATE, template)  # fine for the start-up sample
    node = NodeBootstrap(
        labels={f"example.com/label-{i}": "v" * 60 for i in range(200)}, taints=(), max_pods=110
    )
    with pytest.raises(ConfigError, match="16384 bytes"):
        render_user_data(
            UserDataType.TEMPLATE, template, ClusterInfo("c", "https://c", "Y2E="), node
        )
