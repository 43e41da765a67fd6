"""What one run's Node and Pod objects say, as numbers: pure functions over what `observe`
recorded (times in seconds since the trace began).

- cost: each node's lifetime (first seen to deleted, or to the end of the run) times the
  $/hour of its `node.kubernetes.io/instance-type` and `karpenter.sh/capacity-type` labels
  (both systems put both on their nodes), summed;
- bound: each pod's creation to its binding (spec.nodeName first seen), p50/p99/max;
- nodes created and deleted, peak nodes alive at once;
- pods evicted by the autoscaler: pods deleted once their node was being taken away
  (cordoned, tainted karpenter.sh/disrupted or deleting): the trace's own scale-downs delete
  pods on nodes nobody drains;
- unbound: pods that exist at the end without a node.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
# Watches of nodes and pods are two streams: a pod's deletion may be seen this much before
# the drain mark of its node that caused it.
DRAIN_SKEW_S = 1.0


@dataclass
class NodeRecord:
    name: str
    created_at: float
    labels: dict[str, str] = field(default_factory=dict)
    ready_at: float | None = None
    drained_at: float | None = None
    deleted_at: float | None = None


@dataclass
class PodRecord:
    name: str
    created_at: float
    bound_at: float | None = None
    node: str = ""
    deleted_at: float | None = None


@dataclass(frozen=True)
class Observation:
    end: float
    nodes: Mapping[str, NodeRecord]
    pods: Mapping[str, PodRecord]


@dataclass(frozen=True)
class Sample:
    t_s: float
    nodes: int
    cost_per_hour: float


@dataclass(frozen=True)
class RunMetrics:
    cost: float  # $ over the run
    bound_p50_s: float | None
    bound_p99_s: float | None
    bound_max_s: float | None
    nodes_created: int
    nodes_deleted: int
    peak_nodes: int
    pods_evicted: int
    pods_unbound: int
    pods_bound: int
    duration_s: float
    samples: tuple[Sample, ...] = ()

    def row(self) -> dict[str, float | int | None]:
        return {
            "cost": round(self.cost, 4),
            "boundP50": _round(self.bound_p50_s),
            "boundP99": _round(self.bound_p99_s),
            "boundMax": _round(self.bound_max_s),
            "nodesCreated": self.nodes_created,
            "nodesDeleted": self.nodes_deleted,
            "peakNodes": self.peak_nodes,
            "podsEvicted": self.pods_evicted,
            "podsUnbound": self.pods_unbound,
            "podsBound": self.pods_bound,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def node_price(node: NodeRecord, prices: Mapping[tuple[str, str], float]) -> float:
    key = (node.labels.get(INSTANCE_TYPE, ""), node.labels.get(CAPACITY_TYPE, ""))
    if key not in prices:
        raise ValueError(
            f"node {node.name}: no price for instance type {key[0]!r} capacity type {key[1]!r}"
        )
    return prices[key]


def compute(
    observation: Observation,
    prices: Mapping[tuple[str, str], float],
    sample_every_s: float = 5.0,
) -> RunMetrics:
    end = observation.end
    nodes = list(observation.nodes.values())
    cost = 0.0
    for node in nodes:
        gone = min(end, node.deleted_at) if node.deleted_at is not None else end
        cost += max(0.0, gone - node.created_at) / 3600 * node_price(node, prices)
    waits = [p.bound_at - p.created_at for p in observation.pods.values() if p.bound_at is not None]
    evicted = 0
    for pod in observation.pods.values():
        host = observation.nodes.get(pod.node)
        if pod.deleted_at is None or host is None or host.drained_at is None:
            continue
        if host.drained_at <= pod.deleted_at + DRAIN_SKEW_S:
            evicted += 1
    unbound = sum(
        1 for p in observation.pods.values() if p.bound_at is None and p.deleted_at is None
    )
    return RunMetrics(
        cost=cost,
        bound_p50_s=percentile(waits, 0.5) if waits else None,
        bound_p99_s=percentile(waits, 0.99) if waits else None,
        bound_max_s=max(waits) if waits else None,
        nodes_created=len(nodes),
        nodes_deleted=sum(1 for n in nodes if n.deleted_at is not None),
        peak_nodes=_peak(nodes),
        pods_evicted=evicted,
        pods_unbound=unbound,
        pods_bound=len(waits),
        duration_s=end,
        samples=tuple(_samples(nodes, prices, end, sample_every_s)),
    )


def _peak(nodes: Sequence[NodeRecord]) -> int:
    changes = sorted(
        [(n.created_at, 1) for n in nodes]
        + [(n.deleted_at, -1) for n in nodes if n.deleted_at is not None],
        key=lambda change: (change[0], change[1]),  # a deletion at the same instant first
    )
    alive = peak = 0
    for _, step in changes:
        alive += step
        peak = max(peak, alive)
    return peak


def _samples(
    nodes: Sequence[NodeRecord],
    prices: Mapping[tuple[str, str], float],
    end: float,
    every: float,
) -> list[Sample]:
    out = []
    steps = int(end // every) + 1
    for index in range(steps + 1):
        t = min(end, index * every)
        alive = [
            n for n in nodes if n.created_at <= t and (n.deleted_at is None or n.deleted_at > t)
        ]
        out.append(Sample(t, len(alive), sum(node_price(n, prices) for n in alive)))
    return out


@dataclass(frozen=True)
class Spread:
    median: float | None
    low: float | None
    high: float | None


def spread(values: Sequence[float | int | None]) -> Spread:
    present = [float(v) for v in values if v is not None]
    if not present:
        return Spread(None, None, None)
    return Spread(statistics.median(present), min(present), max(present))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
