"""Hot-node state machine: every edge of the transition table, the level boundaries, the
victim choice and the metrics parsing."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.lifecycle.hotnode import (
    TRANSITIONS,
    Level,
    PodUsage,
    Usage,
    decide_hot_node,
    level_of,
    node_usage,
    observed_annotation,
    pod_usage,
)
from gibbous.core.settings.options.lifecycle import HotNodeConfig

SETTINGS = HotNodeConfig(enabled=True)
USAGE_AT = {
    Level.RED: Usage(85, 20),
    Level.YELLOW: Usage(62, 20),
    Level.NEUTRAL: Usage(30, 20),
    Level.GREEN: Usage(5, 10),
}
PODS = (
    PodUsage("ns/a", 1000, 2**30, managed=True, evictable=True),
    PodUsage("ns/b", 3000, 2**29, managed=True, evictable=True),
)


HOT, WARM, NONE = "hot", "warm", ""

# Written by hand from Luna's Hot Node Mitigation (P15; luna-spec-from-seeds.md 4.12) and
# docs/decisions.md: red taints hot and evicts one pod, yellow taints warm (red to yellow
# lowers hot to warm), green removes the taint, the neutral band changes nothing.
HAND_TABLE = [
    # level, taint now, taint after, one pod evicted
    (Level.RED, NONE, HOT, True),
    (Level.RED, WARM, HOT, True),
    (Level.RED, HOT, HOT, True),
    (Level.YELLOW, NONE, WARM, False),
    (Level.YELLOW, WARM, WARM, False),
    (Level.YELLOW, HOT, WARM, False),
    (Level.NEUTRAL, NONE, NONE, False),
    (Level.NEUTRAL, WARM, WARM, False),
    (Level.NEUTRAL, HOT, HOT, False),
    (Level.GREEN, NONE, NONE, False),
    (Level.GREEN, WARM, NONE, False),
    (Level.GREEN, HOT, NONE, False),
]


@pytest.mark.parametrize(("level", "now", "after", "evicts"), HAND_TABLE)
def test_every_edge_of_the_transition_table(
    level: Level, now: str, after: str, evicts: bool
) -> None:
    decision = decide_hot_node(USAGE_AT[level], now, PODS, SETTINGS)
    assert decision.level is level
    assert decision.taint == after
    # The victim of a red node: ns/b, the larger CPU user (USAGE_AT's red is CPU).
    assert decision.evict == ("ns/b" if evicts else "")


def test_the_table_is_complete() -> None:
    assert {(level, now) for level, now, _, _ in HAND_TABLE} == {
        (lvl, t) for lvl in Level for t in (NONE, WARM, HOT)
    }
    assert set(TRANSITIONS) == {(level, now) for level, now, _, _ in HAND_TABLE}


def test_an_unknown_taint_value_counts_as_none() -> None:
    assert decide_hot_node(USAGE_AT[Level.NEUTRAL], "lukewarm", PODS, SETTINGS).taint == NONE
    assert decide_hot_node(USAGE_AT[Level.YELLOW], "lukewarm", PODS, SETTINGS).taint == WARM


percent = st.floats(min_value=0, max_value=100, allow_nan=False)
pod_usages = st.lists(
    st.builds(
        PodUsage,
        key=st.sampled_from([f"ns/p{i}" for i in range(12)]),
        cpu_millis=st.integers(0, 8000),
        memory_bytes=st.integers(0, 2**34),
        managed=st.booleans(),
        evictable=st.booleans(),
    ),
    max_size=40,
    unique_by=lambda p: p.key,
)


@settings(max_examples=120, deadline=None)
@given(cpu=percent, memory=percent, now=st.sampled_from([NONE, WARM, HOT]), pods=pod_usages)
@example(cpu=80.0, memory=0.0, now=NONE, pods=list(PODS))  # exactly at red CPU
@example(cpu=0.0, memory=85.0, now=WARM, pods=list(PODS))  # exactly at red memory
@example(cpu=81.0, memory=86.0, now=NONE, pods=list(PODS))  # memory further over: by memory
@example(cpu=59.99, memory=64.99, now=HOT, pods=[])  # just under yellow: the band keeps hot
@example(cpu=9.99, memory=14.99, now=HOT, pods=[])  # just under green on both: untainted
def test_decisions_follow_lunas_rules(
    cpu: float, memory: float, now: str, pods: list[PodUsage]
) -> None:
    """An oracle written from P15's rules with the default thresholds (red 80/85, yellow
    60/65, green below 10 and 15): the level, the taint and the victim."""
    decision = decide_hot_node(Usage(cpu, memory), now, pods, SETTINGS)
    if cpu >= 80 or memory >= 85:
        expected = (Level.RED, HOT)
    elif cpu >= 60 or memory >= 65:
        expected = (Level.YELLOW, WARM)
    elif cpu < 10 and memory < 15:
        expected = (Level.GREEN, NONE)
    else:
        expected = (Level.NEUTRAL, now)
    assert (decision.level, decision.taint) == expected
    managed = [p for p in pods if p.managed]
    candidates = [p for p in managed if p.evictable]
    if expected[0] is not Level.RED or len(managed) < 2 or not candidates:
        assert decision.evict == ""
        return
    victim = next(p for p in pods if p.key == decision.evict)
    assert victim.managed and victim.evictable
    if memory - 85 > cpu - 80:
        assert victim.memory_bytes == max(p.memory_bytes for p in candidates)
    else:
        assert victim.cpu_millis == max(p.cpu_millis for p in candidates)


@pytest.mark.parametrize(
    ("cpu", "memory", "level"),
    [
        (80, 0, Level.RED),
        (0, 85, Level.RED),
        (79.9, 84.9, Level.YELLOW),
        (60, 0, Level.YELLOW),
        (0, 65, Level.YELLOW),
        (59.9, 64.9, Level.NEUTRAL),
        (9.9, 15, Level.NEUTRAL),  # memory not below green
        (10, 14.9, Level.NEUTRAL),
        (9.9, 14.9, Level.GREEN),
    ],
)
def test_level_boundaries(cpu: float, memory: float, level: Level) -> None:
    assert level_of(Usage(cpu, memory), SETTINGS) is level


def test_the_victim_is_the_largest_user_of_the_red_resource() -> None:
    assert decide_hot_node(Usage(90, 20), "", PODS, SETTINGS).evict == "ns/b"  # CPU
    assert decide_hot_node(Usage(20, 95), "", PODS, SETTINGS).evict == "ns/a"  # memory


def test_do_not_evict_pods_unmanaged_pods_and_single_pod_nodes_are_spared() -> None:
    blocked = (
        PodUsage("ns/a", 1000, 1, managed=True, evictable=True),
        PodUsage("ns/b", 9000, 1, managed=True, evictable=False),
        PodUsage("ns/hog", 99000, 1, managed=False, evictable=True),
    )
    assert decide_hot_node(Usage(90, 0), "", blocked, SETTINGS).evict == "ns/a"
    single = decide_hot_node(Usage(90, 0), "", blocked[:1], SETTINGS)
    assert single.taint == keys.HOT_NODE_HOT and single.evict == "" and "single" in single.why
    none = decide_hot_node(Usage(90, 0), "", blocked[1:2] + blocked[1:2], SETTINGS)
    assert none.evict == "" and "may be evicted" in none.why


def test_metrics_are_read_from_the_wire_format() -> None:
    node = {"status": {"capacity": {"cpu": "4", "memory": "16Gi"}}}
    metrics = {"usage": {"cpu": "3200000000n", "memory": "8388608Ki"}}
    usage = node_usage(metrics, node)
    assert usage == Usage(80.0, 50.0)
    assert observed_annotation(usage) == "cpu=80.0,memory=50.0"
    assert node_usage({"usage": {"cpu": "bogus"}}, node) is None
    pod = {
        "containers": [
            {"name": "a", "usage": {"cpu": "250m", "memory": "1Mi"}},
            {"name": "b", "usage": {"cpu": "500000000n", "memory": "1048576"}},
        ]
    }
    assert pod_usage(pod) == (750.0, 2 * 2**20)
    assert pod_usage({"containers": []}) is None  # missing is not zero
