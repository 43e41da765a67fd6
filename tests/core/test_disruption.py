"""Eviction rules and the drain budget."""

from __future__ import annotations

import pytest

from gibbous.core import keys
from gibbous.core.lifecycle.disruption import drain_budget, eviction_blocker, pods_on
from tests.factories import config, make_pod


@pytest.mark.parametrize(
    ("annotations", "blocked"),
    [
        ({keys.DO_NOT_EVICT: "true"}, True),
        ({keys.DO_NOT_EVICT: "True"}, True),
        ({keys.DO_NOT_EVICT: "false"}, False),
        ({keys.CA_SAFE_TO_EVICT: "false"}, True),
        ({keys.CA_SAFE_TO_EVICT: "true"}, False),
        ({keys.KARPENTER_DO_NOT_DISRUPT: "true"}, True),
        ({}, False),
    ],
)
def test_eviction_opt_outs_of_luna_cluster_autoscaler_and_karpenter(
    annotations: dict[str, str], blocked: bool
) -> None:
    assert bool(eviction_blocker(make_pod(annotations=annotations))) is blocked


def test_daemonset_mirror_and_finished_pods_neither_evicted_nor_keeping_the_node() -> None:
    daemon = make_pod("ds")
    daemon["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "x", "uid": "1"}]
    mirror = make_pod("mirror", annotations={"kubernetes.io/config.mirror": "abc"})
    done = make_pod("done")
    done["status"] = {"phase": "Succeeded"}
    app = make_pod("app")
    keep = make_pod("keep", managed=False, annotations={keys.DO_NOT_EVICT: "true"})
    pods = [daemon, mirror, done, app, keep]
    for pod in pods:
        pod["spec"]["nodeName"] = "n1"
    on_node = pods_on("n1", pods, config())
    assert [p["metadata"]["name"] for p in on_node.evictable] == ["app"]
    assert [(p["metadata"]["name"], why) for p, why in on_node.blocked] == [
        ("keep", f"{keys.DO_NOT_EVICT}=true")
    ]
    assert [f.pod["metadata"]["name"] for f in on_node.managed] == ["app"]


@pytest.mark.parametrize(
    ("max_nodes", "percent", "nodes", "draining", "budget"),
    [
        (1, 10.0, 5, 0, 1),  # percent rounds down to 0, at least one
        (5, 10.0, 30, 0, 3),  # 10% of 30
        (2, 100.0, 30, 0, 2),  # the node cap
        (2, 100.0, 30, 2, 0),  # already at the cap
        (3, 50.0, 4, 1, 1),
    ],
)
def test_drain_budget(
    max_nodes: int, percent: float, nodes: int, draining: int, budget: int
) -> None:
    cfg = config(
        **{"scaleDown.maxDrainingNodes": max_nodes, "scaleDown.maxDrainingPercent": percent}
    )
    assert drain_budget(cfg, nodes, draining) == budget
