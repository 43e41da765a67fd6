"""A pod's scheduling rules cost the autoscaler once per pod version, and a pod whose rules
are beyond the documented bound is set aside with an event (issue #32, second pass).

An attack with 5,000 required nodeSelectorTerms (about 450 KB, which the API server
accepts) cost 1 s of every step; twenty such pods stalled scale-up for everyone."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest

from gibbous.core import keys
from gibbous.core.planning import demand, podfacts
from gibbous.core.podmodel.rulesize import MAX_RULE_ITEMS, rule_items
from tests.autoscaler.test_loop import run, setup
from tests.factories import make_pod


def _with_terms(name: str, terms: list[dict[str, Any]]) -> dict[str, Any]:
    pod = make_pod(name, cpu="500m")
    pod["metadata"]["resourceVersion"] = "1"  # as the API server sets it
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
    return pod


def _attack_pod(name: str) -> dict[str, Any]:
    """The attack's shape: 5,000 terms of one expression with two values each."""
    return _with_terms(
        name,
        [
            {
                "matchExpressions": [
                    {"key": f"example.com/k{i}", "operator": "In", "values": ["a", "b"]}
                ]
            }
            for i in range(5000)
        ],
    )


def _large_real_pod(name: str, *, satisfiable: bool = True) -> dict[str, Any]:
    """50 terms of 3 expressions (1 + 1 + 3 values): larger than any manifest we know of."""
    arch = ["amd64", "arm64"] if satisfiable else ["sparc"]
    return _with_terms(
        name,
        [
            {
                "matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": arch},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "NotIn",
                        "values": [f"x{i}.small", f"x{i}.medium", f"x{i}.large"],
                    },
                ]
            }
            for i in range(50)
        ],
    )


def test_rule_items_counts_by_hand() -> None:
    # 50 terms x (1 term + (1+2) + (1+1) + (1+3)) = 50 x 10 = 500
    assert rule_items(_large_real_pod("p")) == 500
    # 5000 terms x (1 + (1+2)) = 20000
    assert rule_items(_attack_pod("p")) == 20_000
    # nodeSelector entries and tolerations count one each
    small = make_pod(
        "s", node_selector={"a": "1", "b": "2"}, tolerations=[{"key": "t", "operator": "Exists"}]
    )
    assert rule_items(small) == 3


def test_a_pod_beyond_the_bound_is_set_aside_and_the_others_get_their_nodes() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(_attack_pod("attack"), make_pod("good", cpu="500m"))
    run(clock, autoscaler, 180)
    assert cluster.schedule() == ["default/good"]
    assert len(provider.create_calls) == 1

    (warning,) = cluster.events_for("attack", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert "20000" in warning and str(MAX_RULE_ITEMS) in warning
    metrics = generate_latest(autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_unreadable_objects_total{kind="Pod"} 1.0' in metrics
    assert "gibbous_autoscaler_loop_errors_total 0.0" in metrics


def test_a_large_real_pod_is_still_planned() -> None:
    clock, _, cluster, autoscaler = setup()
    cluster.add(_large_real_pod("large"))
    run(clock, autoscaler, 180)
    assert cluster.schedule() == ["default/large"]
    assert cluster.events_for("large", keys.EVENT_NODE_ADD_REQUEST_WARNING) == []


@pytest.mark.parametrize("satisfiable", [True, False])
def test_a_large_pods_rules_are_read_once_per_version(
    monkeypatch: pytest.MonkeyPatch, satisfiable: bool
) -> None:
    counted = {"rules": 0, "affinity": 0}
    real_affinity = demand.pod_node_affinity  # type: ignore[attr-defined]

    def counted_rule_items(pod: Any) -> int:
        counted["rules"] += 1
        return rule_items(pod)

    def pod_node_affinity(pod: Any) -> Any:
        counted["affinity"] += 1
        return real_affinity(pod)

    monkeypatch.setattr(podfacts, "rule_items", counted_rule_items)
    monkeypatch.setattr(demand, "pod_node_affinity", pod_node_affinity)
    clock, _, cluster, autoscaler = setup()
    cluster.add(_large_real_pod("large", satisfiable=satisfiable))
    # 30 steps: the pod waits for its node (or, unsatisfiable, for ever)
    run(clock, autoscaler, 30)
    assert counted == {"rules": 1, "affinity": 1}
