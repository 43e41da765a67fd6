"""Issue #28: `placeNodeSelector` and required node affinity. kube-scheduler's NodeAffinity
rule: a node fits when it has every `spec.nodeSelector` label and meets at least one of the
ORed `nodeSelectorTerms`, each an AND of matchExpressions (k8s.io/component-helpers
nodeaffinity). A new node meets a term only if Gibbous can put the labels it asks for on it:
a key `In` one value; `NotIn` and `DoesNotExist` on a key Gibbous never sets hold anyway.
Anything else (Exists, several values, Gt/Lt) gets no node and a reason."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.scaleup import plan_scale_up
from tests.factories import config, make_pod, offers


def with_affinity(*terms: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Any:
    pod = make_pod("p", cpu="3", node_selector=selector)
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": term} for term in terms]
            }
        }
    }
    return pod


def plan(pod: dict[str, Any], **options: object) -> Any:
    cfg = config(placeNodeSelector=True, **options)
    return plan_scale_up([describe_pod(pod, cfg)[0]], offers("aws", cfg), cfg, now=0.0)


def team(operator: str, *values: str) -> dict[str, Any]:
    return {"key": "team", "operator": operator, "values": list(values)}


def test_a_single_value_in_on_a_custom_key_is_put_on_the_node() -> None:
    result = plan(with_affinity([team("In", "ml")]))
    (launch,) = result.launches
    assert launch.labels["team"] == "ml"


def test_node_selector_and_affinity_labels_are_both_placed() -> None:
    result = plan(with_affinity([team("In", "ml")], selector={"pool": "batch"}))
    (launch,) = result.launches
    assert launch.labels["team"] == "ml" and launch.labels["pool"] == "batch"


def test_not_in_and_does_not_exist_hold_on_a_key_gibbous_never_sets() -> None:
    result = plan(
        with_affinity([team("NotIn", "web"), {"key": "legacy", "operator": "DoesNotExist"}])
    )
    (launch,) = result.launches
    assert "team" not in launch.labels and "legacy" not in launch.labels


@pytest.mark.parametrize(
    "requirement",
    [
        team("Exists"),
        team("In", "ml", "ai"),
        {"key": "rank", "operator": "Gt", "values": ["3"]},
    ],
)
def test_what_gibbous_cannot_place_gets_no_node_and_says_why(requirement: dict[str, Any]) -> None:
    result = plan(with_affinity([requirement]))
    assert result.launches == ()
    (reason,) = result.unsatisfiable.values()
    assert "cannot put on a new node" in reason and requirement["key"] in reason


def test_the_first_term_a_new_node_can_meet_is_the_one_placed() -> None:
    # Terms are ORed: the unplaceable first term does not stop the second.
    result = plan(with_affinity([team("Exists")], [team("In", "ml")]))
    (launch,) = result.launches
    assert launch.labels["team"] == "ml"


def test_contradicting_requirements_in_one_term_get_no_node() -> None:
    result = plan(with_affinity([team("In", "ml"), team("NotIn", "ml")]))
    assert result.launches == ()


def test_without_place_node_selector_nothing_is_placed() -> None:
    cfg = config()
    pod = with_affinity([team("In", "ml")])
    result = plan_scale_up([describe_pod(pod, cfg)[0]], offers("aws", cfg), cfg, now=0.0)
    assert result.launches == ()
    assert "placeNodeSelector=true" in next(iter(result.unsatisfiable.values()))
