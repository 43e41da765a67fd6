"""One scale-up decision: which nodes to launch for the pods nothing can hold yet.

Pure: the loop passes the pending pods, the nodes that exist, the launches still in
flight, the back-offs and the time. Every decision plans all pending pods again, so a
launch in flight counts as a node with its allocatable free minus only what the scheduler
already bound to its Node (a pod tolerating the not-ready taint), under its own labels and
taints: pods that arrive while it boots are placed on it when they fit (the room is held
for them by this decision, not recorded anywhere), a second loop (or a restarted one)
never provisions twice for the same pods, and a launch that fails or times out simply
stops counting, so its pods are planned again at the next decision. Each launch gets its
labels, taints and allowed zones (preferred first, zones backed off for that type and
category left out). Spot launches for replicas of one workload take their allowed zones in
turn (`spread_spot_zones`), so one zone's interruption does not take them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.choice.wrongsize import WrongSize, wrong_size
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.nodes import node_labels, node_taints
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import ExistingNode, Guardrails, PendingPod, PlannedNode
from gibbous.core.planning.placement import NodeViewer, viewer
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.pods import (
    Pod,
)
from gibbous.core.podmodel.podtopology import PodTopology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

NO_BACKOFFS = Backoffs()


@dataclass(frozen=True)
class InFlight:
    """A launch the cloud accepted whose Node is not Ready yet."""

    token: str
    offer: Offer
    placement: Placement
    zone: str
    started_at: float
    assigned_pod_uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()  # as launched (the spot taint)
    # What the scheduler already bound to its Node before it was Ready (pods that tolerate
    # the not-ready taint; DaemonSet pods are in the offer's overhead, not here).
    bound: Resources = field(default_factory=Resources)
    bound_pods: tuple[PodTopology, ...] = ()

    def as_node(self) -> ExistingNode:
        return ExistingNode(
            name=f"in-flight:{self.token}",
            free=self.offer.allocatable - self.bound,
            placement=self.placement,
            labels=self.labels,
            taints=self.taints,
            assigned_pod_uid=self.assigned_pod_uid,
            offer=self.offer,
            pods=self.bound_pods,
        )


@dataclass(frozen=True)
class LaunchPlan:
    offer: Offer
    placement: Placement
    pods: tuple[str, ...]
    zones: tuple[str, ...]  # allowed, preferred first; empty = the provider chooses
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]
    assigned_pod_uid: str = ""
    disk_gib: int = 0  # a larger disk than the configured one, for the pods' ephemeral storage
    wrong_size: WrongSize | None = None  # far larger than its pods ask (said on them)


@dataclass(frozen=True)
class ScaleUpPlan:
    launches: tuple[LaunchPlan, ...]
    on_existing: Mapping[str, str]  # pod key -> node name or `in-flight:<token>`
    unsatisfiable: Mapping[str, str]  # pod key -> reason (for NodeAddRequestWarning)


def _zones_for(
    node: PlannedNode, pods: list[PendingPod], config: Config, backoffs: Backoffs, now: float
) -> tuple[str, ...] | None:
    """Allowed zones, or None when every candidate zone is backed off. A zone the
    simulation chose for the pods' inter-pod rules is the only one."""
    offer = node.offer
    if node.zone:
        blocked_here = backoffs.blocked_zones(offer.name, str(offer.category), now)
        return None if node.zone in blocked_here else (node.zone,)
    allowed: frozenset[str] | None = None
    for pod in pods:
        values = pod.requirement.affinity.allowed_values(keys.ZONE)
        if values is not None:
            allowed = values if allowed is None else allowed & values
    instance_zones = offer.instance.zones
    if config.zones:
        instance_zones = (
            tuple(z for z in instance_zones if z in config.zones)
            if instance_zones
            else config.zones
        )
    candidates = list(instance_zones) if instance_zones else sorted(allowed or ())
    if allowed is not None:
        candidates = [z for z in candidates if z in allowed]
    blocked = backoffs.blocked_zones(offer.name, str(offer.category), now)
    usable = tuple(z for z in candidates if z not in blocked)
    if candidates and not usable:
        return None
    return usable


def plan_scale_up(
    pending: Iterable[PendingPod],
    offers: list[Offer],
    config: Config,
    *,
    existing: Iterable[ExistingNode] = (),
    in_flight: Iterable[InFlight] = (),
    backoffs: Backoffs = NO_BACKOFFS,
    guardrails: Guardrails | None = None,
    now: float,
) -> ScaleUpPlan:
    pods = list(pending)
    by_key = {p.key: p for p in pods}
    nodes = [*existing, *(launch.as_node() for launch in in_flight)]
    blocked = set(backoffs.blocked_pairs(now))
    # A pair backed off in every zone it could use is as good as backed off: plan again
    # without it, so the next candidate is chosen (bounded: each round removes a pair).
    for _ in range(len(offers) + 1):
        plan = simulate(
            pods,
            offers,
            config,
            existing=nodes,
            guardrails=guardrails,
            backed_off=frozenset(blocked),
            zones_blocked=lambda name, category: backoffs.blocked_zones(name, category, now),
        )
        zones_of = [
            _zones_for(node, [by_key[k] for k in node.pods], config, backoffs, now)
            for node in plan.new_nodes
        ]
        exhausted = {
            (node.offer.name, str(node.offer.category))
            for node, zones in zip(plan.new_nodes, zones_of, strict=True)
            if zones is None
        }
        if not exhausted - blocked:
            break
        blocked |= exhausted
    unsatisfiable = dict(plan.unschedulable)
    launches = []
    for node, zones in zip(plan.new_nodes, zones_of, strict=True):
        if zones is None:
            for key in node.pods:
                unsatisfiable[key] = (
                    f"every zone for {node.offer.describe()} is backed off after launch failures"
                )
            continue
        # Pods share a new node only with pods of the same required affinity (packing).
        affinity = by_key[node.pods[0]].requirement.affinity if node.pods else None
        launches.append(
            LaunchPlan(
                offer=node.offer,
                placement=node.placement,
                pods=node.pods,
                zones=zones,
                labels=node_labels(
                    node.offer,
                    node.placement,
                    config,
                    zone=zones[0] if len(zones) == 1 else None,
                    assigned_pod_uid=node.assigned_pod_uid,
                    affinity=affinity,
                ),
                taints=tuple(node_taints(node.offer)),
                assigned_pod_uid=node.assigned_pod_uid,
                disk_gib=node.disk_gib,
                wrong_size=wrong_size(
                    node.offer.instance, (by_key[k].requirement for k in node.pods)
                ),
            )
        )
    return ScaleUpPlan(spread_spot_zones(launches, by_key), dict(plan.on_existing), unsatisfiable)


# Labels that differ between replicas of one workload (a StatefulSet's per-pod labels).
_PER_REPLICA_LABELS = frozenset(
    {"statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index"}
)


def _workload(pod: PendingPod) -> tuple[str, frozenset[tuple[str, str]]] | None:
    """Replicas of one workload share their namespace and template labels; a pod without
    labels names no workload."""
    labels = frozenset(
        (k, v) for k, v in pod.topology.labels.items() if k not in _PER_REPLICA_LABELS
    )
    return (pod.topology.namespace, labels) if labels else None


def spread_spot_zones(
    launches: Sequence[LaunchPlan], by_key: Mapping[str, PendingPod]
) -> tuple[LaunchPlan, ...]:
    """Spot launches whose pods are of the same workloads, and which may go to several
    zones, take those zones in turn: the n-th such launch prefers the zone after the one
    the (n-1)-th prefers. A spot interruption strikes one capacity pool (a type in a zone),
    and the catalog prices a type alike in every zone, so the spread costs nothing.
    Launches pinned to a zone (inter-pod rules, one allowed zone) are left alone."""
    turns: dict[frozenset[object], int] = {}
    out = []
    for launch in launches:
        workloads = frozenset(_workload(by_key[k]) for k in launch.pods if k in by_key)
        if (
            launch.offer.category is not PriceCategory.SPOT
            or len(launch.zones) < 2
            or not workloads
            or None in workloads
        ):
            out.append(launch)
            continue
        turn = turns.get(workloads, 0)
        turns[workloads] = turn + 1
        shift = turn % len(launch.zones)
        out.append(replace(launch, zones=(*launch.zones[shift:], *launch.zones[:shift])))
    return tuple(out)


def existing_nodes(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    offers_by_key: Mapping[tuple[str, str], Offer],
    config: Config,
    *,
    exclude: frozenset[str] = frozenset(),
    view_of: NodeViewer | None = None,
    bound: ClusterPods | None = None,
) -> list[ExistingNode]:
    """The Ready, schedulable nodes as the planner sees them: allocatable minus what the
    pods bound to them request. `exclude` names nodes counted as launches in flight;
    `view_of` reads a node (default: anew, with the configured GPU time slices); `bound`,
    when given, holds the pods' aggregates already (and `pods` is not read)."""
    view_of = view_of or viewer(config.nvidia_gpu_time_slices)
    if bound is None:
        bound = ClusterPods(config.designation)
        bound.sync(pods)
    out = []
    for node in nodes:
        seen = view_of(node)
        if seen.name in exclude or not seen.ready or seen.unschedulable:
            continue
        offer = (
            offers_by_key.get((seen.instance_type, str(seen.category)))
            if seen.created_by_gibbous and seen.category is not None
            else None
        )
        out.append(
            ExistingNode(
                name=seen.name,
                free=seen.allocatable - bound.used.get(seen.name, _NOTHING),
                placement=seen.placement,
                labels=seen.labels,
                taints=seen.taints,
                assigned_pod_uid=seen.assigned_pod_uid,
                offer=offer,
                pods=bound.placed(seen.name),
            )
        )
    return out


_NOTHING = Resources()


@dataclass(frozen=True)
class Usage:
    """What Gibbous's nodes add up to, for the guardrails and the cost metric."""

    nodes: int = 0
    gpus: int = 0
    cost_per_hour: float = 0.0


def gibbous_usage(
    nodes: Sequence[Mapping[str, Any]],
    in_flight: Sequence[InFlight],
    config: Config,
    *,
    exclude: frozenset[str] = frozenset(),
    view_of: NodeViewer | None = None,
) -> Usage:
    """Nodes Gibbous created (all of them, Ready or not, minus `exclude`, which are counted
    as launches) plus launches in flight."""
    view_of = view_of or viewer(config.nvidia_gpu_time_slices)
    count, gpus, cost = 0, 0, 0.0
    for node in nodes:
        seen = view_of(node)
        if not seen.created_by_gibbous or seen.name in exclude:
            continue
        count += 1
        gpus += seen.gpu_count or 0
        cost += seen.price_per_hour or 0.0
    for launch in in_flight:
        count += 1
        gpus += launch.offer.instance.gpu_count
        cost += launch.offer.price
    return Usage(count, gpus, cost)
