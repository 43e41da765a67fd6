import json

import pytest

from gibbous.core import keys
from gibbous.core.errors import InvalidAnnotationsError
from gibbous.core.podmodel.constraints import PriceCategory, parse_constraints


def test_parses_every_luna_annotation() -> None:
    constraints = parse_constraints(
        {
            keys.INSTANCE_OFFERINGS: "spot,on-demand",
            keys.INSTANCE_MAX_COST: "4.75",
            keys.INSTANCE_TYPE_REGEXP: r"^g5\.xlarge$",
            keys.INSTANCE_GPU_SKUS: "t4, P4,l4",
            keys.INSTANCE_MAX_GPUS: "2",
            keys.INSTANCE_FAMILY_INCLUSIONS: "G5,g6",
            keys.INSTANCE_FAMILY_EXCLUSIONS: "g3",
        }
    )
    assert constraints.offerings == frozenset({PriceCategory.SPOT, PriceCategory.ON_DEMAND})
    assert constraints.max_cost_per_hour == 4.75
    assert constraints.type_pattern is not None and constraints.type_pattern.search("g5.xlarge")
    assert not constraints.type_pattern.search("g5.2xlarge")
    assert constraints.gpu_skus == frozenset({"T4", "P4", "L4"})  # case-insensitive
    assert constraints.max_gpus == 2
    assert constraints.families_included == frozenset({"g5", "g6"})
    assert constraints.families_excluded == frozenset({"g3"})


def test_no_annotations_is_unconstrained() -> None:
    constraints = parse_constraints({})
    assert not constraints.has_any()


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        (keys.INSTANCE_OFFERINGS, "cheap", '"spot", "on-demand" or "spot,on-demand"'),
        (keys.INSTANCE_OFFERINGS, "spot,spot", "spot,on-demand"),
        (keys.INSTANCE_MAX_COST, "-1", "positive number"),
        (keys.INSTANCE_MAX_COST, "four", "positive number"),
        (keys.INSTANCE_TYPE_REGEXP, "g5.(", "RE2 regular expression"),
        (keys.INSTANCE_GPU_SKUS, "T4,,L4", "comma-separated list of GPU SKUs"),
        (keys.INSTANCE_MAX_GPUS, "two", "whole number"),
        (keys.INSTANCE_MAX_GPUS, "-1", "whole number"),
        (keys.INSTANCE_FAMILY_EXCLUSIONS, "g3;p2", "comma-separated list of instance families"),
        (keys.DO_NOT_EVICT, "yes", '"true" or "false"'),
    ],
)
def test_each_error_names_annotation_value_and_accepted_form(
    key: str, value: str, accepted: str
) -> None:
    with pytest.raises(InvalidAnnotationsError) as raised:
        parse_constraints({key: value})
    message = str(raised.value)
    assert key in message
    assert json.dumps(value) in message  # the value as the manifest's JSON
    assert accepted in message


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(InvalidAnnotationsError) as raised:
        parse_constraints({keys.INSTANCE_MAX_COST: "x", keys.INSTANCE_MAX_GPUS: "y"})
    assert len(raised.value.problems) == 2


def test_hostile_regexp_is_bounded() -> None:
    with pytest.raises(InvalidAnnotationsError, match="longer than"):
        parse_constraints({keys.INSTANCE_TYPE_REGEXP: "a" * 10_000})
    # Catastrophic for backtracking engines, linear for RE2.
    pattern = parse_constraints({keys.INSTANCE_TYPE_REGEXP: "(a+)+$"}).type_pattern
    assert pattern is not None
    assert not pattern.search("a" * 100_000 + "b")
