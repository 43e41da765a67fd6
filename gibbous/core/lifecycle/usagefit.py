"""Scale-down by usage while hot-node mitigation is on. Pure; time is a parameter.

Mitigation cools a red node by evicting a pod, which then runs on another node, often a new
one. A scale-down that reads requests (or, with P15's `binPackNodeUtilizationThreshold:
0.0`, removes only empty nodes) then keeps those nodes after the heat is gone, or packs
pods back where their real use heats a node again. So while `manageHighUtilization.enabled`,
scale-down reads what metrics.k8s.io says the pods use (the same NodeMetrics and PodMetrics
the mitigation loop reads):

* a node's usage is known when its NodeMetrics and the PodMetrics of every pod that counts
  there (DaemonSet and mirror pods aside) are fresh (at most `max_age_s` old, the sample's
  `timestamp`); it is then the larger of the node's figure and its pods' sum, per resource
  (the node's includes pods that left since; the pods' includes pods that came since);
* a bin-pack node is a candidate by usage when that usage, as a share of capacity (the
  larger of CPU and memory, as mitigation reads them), is below
  `scaleDown.binPackNodeUsageThreshold`;
* any candidate (by usage or by requests) goes only if every pod of it fits on some other
  node both by requests (kube-scheduler's view, `disruption`) and by usage: the target's
  known usage plus the pods' stays below red minus `scaleDown.usageHeadroom` points for
  CPU and for memory (so a move never makes mitigation evict). A target whose usage is not
  known takes nothing (missing is not zero);
* a node with mitigation's warm taint (kept, by Luna's hysteresis, until the node is
  green, under 10 % CPU) may take pods when its usage with them stays below yellow and
  mitigation has not evicted from it within the hold; the drain lifts its taint first,
  so the scheduler can place them. A node tainted hot takes nothing;
* a node from which mitigation evicted a pod less than `scaleDown.delayAfterHotEviction`
  ago is kept: its heat was just moved, not gone;
* a node whose own usage is not known is judged by requests alone, as without mitigation:
  missing or stale metrics never make a node more removable than requests do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gibbous.core.errors import GibbousError
from gibbous.core.grammar.quantity import parse_quantity
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.hotnode import pod_usage
from gibbous.core.podmodel.pods import as_map, key_of, metadata
from gibbous.core.settings.options.lifecycle import HotNodeConfig, ScaleDownConfig

# metrics-server scrapes every 60 s by default (--metric-resolution); a sample three
# periods old means it has stopped reporting the node or pod.
DEFAULT_MAX_AGE_S = 180.0


@dataclass(frozen=True)
class Measured:
    """Usage from metrics.k8s.io: CPU millicores, memory working-set bytes, sample time."""

    cpu_millis: float
    memory_bytes: float
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class NodeCapacity:
    cpu_millis: float
    memory_bytes: float


@dataclass(frozen=True)
class UsageSnapshot:
    """The last read of metrics.k8s.io, by node name and by pod key (namespace/name)."""

    nodes: Mapping[str, Measured]
    pods: Mapping[str, Measured]
    capacity: Mapping[str, NodeCapacity]


@dataclass(frozen=True)
class UsageRule:
    """The settings the rule reads, in one place (`from_config` for the options)."""

    red_cpu: float  # percent
    red_memory: float  # percent
    yellow_cpu: float  # percent
    yellow_memory: float  # percent
    headroom: float  # percentage points below red a target must stay
    threshold: float  # usage share below which a bin-pack node is a candidate
    hold_s: float  # no removal this long after mitigation evicted from the node
    max_age_s: float = DEFAULT_MAX_AGE_S

    @classmethod
    def from_settings(cls, hot: HotNodeConfig, scale_down: ScaleDownConfig) -> UsageRule:
        return cls(
            red_cpu=hot.red_cpu,
            red_memory=hot.red_memory,
            yellow_cpu=hot.yellow_cpu,
            yellow_memory=hot.yellow_memory,
            headroom=scale_down.usage_headroom,
            threshold=scale_down.bin_pack_usage_threshold,
            hold_s=scale_down.delay_after_hot_eviction_s,
            # The snapshot is read every loopPeriod; a slow loop must not make every
            # sample stale.
            max_age_s=max(DEFAULT_MAX_AGE_S, 2 * hot.loop_period_s),
        )


def _fresh(sample: Measured | None, now: float, max_age_s: float) -> bool:
    return sample is not None and now - sample.at <= max_age_s


def pods_usage(
    snapshot: UsageSnapshot, pod_keys: Iterable[str], *, now: float, max_age_s: float
) -> tuple[float, float] | None:
    """(CPU millicores, memory bytes) the pods use together; None when any is unknown."""
    cpu = memory = 0.0
    for key in pod_keys:
        sample = snapshot.pods.get(key)
        if sample is None or not _fresh(sample, now, max_age_s):
            return None
        cpu += sample.cpu_millis
        memory += sample.memory_bytes
    return cpu, memory


def used_on_node(
    snapshot: UsageSnapshot,
    node: str,
    pod_keys: Iterable[str],
    *,
    now: float,
    max_age_s: float,
) -> tuple[float, float] | None:
    """(CPU millicores, memory bytes) in use on `node`, whose counted pods are `pod_keys`:
    the larger of the node's figure and its pods' sum, per resource; None when unknown."""
    sample = snapshot.nodes.get(node)
    if sample is None or not _fresh(sample, now, max_age_s) or node not in snapshot.capacity:
        return None
    summed = pods_usage(snapshot, pod_keys, now=now, max_age_s=max_age_s)
    if summed is None:
        return None
    return max(sample.cpu_millis, summed[0]), max(sample.memory_bytes, summed[1])


def usage_share(used: tuple[float, float], capacity: NodeCapacity) -> float:
    """The larger of the CPU and memory shares of capacity (0..1, or more when over)."""
    shares = []
    if capacity.cpu_millis > 0:
        shares.append(used[0] / capacity.cpu_millis)
    if capacity.memory_bytes > 0:
        shares.append(used[1] / capacity.memory_bytes)
    return max(shares) if shares else 0.0


def held_by_mitigation(
    hold_s: float, node: str, hot_evictions: Mapping[str, float], now: float
) -> str:
    """Why `node` is kept because mitigation cooled it less than `hold_s` ago, or ""."""
    at = hot_evictions.get(node)
    if at is None or now - at >= hold_s:
        return ""
    return (
        f"hot-node mitigation evicted from it {now - at:.0f}s ago "
        f"(scaleDown.delayAfterHotEviction {hold_s:.0f}s)"
    )


class UsageRoom:
    """Room below red minus the headroom on the nodes that would take moved pods, as
    metrics say. Callers that move pods (scale-down, consolidation) ask `admits` for each
    (target, usage) their own requests-and-rules placement would try, adding up the usage
    of the pods they have already put on that target."""

    def __init__(
        self,
        rule: UsageRule,
        snapshot: UsageSnapshot,
        pods_on: Callable[[str], Iterable[str]],
        *,
        now: float,
        held: frozenset[str] = frozenset(),
    ) -> None:
        """`pods_on(node)`: the keys of the pods that count on the node now (asked only for
        the nodes a caller looks at); `held`: nodes mitigation evicted from within the hold
        (never a warm target)."""
        self.rule = rule
        self.snapshot = snapshot
        self.now = now
        self.held = held
        self._pods_on = pods_on
        self._used: dict[str, tuple[float, float] | None] = {}  # a cache, not a tally

    def used(self, node: str) -> tuple[float, float] | None:
        if node not in self._used:
            self._used[node] = used_on_node(
                self.snapshot,
                node,
                self._pods_on(node),
                now=self.now,
                max_age_s=self.rule.max_age_s,
            )
        return self._used[node]

    def pod(self, key: str) -> tuple[float, float] | None:
        """A pod's usage, or None when unknown (then it may move by requests only)."""
        return pods_usage(self.snapshot, (key,), now=self.now, max_age_s=self.rule.max_age_s)

    def admits(self, node: str, usage: tuple[float, float], *, warm: bool = False) -> bool:
        """Whether `node` stays below red minus the headroom with `usage` more (callers add
        up what they have already put there). `warm`: the node carries mitigation's warm
        taint, which the mover would lift; then it must stay below yellow, so that the
        move does not make it warm again, and not be held."""
        used = self.used(node)
        capacity = self.snapshot.capacity.get(node)
        if used is None or capacity is None:
            return False
        if warm:
            if node in self.held:
                return False
            cpu_percent, memory_percent = self.rule.yellow_cpu, self.rule.yellow_memory
        else:
            cpu_percent = self.rule.red_cpu - self.rule.headroom
            memory_percent = self.rule.red_memory - self.rule.headroom
        cpu_limit = cpu_percent / 100 * capacity.cpu_millis
        memory_limit = memory_percent / 100 * capacity.memory_bytes
        return used[0] + usage[0] < cpu_limit and used[1] + usage[1] < memory_limit

    def share(self, node: str) -> float | None:
        """The node's usage share of capacity, or None when unknown."""
        used = self.used(node)
        capacity = self.snapshot.capacity.get(node)
        if used is None or capacity is None:
            return None
        return usage_share(used, capacity)


@dataclass(frozen=True)
class UsageInputs:
    """What scale-down reads while hot-node mitigation is on."""

    rule: UsageRule
    snapshot: UsageSnapshot
    hot_evictions: Mapping[str, float]  # node -> when mitigation last evicted from it


def _amount(value: object, scale: int) -> float | None:
    try:
        return float(parse_quantity(value, "usage") * scale)
    except GibbousError:
        return None


def _sampled_at(item: Mapping[str, Any], read_at: float) -> float:
    """The sample's `timestamp` (when metrics-server scraped it); the read time when absent."""
    stamp = item.get("timestamp")
    at = epoch_seconds(stamp) if isinstance(stamp, str) else None
    return read_at if at is None else at


def read_snapshot(
    node_items: Sequence[Mapping[str, Any]],
    pod_items: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    *,
    read_at: float,
) -> UsageSnapshot:
    """A snapshot from NodeMetrics and PodMetrics items and the Nodes (for capacity). An
    item that cannot be read is left out: its node or pod is then unknown, not idle."""
    measured_nodes: dict[str, Measured] = {}
    for item in node_items:
        usage = as_map(item.get("usage"))
        cpu, memory = _amount(usage.get("cpu"), 1000), _amount(usage.get("memory"), 1)
        if cpu is not None and memory is not None and cpu >= 0 and memory >= 0:
            name = str(metadata(item).get("name") or "")
            measured_nodes[name] = Measured(cpu, memory, _sampled_at(item, read_at))
    measured_pods: dict[str, Measured] = {}
    for item in pod_items:
        summed = pod_usage(item)
        if summed is not None and min(summed) >= 0:
            measured_pods[key_of(item)] = Measured(*summed, _sampled_at(item, read_at))
    capacity: dict[str, NodeCapacity] = {}
    for node in nodes:
        status = as_map(as_map(node.get("status")).get("capacity"))
        cpu, memory = _amount(status.get("cpu"), 1000), _amount(status.get("memory"), 1)
        if cpu and memory:
            capacity[str(metadata(node).get("name") or "")] = NodeCapacity(cpu, memory)
    return UsageSnapshot(measured_nodes, measured_pods, capacity)
