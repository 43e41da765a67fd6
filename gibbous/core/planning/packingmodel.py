"""The terms of the packing simulation (`packing.simulate`): the pods it places, the
nodes it places them on, the guardrails it keeps and the plan it returns; and whether a
pod fits a node, by resources and by what kube-scheduler would admit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer, PodRequirement, candidate_offers
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.constraints import InstanceConstraints, PriceCategory
from gibbous.core.podmodel.pods import tolerates
from gibbous.core.podmodel.podtopology import NO_TOPOLOGY, PodTopology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config


@dataclass(frozen=True)
class PendingPod:
    key: str  # namespace/name
    uid: str
    requirement: PodRequirement
    placement: Placement
    priority: int = 0
    tolerations: tuple[Mapping[str, Any], ...] = ()
    topology: PodTopology = NO_TOPOLOGY
    unsupported: str = ""  # a need no node Gibbous can buy meets (said to the user)


@dataclass(frozen=True)
class ExistingNode:
    """A node that exists or is being launched, as the simulation sees it."""

    name: str
    free: Resources
    placement: Placement | None  # None: a node Gibbous did not create (static)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()
    assigned_pod_uid: str = ""
    offer: Offer | None = None  # known for Gibbous nodes
    pods: tuple[PodTopology, ...] = ()  # the pods bound to it, for the inter-pod rules


@dataclass(frozen=True)
class Guardrails:
    gpu_limit: int | None = None
    max_nodes: int | None = None
    max_cost_per_hour: float | None = None
    gpus_in_use: int = 0
    nodes_in_use: int = 0
    cost_in_use: float = 0.0

    @classmethod
    def from_config(
        cls, config: Config, *, gpus: int = 0, nodes: int = 0, cost: float = 0.0
    ) -> Guardrails:
        return cls(
            config.cluster_gpu_limit, config.max_nodes, config.max_cost_per_hour, gpus, nodes, cost
        )


@dataclass(frozen=True)
class PlannedNode:
    offer: Offer
    placement: Placement
    pods: tuple[str, ...]
    assigned_pod_uid: str = ""  # bin-select: the pod it is created for
    zone: str = ""  # set when the pods' inter-pod rules decide it
    disk_gib: int = 0  # a disk larger than the configured one its pods' ephemeral storage needs


@dataclass(frozen=True)
class Plan:
    new_nodes: tuple[PlannedNode, ...]
    on_existing: Mapping[str, str]  # pod key -> node name
    unschedulable: Mapping[str, str]  # pod key -> reason
    placements: Mapping[str, Placement]  # pod key -> class actually used

    @property
    def cost_per_hour(self) -> float:
        return math.fsum(node.offer.price for node in self.new_nodes)

    @property
    def gpus(self) -> int:
        return sum(node.offer.instance.gpu_count for node in self.new_nodes)


def fit_count(requests: Resources, free: Resources) -> int:
    """How many pods with `requests` fit into `free` (requests always include one pod slot)."""
    counts = []
    for need, have in (
        (requests.cpu_millis, free.cpu_millis),
        (requests.memory_bytes, free.memory_bytes),
        (requests.gpus, free.gpus),
        (requests.pods, free.pods),
        (requests.ephemeral_bytes, free.ephemeral_bytes),
    ):
        if need > 0:
            counts.append(have // need if have > 0 else 0)
    if requests.extended:
        available = dict(free.extended)
        for name, need in requests.extended:
            if need > 0:
                counts.append(max(0, available.get(name, 0)) // need)
    return max(0, min(counts)) if counts else 1 << 30


def scaled(requests: Resources, count: int) -> Resources:
    return Resources(
        requests.cpu_millis * count,
        requests.memory_bytes * count,
        requests.gpus * count,
        requests.pods * count,
        requests.ephemeral_bytes * count,
        tuple((name, value * count) for name, value in requests.extended),
    )


def requirement_key(requirement: PodRequirement) -> tuple[object, ...]:
    """Hashable identity of a requirement (patterns compare by source)."""
    constraints = requirement.constraints
    return (
        requirement.requests,
        requirement.offerings,
        requirement.affinity,
        constraints.offerings,
        constraints.max_cost_per_hour,
        constraints.type_pattern.source if constraints.type_pattern else None,
        constraints.gpu_skus,
        constraints.max_gpus,
        constraints.families_included,
        constraints.families_excluded,
    )


def node_admits(pod: PendingPod, node: ExistingNode, config: Config) -> bool:
    """Whether kube-scheduler (with our extender) would put `pod` on `node`, resources aside."""
    if pod.placement is Placement.BIN_PACK:
        if node.placement is Placement.BIN_SELECT:
            return False
    else:
        if node.placement is not Placement.BIN_SELECT:
            return False
        if node.assigned_pod_uid != pod.uid and not config.bin_select_node_reuse:
            return False
    if not pod.requirement.affinity.matches(node.labels):
        return False
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            list(pod.tolerations), taint
        ):
            return False
    if node.offer is not None and pod.placement is Placement.BIN_SELECT:
        probe = PodRequirement(
            requests=Resources(),
            constraints=pod.requirement.constraints,
            offerings=pod.requirement.offerings,
            affinity=NodeAffinity(()),
        )
        if not candidate_offers(probe, [node.offer], config):
            return False
    return True


def unconstrained(requests: Resources, offerings: frozenset[PriceCategory]) -> PodRequirement:
    """A requirement with nothing but resources and price categories (tests, benchmarks)."""
    return PodRequirement(requests=requests, constraints=InstanceConstraints(), offerings=offerings)
