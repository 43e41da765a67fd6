"""The packing simulation's bookkeeping: the room left on each existing node, the new
nodes opened so far and what joined them, the guardrails' running totals; placing pods
on existing nodes; the offers a new node may have. The two ways of placing on new nodes
build on it: the grouped fast path (`groupedpacking`) and the one-by-one placement of
pods with inter-pod rules (`constrained`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gibbous.core.choice.classify import Placement
from gibbous.core.choice.machinelabels import selected_categories
from gibbous.core.choice.nodedisk import default_disk_gib, disk_for, largest_ephemeral
from gibbous.core.choice.selection import (
    CandidateResult,
    Offer,
    PodRequirement,
    candidate_offers,
    cheapest_offer_for_shape,
)
from gibbous.core.planning.packingmodel import (
    ExistingNode,
    Guardrails,
    PendingPod,
    Plan,
    PlannedNode,
    node_admits,
    requirement_key,
    scaled,
)
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.podtopology import SpreadConstraint
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config


class Budget:
    """Running totals checked before each node is opened."""

    def __init__(self, guardrails: Guardrails) -> None:
        self.rails = guardrails
        self.gpus = guardrails.gpus_in_use
        self.nodes = guardrails.nodes_in_use
        self.cost = guardrails.cost_in_use

    def gpu_room(self) -> int | None:
        return None if self.rails.gpu_limit is None else max(0, self.rails.gpu_limit - self.gpus)

    def refusal(self, offer: Offer) -> str:
        rails = self.rails
        if rails.max_nodes is not None and self.nodes + 1 > rails.max_nodes:
            return f"would exceed maxNodes ({rails.max_nodes})"
        if rails.gpu_limit is not None and self.gpus + offer.instance.gpu_count > rails.gpu_limit:
            return (
                f"would exceed clusterGPULimit ({rails.gpu_limit}): {self.gpus} GPUs in use, "
                f"{offer.instance.name} has {offer.instance.gpu_count}"
            )
        if (
            rails.max_cost_per_hour is not None
            and self.cost + offer.price > rails.max_cost_per_hour + 1e-9
        ):
            return (
                f"would exceed maxClusterCostPerHour (${rails.max_cost_per_hour:g}/hr): "
                f"${self.cost:.4f}/hr in use, {offer.describe()}"
            )
        return ""

    def take(self, offer: Offer) -> None:
        self.nodes += 1
        self.gpus += offer.instance.gpu_count
        self.cost += offer.price


@dataclass
class NewNode:
    offer: Offer
    placement: Placement
    group: object  # which pods may join it: the affinity (bin-pack) or requirement (bin-select)
    uid: str = ""
    zone: str = ""
    pods: list[str] = field(default_factory=list)
    free: Resources = field(default_factory=Resources)


class PackingState:
    def __init__(
        self,
        offers: list[Offer],
        config: Config,
        guardrails: Guardrails,
        backed_off: frozenset[tuple[str, str]],
        zones_blocked: Callable[[str, str], frozenset[str]] | None,
    ):
        self.offers = offers
        self.config = config
        self.budget = Budget(guardrails)
        self.backed_off = backed_off
        self.zones_blocked = zones_blocked
        self.new_nodes: list[NewNode] = []
        self.on_existing: dict[str, str] = {}
        self.unschedulable: dict[str, str] = {}
        self.placements: dict[str, Placement] = {}
        self.free: dict[str, Resources] = {}
        # The type of a bin-pack node opened for one pod placed one by one (`constrained`):
        # the cheapest meeting the spec, whatever type the batch's packing chose (a batch
        # of thousands may pack cheapest onto 48-vCPU nodes; one pod with anti-affinity
        # does not).
        self.bin_pack_offers: dict[NodeAffinity, Offer] = {}
        self.spreads: frozenset[tuple[str, SpreadConstraint]] = frozenset()
        self.by_group: dict[object, list[int]] = {}  # planned nodes by who may join them
        self.cursors: dict[object, int] = {}

    # -- existing nodes --------------------------------------------------------------

    def place_on_existing(
        self, pods: list[PendingPod], nodes: list[ExistingNode]
    ) -> list[PendingPod]:
        if not nodes:
            return pods
        free = self.free
        for node in nodes:
            free.setdefault(node.name, node.free)
        by_uid = {node.assigned_pod_uid: node for node in nodes if node.assigned_pod_uid}
        # Only nodes with room for the smallest pod are worth scanning: in a full cluster a
        # burst of pods would otherwise try every node for every pod.
        least_cpu = min((p.requirement.requests.cpu_millis for p in pods), default=0)
        least_memory = min((p.requirement.requests.memory_bytes for p in pods), default=0)
        roomy = [
            node
            for node in nodes
            if node.free.cpu_millis >= least_cpu and node.free.memory_bytes >= least_memory
        ]
        left = []
        # Placing only takes room, so a pod no node would take is followed by pods just like
        # it that none would take either: a burst of identical pods scans the nodes once.
        refused: set[object] = set()
        for pod in pods:
            signature = pod_signature(pod) if pod.uid not in by_uid else None
            if signature is not None and signature in refused:
                left.append(pod)
                continue
            target = self._existing_target(pod, roomy, by_uid, free)
            if target is None:
                left.append(pod)
                if signature is not None:  # no node is held for it: a refusal of its kind
                    refused.add(signature)
                continue
            self._place_existing(pod, target.name)
        return left

    def _place_existing(self, pod: PendingPod, name: str) -> None:
        self.free[name] = self.free[name] - pod.requirement.requests
        self.on_existing[pod.key] = name
        self.placements[pod.key] = pod.placement

    def _existing_target(
        self,
        pod: PendingPod,
        nodes: list[ExistingNode],
        by_uid: Mapping[str, ExistingNode],
        free: Mapping[str, Resources],
    ) -> ExistingNode | None:
        requests = pod.requirement.requests
        own = by_uid.get(pod.uid)
        if own is not None and requests.fits_in(free[own.name]):
            return own
        for node in nodes:
            if node.assigned_pod_uid == pod.uid or not requests.fits_in(free[node.name]):
                continue
            if not node_admits(pod, node, self.config):
                continue
            return node
        return None

    # -- new nodes --------------------------------------------------------------------

    def open_node(
        self, offer: Offer, placement: Placement, group: object, uid: str = "", zone: str = ""
    ) -> int | str:
        refusal = self.budget.refusal(offer)
        if refusal:
            return refusal
        self.budget.take(offer)
        self.new_nodes.append(NewNode(offer, placement, group, uid, zone, [], offer.allocatable))
        self.by_group.setdefault(group, []).append(len(self.new_nodes) - 1)
        return len(self.new_nodes) - 1

    def _bin_pack_shape(self, affinity: NodeAffinity) -> CandidateResult:
        # Pods whose selector names a price category (GKE's gke-spot, Karpenter's
        # capacity-type, ...) get bin-pack nodes of that category.
        categories = selected_categories(affinity, self.config.cloud)
        return cheapest_offer_for_shape(
            self.offers,
            cpu_millis=self.config.bin_pack_node_cpu_millis,
            memory_bytes=self.config.bin_pack_node_memory_bytes,
            gpus=self.config.bin_pack_node_gpus,
            config=self.config,
            categories=categories or self.config.bin_pack_node_pricing,
            affinity=affinity,
            backed_off=self.backed_off,
        )

    def _assign(self, index: int, pods: list[PendingPod], requests: Resources, count: int) -> None:
        node = self.new_nodes[index]
        node.pods.extend(pod.key for pod in pods)
        node.free = node.free - scaled(requests, count)
        for pod in pods:
            self.placements[pod.key] = pod.placement

    def _bin_select_offers(self, requirement: PodRequirement) -> CandidateResult:
        return candidate_offers(
            requirement,
            self.offers,
            self.config,
            backed_off=self.backed_off,
            gpu_budget=self.budget.gpu_room(),
        )

    def _disk_gib(self, node: NewNode) -> int:
        return _sized_disk(
            node.offer.instance.cloud, default_disk_gib(self.config), node.free.ephemeral_bytes
        )

    def plan(self) -> Plan:
        return Plan(
            new_nodes=tuple(
                PlannedNode(
                    node.offer,
                    node.placement,
                    tuple(node.pods),
                    node.uid if node.placement is Placement.BIN_SELECT else "",
                    node.zone,
                    self._disk_gib(node),
                )
                for node in self.new_nodes
            ),
            on_existing=dict(self.on_existing),
            unschedulable=dict(self.unschedulable),
            placements=dict(self.placements),
        )


def _sized_disk(cloud: str, config_default: int, free_ephemeral: int) -> int:
    """The disk, GiB, a new node needs for what its pods (and DaemonSets) request of
    ephemeral storage, or 0 when the configured disk holds it."""
    needed = largest_ephemeral(cloud) - free_ephemeral
    size = disk_for(cloud, config_default, needed)
    return size if size > config_default else 0


def pod_signature(pod: PendingPod) -> object:
    """What makes two pods interchangeable to the inter-pod rules and node admission."""
    topology = pod.topology
    return (
        pod.placement,
        requirement_key(pod.requirement),
        topology.namespace,
        tuple(sorted(topology.labels.items())),
        topology.affinity,
        topology.anti_affinity,
        topology.spread,
        repr(pod.tolerations),
    )


def group_of(pod: PendingPod) -> object:
    if pod.placement is Placement.BIN_PACK:
        return pod.requirement.affinity
    return requirement_key(pod.requirement)


def as_bin_select(pod: PendingPod) -> PendingPod:
    return PendingPod(
        pod.key,
        pod.uid,
        pod.requirement,
        Placement.BIN_SELECT,
        pod.priority,
        pod.tolerations,
        pod.topology,
        pod.unsupported,
    )
