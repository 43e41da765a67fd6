"""Hot-node mitigation (`manageHighUtilization.*`): a state machine per node. Pure.

Utilization = usage / capacity x 100, CPU from metrics-server's nanocores, memory from its
working set. The level:

    red     CPU >= redCPU (80)    or  memory >= redMemory (85)
    yellow  CPU >= yellowCPU (60) or  memory >= yellowMemory (65)
    green   CPU <  greenCPU (10)  and memory <  greenMemory (15)
    neutral anything else (the hysteresis band)

Transition table, on the node's taint `gibbous.dev/hot-node` (none, warm, hot):

    level    | none        | warm        | hot
    ---------+-------------+-------------+------------
    red      | hot + evict | hot + evict | hot + evict
    yellow   | warm        | warm        | warm
    neutral  | none        | warm        | hot
    green    | none        | none        | none

"evict": the one managed pod with the highest demand of the resource that is red (CPU or
memory, the larger excess first) that the eviction rules allow, ranked by its PodMetrics;
a pod without metrics is not ranked (missing is not zero). One eviction per node per loop.

Scope: bin-pack nodes Gibbous created. A bin-pack node with a single managed pod is tainted
but not evicted from (the pod would only move its heat elsewhere, and the node is its own);
bin-select nodes and nodes Gibbous did not create are left alone, as in Luna (P15).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gibbous.core import keys
from gibbous.core.errors import GibbousError
from gibbous.core.grammar.quantity import parse_quantity
from gibbous.core.podmodel.pods import as_map
from gibbous.core.settings.options.lifecycle import HotNodeConfig


class Level(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    NEUTRAL = "neutral"
    GREEN = "green"


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    memory_percent: float


def level_of(usage: Usage, settings: HotNodeConfig) -> Level:
    if usage.cpu_percent >= settings.red_cpu or usage.memory_percent >= settings.red_memory:
        return Level.RED
    if usage.cpu_percent >= settings.yellow_cpu or usage.memory_percent >= settings.yellow_memory:
        return Level.YELLOW
    if usage.cpu_percent < settings.green_cpu and usage.memory_percent < settings.green_memory:
        return Level.GREEN
    return Level.NEUTRAL


# (level, current taint value) -> (new taint value, evict one pod)
TRANSITIONS: Mapping[tuple[Level, str], tuple[str, bool]] = {
    (Level.RED, ""): (keys.HOT_NODE_HOT, True),
    (Level.RED, keys.HOT_NODE_WARM): (keys.HOT_NODE_HOT, True),
    (Level.RED, keys.HOT_NODE_HOT): (keys.HOT_NODE_HOT, True),
    (Level.YELLOW, ""): (keys.HOT_NODE_WARM, False),
    (Level.YELLOW, keys.HOT_NODE_WARM): (keys.HOT_NODE_WARM, False),
    (Level.YELLOW, keys.HOT_NODE_HOT): (keys.HOT_NODE_WARM, False),
    (Level.NEUTRAL, ""): ("", False),
    (Level.NEUTRAL, keys.HOT_NODE_WARM): (keys.HOT_NODE_WARM, False),
    (Level.NEUTRAL, keys.HOT_NODE_HOT): (keys.HOT_NODE_HOT, False),
    (Level.GREEN, ""): ("", False),
    (Level.GREEN, keys.HOT_NODE_WARM): ("", False),
    (Level.GREEN, keys.HOT_NODE_HOT): ("", False),
}


@dataclass(frozen=True)
class PodUsage:
    key: str
    cpu_millis: float
    memory_bytes: float
    managed: bool
    evictable: bool


@dataclass(frozen=True)
class HotNodeDecision:
    level: Level
    taint: str  # "" (no taint), warm or hot
    evict: str  # pod key, or ""
    why: str


def decide_hot_node(
    usage: Usage,
    current_taint: str,
    pods: Sequence[PodUsage],
    settings: HotNodeConfig,
) -> HotNodeDecision:
    level = level_of(usage, settings)
    current = current_taint if current_taint in (keys.HOT_NODE_WARM, keys.HOT_NODE_HOT) else ""
    taint, evict = TRANSITIONS[(level, current)]
    summary = f"cpu {usage.cpu_percent:.0f}%, memory {usage.memory_percent:.0f}%: {level}"
    if not evict:
        return HotNodeDecision(level, taint, "", summary)
    managed = [p for p in pods if p.managed]
    if len(managed) <= 1:
        return HotNodeDecision(level, taint, "", f"{summary}; a single managed pod is left alone")
    candidates = [p for p in managed if p.evictable]
    if not candidates:
        return HotNodeDecision(level, taint, "", f"{summary}; no managed pod may be evicted")
    cpu_excess = usage.cpu_percent - settings.red_cpu
    memory_excess = usage.memory_percent - settings.red_memory
    by_memory = memory_excess > cpu_excess
    victim = max(
        candidates,
        key=lambda p: (
            (p.memory_bytes, p.cpu_millis, p.key)
            if by_memory
            else (p.cpu_millis, p.memory_bytes, p.key)
        ),
    )
    resource = "memory" if by_memory else "CPU"
    return HotNodeDecision(
        level, taint, victim.key, f"{summary}; evicting {victim.key}, the largest {resource} user"
    )


def observed_annotation(usage: Usage) -> str:
    """What the extender reads to keep bin-pack pods away from nodes near the thresholds."""
    return f"cpu={usage.cpu_percent:.1f},memory={usage.memory_percent:.1f}"


def _amount(value: object, field: str, scale: int) -> float | None:
    try:
        return float(parse_quantity(value, field) * scale)
    except GibbousError:
        return None


def node_usage(node_metrics: Mapping[str, Any], node: Mapping[str, Any]) -> Usage | None:
    """Usage / capacity from a NodeMetrics item and its Node; None when either is unreadable."""
    usage = as_map(node_metrics.get("usage"))
    capacity = as_map(as_map(node.get("status")).get("capacity"))
    cpu_used = _amount(usage.get("cpu"), "usage.cpu", 1000)
    memory_used = _amount(usage.get("memory"), "usage.memory", 1)
    cpu_total = _amount(capacity.get("cpu"), "capacity.cpu", 1000)
    memory_total = _amount(capacity.get("memory"), "capacity.memory", 1)
    if (
        None in (cpu_used, memory_used, cpu_total, memory_total)
        or not cpu_total
        or not memory_total
    ):
        return None
    assert cpu_used is not None and memory_used is not None
    return Usage(100 * cpu_used / cpu_total, 100 * memory_used / memory_total)


def pod_usage(pod_metrics: Mapping[str, Any]) -> tuple[float, float] | None:
    """(CPU millicores, memory bytes) summed over the containers of a PodMetrics item."""
    containers = pod_metrics.get("containers")
    if not isinstance(containers, list) or not containers:
        return None
    cpu = memory = 0.0
    for container in containers:
        usage = as_map(as_map(container).get("usage"))
        cpu_used = _amount(usage.get("cpu"), "usage.cpu", 1000)
        memory_used = _amount(usage.get("memory"), "usage.memory", 1)
        if cpu_used is None or memory_used is None:
            return None
        cpu += cpu_used
        memory += memory_used
    return cpu, memory
