"""Eviction rules and the drain budget."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.disruption import (
    DrainReason,
    drain_budget,
    eviction_blocker,
    pods_on,
    review_scale_down,
)
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import existing_nodes
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


# --- scale-down review at real sizes --------------------------------------------------

NODE_CPU, NODE_MEMORY = 4000, 16 * 2**30  # allocatable of every node below (m, bytes)
SIZES = [(100, 128 * 2**20), (250, 512 * 2**20), (500, 2**30), (1000, 2 * 2**30)]


def bin_pack_node(name: str) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                keys.CREATED_BY: keys.CREATED_BY_VALUE,
                keys.PLACEMENT: keys.PLACEMENT_BIN_PACK,
                keys.ARCH: "amd64",
                keys.HOSTNAME: name,
            },
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": f"{NODE_CPU}m", "memory": str(NODE_MEMORY), "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def bound_pod(name: str, node: str, size: int) -> dict[str, object]:
    cpu, memory = SIZES[size]
    pod = make_pod(name, cpu=f"{cpu}m", memory=str(memory))
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": "Running"}
    return pod


def fitting(sizes: list[int]) -> list[int]:
    """The first pods that fit on a node together (kube-scheduler bound them)."""
    out: list[int] = []
    for size in sizes:
        if sum(SIZES[s][0] for s in [*out, size]) <= NODE_CPU:
            out.append(size)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    loads=st.lists(st.lists(st.integers(0, len(SIZES) - 1), max_size=16), min_size=2, max_size=30),
    budget=st.integers(1, 6),
)
@example(loads=[[0] * 7, [0] * 7, [3] * 4], budget=1)  # two at 17.5 %: not both may go
@example(loads=[[0] * 7, [0] * 7], budget=2)  # each fits on the other, not both
@example(loads=[[0] * 7, [3, 3, 3, 2, 0, 0]], budget=1)  # 7 x 100m, 300m left: one by one only
@example(loads=[[0] * 9, [0]], budget=1)  # 22.5 % is not under-used; the 2.5 % one goes
@example(loads=[[], [3] * 4, [3] * 4], budget=1)  # the empty one goes
@example(loads=[[1] * 3] + [[3] * 4] * 20, budget=3)  # nowhere to go: 20 full nodes
@example(loads=[[0] * 2 for _ in range(30)], budget=6)  # many light nodes at once
def test_drained_nodes_are_under_used_and_their_pods_fit_on_the_nodes_that_stay(
    loads: list[list[int]], budget: int
) -> None:
    """Hand-checked against Luna's rule (P15, luna-spec-from-seeds.md 4.11) with a
    threshold of 0.2: a drained node uses under 20 % of its CPU and of its memory, and
    the pods of every node drained in one review fit, in total and one by one, into the
    room the nodes that stay have; an empty node is always drained."""
    cfg = config(
        **{
            "scaleDown.maxDrainingNodes": str(budget),
            "scaleDown.maxDrainingPercent": "100",
            "scaleDown.delayAfterAdd": "0s",
        }
    )
    loads = [fitting(sizes) for sizes in loads]
    nodes = [bin_pack_node(f"n{i:02d}") for i in range(len(loads))]
    pods = [
        bound_pod(f"p{i:02d}-{j:02d}", f"n{i:02d}", size)
        for i, sizes in enumerate(loads)
        for j, size in enumerate(sizes)
    ]
    bound = ClusterPods(cfg.designation)
    bound.sync(pods)
    existing = existing_nodes(nodes, pods, {}, cfg, bound=bound)
    now = epoch_seconds("2026-02-01T00:00:00Z")
    assert now is not None
    review = review_scale_down(
        nodes,
        bound,
        existing,
        (),
        cfg,
        now=now,
        unneeded_since={str(n["metadata"]["name"]): now - 86400 for n in nodes},  # type: ignore[index]
        draining=frozenset(),
    )
    used = {f"n{i:02d}": [SIZES[s] for s in sizes] for i, sizes in enumerate(loads)}
    drained = {d.node for d in review.drains}
    assert len(drained) <= budget
    for name in drained:
        cpu = sum(c for c, _ in used[name])
        memory = sum(m for _, m in used[name])
        assert cpu < 0.2 * NODE_CPU and memory < 0.2 * NODE_MEMORY, (name, used[name])
    staying = [n for n in used if n not in drained]
    room_cpu = {n: NODE_CPU - sum(c for c, _ in used[n]) for n in staying}
    room_memory = {n: NODE_MEMORY - sum(m for _, m in used[n]) for n in staying}
    moving = [size for name in drained for size in used[name]]
    assert sum(c for c, _ in moving) <= sum(room_cpu.values())
    assert sum(m for _, m in moving) <= sum(room_memory.values())
    for cpu, memory in moving:
        assert any(room_cpu[n] >= cpu and room_memory[n] >= memory for n in staying)
    if any(not sizes for sizes in loads):
        assert drained


def _review_at(cfg: Any, nodes: list[dict[str, Any]], now: float) -> Any:
    bound = ClusterPods(cfg.designation)
    bound.sync([])
    return review_scale_down(
        nodes,
        bound,
        existing_nodes(nodes, [], {}, cfg, bound=bound),
        (),
        cfg,
        now=now,
        unneeded_since={str(n["metadata"]["name"]): now - 86400 for n in nodes},
        draining=frozenset(),
    )


def _created(name: str, stamp: str) -> dict[str, Any]:
    made: dict[str, Any] = bin_pack_node(name)
    made["metadata"]["creationTimestamp"] = stamp
    return made


def test_with_scale_down_off_every_node_past_its_ttl_goes_whatever_comes_before() -> None:
    # scaleDown.enabled false leaves nodeTTL in force: n1 and n2, created a month before,
    # are past their 1h TTL; n0 (created 10 minutes before) comes first and stays.
    cfg = config(
        **{
            "scaleDown.enabled": "false",
            "nodeTTL": "1h",
            "scaleDown.maxDrainingNodes": "5",
            "scaleDown.maxDrainingPercent": "100",
        }
    )
    now = epoch_seconds("2026-02-01T00:00:00Z") or 0.0
    nodes = [
        _created("n0", "2026-01-31T23:50:00Z"),
        _created("n1", "2026-01-01T00:00:00Z"),
        _created("n2", "2026-01-02T00:00:00Z"),
    ]
    review = _review_at(cfg, nodes, now)
    assert sorted((d.node, d.reason) for d in review.drains) == [
        ("n1", DrainReason.TTL),
        ("n2", DrainReason.TTL),
    ]


def test_a_node_younger_than_delay_after_add_does_not_keep_the_next_empty_one() -> None:
    # delayAfterAdd 10m: n0 (a minute old) stays; n1 (a month old, no pods) goes.
    cfg = config(**{"scaleDown.delayAfterAdd": "10m", "scaleDown.maxDrainingPercent": "100"})
    now = epoch_seconds("2026-02-01T00:00:00Z") or 0.0
    nodes = [_created("n0", "2026-01-31T23:59:00Z"), _created("n1", "2026-01-01T00:00:00Z")]
    review = _review_at(cfg, nodes, now)
    assert [d.node for d in review.drains] == ["n1"]
    assert review.kept["n0"] == "younger than scaleDown.delayAfterAdd"
