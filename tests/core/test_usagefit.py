"""Scale-down by usage while hot-node mitigation is on (gibbous.core.lifecycle.usagefit).

Every node below has 4 CPUs and 16 GiB, capacity and allocatable alike, so that the
thresholds are plain numbers: red 80 % CPU minus the 10-point headroom is 2800m, yellow
60 % is 2400m; memory: 70 % is 11.2 GiB, 65 % (yellow) 10.4 GiB. The usage candidate
threshold is 0.5 (2000m or 8 GiB). `binPackNodeUtilizationThreshold` is P15's 0.0: no node
in use goes by requests, so every drain of a node with pods below is the usage rule's.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.disruption import ScaleDownReview, review_scale_down
from gibbous.core.lifecycle.usagefit import (
    Measured,
    NodeCapacity,
    UsageInputs,
    UsageRule,
    UsageSnapshot,
    read_snapshot,
)
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod

CPU, MEMORY = 4000, 16 * 2**30
GI = 2**30
NOW = epoch_seconds("2026-02-01T00:00:00Z") or 0.0


def node(name: str, *, taint: str = "") -> dict[str, Any]:
    resources = {"cpu": f"{CPU}m", "memory": str(MEMORY), "pods": "110"}
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
        "spec": {
            "taints": [{"key": keys.HOT_NODE_TAINT, "value": taint, "effect": "NoSchedule"}]
            if taint
            else []
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, on: str, cpu: int = 1000, memory: int = GI) -> dict[str, Any]:
    made = make_pod(name, cpu=f"{cpu}m", memory=str(memory))
    made["spec"]["nodeName"] = on
    made["status"] = {"phase": "Running"}
    return made


def hot_config(**values: object) -> Config:
    return config(
        **{
            "manageHighUtilization.enabled": True,
            "scaleDown.binPackNodeUtilizationThreshold": 0.0,
            "scaleDown.delayAfterAdd": "0s",
            "scaleDown.maxDrainingPercent": "100",
            **values,
        }
    )


def review(
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    snapshot: UsageSnapshot | None,
    *,
    cfg: Config | None = None,
    hot_evictions: dict[str, float] | None = None,
) -> ScaleDownReview:
    cfg = cfg or hot_config()
    bound = ClusterPods(cfg.designation)
    bound.sync(pods)
    inputs = (
        None
        if snapshot is None
        else UsageInputs(
            UsageRule.from_settings(cfg.hot_node, cfg.scale_down), snapshot, hot_evictions or {}
        )
    )
    return review_scale_down(
        nodes,
        bound,
        existing_nodes(nodes, pods, {}, cfg, bound=bound),
        (),
        cfg,
        now=NOW,
        unneeded_since={n["metadata"]["name"]: NOW - 86400 for n in nodes},
        draining=frozenset(),
        usage=inputs,
    )


def snapshot(
    nodes: dict[str, tuple[int, int]], pods: dict[str, tuple[int, int]], *, age: float = 30
) -> UsageSnapshot:
    """Usage (CPU m, memory bytes) by node and by pod name (namespace default)."""
    return UsageSnapshot(
        {n: Measured(c, m, NOW - age) for n, (c, m) in nodes.items()},
        {f"default/{p}": Measured(c, m, NOW - age) for p, (c, m) in pods.items()},
        {n: NodeCapacity(CPU, MEMORY) for n in nodes},
    )


def light_and_target(target_cpu: int, *, age: float = 30, target_gi: int = 9) -> UsageSnapshot:
    """n0: two pods using 500m and 1 GiB each (25 %, a candidate). n1: one pod using
    `target_cpu` and `target_gi` (9 GiB: 56 % of memory, never a candidate itself)."""
    return snapshot(
        {"n0": (1000, 2 * GI), "n1": (target_cpu, target_gi * GI)},
        {"a": (500, GI), "b": (500, GI), "c": (target_cpu, target_gi * GI)},
        age=age,
    )


TWO_NODES = [node("n0"), node("n1")]
PODS = [pod("a", "n0"), pod("b", "n0"), pod("c", "n1")]


@pytest.mark.parametrize(
    ("target_cpu", "drained"),
    [
        (1700, True),  # 1700 + 1000 = 2700 < 2800
        (1800, False),  # 1800 + 1000 = 2800: red minus the headroom, not below it
        (2500, False),
    ],
)
def test_a_light_node_goes_only_if_its_pods_use_fits_below_red_minus_the_headroom(
    target_cpu: int, drained: bool
) -> None:
    result = review(TWO_NODES, PODS, light_and_target(target_cpu))
    assert [d.node for d in result.drains] == (["n0"] if drained else [])
    if drained:
        assert "measured use 0.25 < 0.5" in result.drains[0].why


def test_without_mitigation_p15s_threshold_keeps_every_node_in_use() -> None:
    assert review(TWO_NODES, PODS, None).drains == ()


def test_a_pod_without_metrics_means_requests_alone_never_zero() -> None:
    missing_b = light_and_target(1000)
    pods = dict(missing_b.pods)
    del pods["default/b"]
    unknown = UsageSnapshot(missing_b.nodes, pods, missing_b.capacity)
    assert review(TWO_NODES, PODS, unknown).drains == ()  # 0.0 by requests: kept
    # With a request threshold the node goes by requests, as without mitigation: 2000m
    # requested of 4000m is 0.5 < 0.6, and a and b (1000m each) fit in n1's 3000m free.
    by_requests = hot_config(**{"scaleDown.binPackNodeUtilizationThreshold": 0.6})
    (drain,) = review(TWO_NODES, PODS, unknown, cfg=by_requests).drains
    assert drain.node == "n0" and drain.why.startswith("utilization 0.50 < 0.6")


@pytest.mark.parametrize(("age", "drained"), [(170, True), (185, False)])
def test_metrics_older_than_three_minutes_are_stale(age: float, drained: bool) -> None:
    result = review(TWO_NODES, PODS, light_and_target(1000, age=age))
    assert bool(result.drains) is drained


def test_a_target_without_metrics_takes_nothing() -> None:
    usage = light_and_target(1000)
    no_target = UsageSnapshot(
        {"n0": usage.nodes["n0"]}, dict(usage.pods), {"n0": NodeCapacity(CPU, MEMORY)}
    )
    assert review(TWO_NODES, PODS, no_target).drains == ()


def test_the_nodes_own_figure_counts_when_larger_than_its_pods() -> None:
    # kubelet and system daemons: the node uses 2100m (52.5 %), its pods 1000m.
    usage = light_and_target(1000)
    busy = UsageSnapshot(
        {**usage.nodes, "n0": Measured(2100, 2 * GI, NOW - 30)}, usage.pods, usage.capacity
    )
    assert review(TWO_NODES, PODS, busy).drains == ()


@pytest.mark.parametrize(("ago", "drained"), [(300, False), (600, True)])
def test_a_node_mitigation_cooled_is_held_for_delay_after_hot_eviction(
    ago: float, drained: bool
) -> None:
    result = review(TWO_NODES, PODS, light_and_target(1000), hot_evictions={"n0": NOW - ago})
    assert bool(result.drains) is drained
    if not drained:
        assert "delayAfterHotEviction" in result.kept["n0"]


@pytest.mark.parametrize(
    ("taint", "target_cpu", "target_gi", "released"),
    [
        # 1300 + 1000 = 2300m < 2400m (yellow CPU); 8 + 2 = 10 GiB < 10.4 (yellow memory)
        ("warm", 1300, 8, True),
        ("warm", 1500, 8, False),  # 2500m: below red minus the headroom, not below yellow
        ("warm", 1300, 9, False),  # 11 GiB: below red minus the headroom, not below yellow
        ("hot", 1300, 8, True),
    ],
)
def test_a_tainted_target_takes_pods_only_below_yellow_and_is_released(
    taint: str, target_cpu: int, target_gi: int, released: bool
) -> None:
    nodes = [node("n0"), node("n1", taint=taint)]
    result = review(nodes, PODS, light_and_target(target_cpu, target_gi=target_gi))
    if released:
        (drain,) = result.drains
        assert drain.node == "n0" and drain.release == ("n1",)
    else:
        assert result.drains == ()


def test_a_held_tainted_node_is_no_target() -> None:
    nodes = [node("n0"), node("n1", taint="hot")]
    usage = light_and_target(1300, target_gi=8)
    result = review(nodes, PODS, usage, hot_evictions={"n1": NOW - 60})
    assert result.drains == ()


def test_read_snapshot_takes_timestamps_and_leaves_out_what_it_cannot_read() -> None:
    stamp = "2026-02-01T00:00:00Z"
    nodes = [node("n0"), node("n1")]
    node_items: list[dict[str, Any]] = [
        {
            "metadata": {"name": "n0"},
            "timestamp": stamp,
            "usage": {"cpu": "1500m", "memory": "1Gi"},
        },
        {"metadata": {"name": "n1"}, "usage": {"cpu": "250000000n", "memory": "512Mi"}},
        {"metadata": {"name": "n2"}, "usage": {"cpu": "-1", "memory": "1Gi"}},
        {"metadata": {"name": "n3"}, "usage": {"cpu": "lots", "memory": "1Gi"}},
    ]
    pod_items: list[dict[str, Any]] = [
        {
            "metadata": {"name": "a", "namespace": "default"},
            "containers": [
                {"name": "x", "usage": {"cpu": "100m", "memory": "1Mi"}},
                {"name": "y", "usage": {"cpu": "200m", "memory": "2Mi"}},
            ],
        },
        {"metadata": {"name": "b", "namespace": "default"}, "containers": []},
    ]
    read = read_snapshot(node_items, pod_items, nodes, read_at=NOW + 45)
    assert read.nodes == {
        "n0": Measured(1500, GI, NOW),
        "n1": Measured(250, 512 * 2**20, NOW + 45),
    }
    assert read.pods == {"default/a": Measured(300, 3 * 2**20, NOW + 45)}
    assert read.capacity == {"n0": NodeCapacity(CPU, MEMORY), "n1": NodeCapacity(CPU, MEMORY)}


# --- at real sizes ------------------------------------------------------------------------

# (requests m, use m, memory use GiB) of a pod; use from a fifth to twice its requests.
POD = st.tuples(
    st.sampled_from([250, 500, 1000]), st.sampled_from([0.2, 0.5, 1.0, 1.5, 2.0]), st.integers(0, 3)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    loads=st.lists(st.lists(POD, max_size=8), min_size=2, max_size=30),
    unknown=st.sets(st.integers(0, 239), max_size=20),
    cooled=st.sets(st.integers(0, 29), max_size=5),
    budget=st.integers(1, 6),
)
@example(loads=[[(1000, 0.5, 1)] * 2, [(1000, 1.7, 9)]], unknown=set(), cooled=set(), budget=1)
@example(loads=[[(500, 0.2, 0)] * 3] * 30, unknown=set(), cooled=set(), budget=6)
@example(loads=[[(1000, 2.0, 3)] * 4] * 10, unknown=set(), cooled=set(), budget=3)
@example(loads=[[(250, 0.2, 0)]] * 5, unknown={0, 1, 2, 3}, cooled={4}, budget=6)
def test_no_drain_pushes_a_target_over_red_minus_the_headroom_or_reads_missing_as_zero(
    loads: list[list[tuple[int, float, int]]],
    unknown: set[int],
    cooled: set[int],
    budget: int,
) -> None:
    """Hand-checked: a drained node with pods had every pod measured, used under half its
    capacity (the larger of CPU and memory) and was not cooled within the hold; the
    pods of all the nodes drained fit, in total and one by one, by requests into what the
    nodes that stay have free and by use into what they have below 2800m and 11.2 GiB
    (only the nodes with every pod measured count)."""
    cfg = hot_config(**{"scaleDown.maxDrainingNodes": str(budget)})
    fitted: list[list[tuple[int, float, int]]] = []
    for sizes in loads:  # kube-scheduler bound only what fits by requests
        kept: list[tuple[int, float, int]] = []
        for size in sizes:
            if sum(r for r, _, _ in [*kept, size]) <= CPU:
                kept.append(size)
        fitted.append(kept)
    names = [f"n{i:02d}" for i in range(len(fitted))]
    nodes = [node(n) for n in names]
    pods, measured, node_use = [], {}, {}
    pods_of: dict[str, list[tuple[int, int, int, bool]]] = {}  # req, cpu use, mem use, known
    for i, sizes in enumerate(fitted):
        total = [0, 0]
        for j, (requests, factor, memory_gi) in enumerate(sizes):
            name = f"p{i:02d}-{j}"
            pods.append(pod(name, names[i], cpu=requests))
            use = (int(requests * factor), memory_gi * GI)
            known = (i * 8 + j) not in unknown
            if known:
                measured[name] = use
            total = [total[0] + use[0], total[1] + use[1]]
            pods_of.setdefault(names[i], []).append((requests, *use, known))
        node_use[names[i]] = (total[0], total[1])
    result = review(
        nodes,
        pods,
        snapshot(node_use, measured),
        cfg=cfg,
        hot_evictions={names[i]: NOW - 60 for i in cooled if i < len(names)},
    )
    drained = {d.node for d in result.drains}
    assert len(drained) <= budget
    for name in drained:
        on = pods_of.get(name, [])
        if not on:
            continue
        assert all(known for *_, known in on), name
        cpu, memory = node_use[name]
        assert max(cpu / CPU, memory / MEMORY) < 0.5, name
        assert names.index(name) not in cooled
    staying = [n for n in names if n not in drained]
    free = {n: CPU - sum(r for r, *_ in pods_of.get(n, [])) for n in staying}
    room_cpu = {
        n: 2800 - node_use[n][0] for n in staying if all(known for *_, known in pods_of.get(n, []))
    }
    room_memory = {n: int(0.7 * MEMORY) - node_use[n][1] for n in room_cpu}
    moving = [p for n in drained for p in pods_of.get(n, [])]
    assert sum(r for r, *_ in moving) <= sum(free.values())
    assert sum(c for _, c, _, _ in moving) < sum(max(0, v) for v in room_cpu.values()) or not moving
    assert sum(m for _, _, m, _ in moving) <= sum(max(0, v) for v in room_memory.values())
    for requests, cpu, memory, _ in moving:
        assert any(
            free[n] >= requests and room_cpu[n] > cpu and room_memory[n] > memory for n in room_cpu
        ), (requests, cpu, memory)


@pytest.mark.parametrize(("loop_period", "drained"), [("5m", True), ("1m", False)])
def test_a_sample_is_fresh_for_two_loop_periods_and_at_least_three_minutes(
    loop_period: str, drained: bool
) -> None:
    # Samples 400 s old: fresh when the hot-node loop reads every 5 minutes (2 x 300 s =
    # 600 s), stale at the 1-minute default (max(180 s, 2 x 60 s) = 180 s). Stale usage
    # falls back to the request rule, which mitigation's 0.0 threshold keeps from removing.
    cfg = hot_config(**{"manageHighUtilization.loopPeriod": loop_period})
    result = review(TWO_NODES, PODS, light_and_target(1000, age=400), cfg=cfg)
    assert [d.node for d in result.drains] == (["n0"] if drained else [])


def test_a_held_node_does_not_stop_the_review_of_the_nodes_after_it() -> None:
    # n0 was cooled by mitigation a minute ago (held); n2, light as n0 and after it in the
    # list, goes: its pods' 1000m and 2 GiB fit on n1 (1000m + 1000m = 2000m < 2800m).
    nodes = [node("n0"), node("n1"), node("n2")]
    pods = [*PODS, pod("d", "n2"), pod("e", "n2")]
    usage = snapshot(
        {"n0": (1000, 2 * GI), "n1": (1000, 9 * GI), "n2": (1000, 2 * GI)},
        {"a": (500, GI), "b": (500, GI), "c": (1000, 9 * GI), "d": (500, GI), "e": (500, GI)},
    )
    result = review(nodes, pods, usage, hot_evictions={"n0": NOW - 60})
    assert [d.node for d in result.drains] == ["n2"]
    assert "delayAfterHotEviction" in result.kept["n0"]


@pytest.mark.parametrize(("pod_gi", "drained"), [(8, True), (10, False)])
def test_a_target_counts_its_pods_use_when_its_own_figure_is_lower(
    pod_gi: int, drained: bool
) -> None:
    # n1's own NodeMetrics say 1 GiB (a lagging figure), its pod c uses `pod_gi`: the larger
    # counts, per resource. Red memory 85 % less the 10-point headroom is 75 % of 16 GiB =
    # 12 GiB; n0's pods bring 2 GiB: 8 + 2 = 10 GiB stays below it, 10 + 2 = 12 GiB does not.
    usage = snapshot(
        {"n0": (1000, 2 * GI), "n1": (1000, 1 * GI)},
        {"a": (500, GI), "b": (500, GI), "c": (1000, pod_gi * GI)},
    )
    result = review(TWO_NODES, PODS, usage)
    assert [d.node for d in result.drains] == (["n0"] if drained else [])
