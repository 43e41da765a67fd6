"""Hot-node state machine: every edge of the transition table, the level boundaries, the
victim choice and the metrics parsing."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(("edge", "outcome"), sorted(TRANSITIONS.items()))
def test_every_edge_of_the_transition_table(
    edge: tuple[Level, str], outcome: tuple[str, bool]
) -> None:
    level, current = edge
    decision = decide_hot_node(USAGE_AT[level], current, PODS, SETTINGS)
    assert decision.level is level
    assert decision.taint == outcome[0]
    assert bool(decision.evict) is outcome[1]


def test_the_table_is_complete() -> None:
    assert set(TRANSITIONS) == {(lvl, t) for lvl in Level for t in ("", "warm", "hot")}


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
