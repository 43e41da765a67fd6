"""What would fit: place pending pods on existing nodes and on new ones.

One simulator serves provisioning, cost estimates and scale-down (Karpenter's
lesson): it is a pure function from pods, nodes and offers to a `Plan`.

* Existing nodes first (nodes already running or still launching), so no loop
  provisions twice for the same pods. Bin-pack pods only go to bin-pack or
  static nodes; a bin-select pod goes to the node made for it, or, with node
  reuse, to a bin-select node whose instance satisfies it.
* Bin-pack pods: multi-resource first-fit decreasing onto nodes of the
  bin-pack shape (cheapest offer meeting `binPackingNode*`), one shape per
  distinct node-affinity. Identical pods are placed as a group, which keeps
  10,000 pods fast. A pod too large for the shape is treated as bin-select.
* Bin-select pods: identical pods share a node type choice. Normally one node
  per pod at the cheapest offer; with node reuse, a larger type is taken
  when it holds several of them for strictly less in total.
* Pods with required pod affinity or anti-affinity or hard topology spread, and
  pods another pod's required anti-affinity selects, are placed one by one after
  the others, each on the first node (existing, in flight or planned) that the
  scheduler's inter-pod filters admit, else on a new node, put in the zone the
  rules allow with the fewest matching pods (`interpod`).
* Guardrails (`clusterGPULimit`, `maxNodes`, `maxClusterCostPerHour`) are
  checked before every node is opened; pods that would break one are
  reported, never placed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import (
    CandidateResult,
    Offer,
    PodRequirement,
    candidate_offers,
    candidate_zones,
    cheapest_offer_for_shape,
    offer_labels,
)
from gibbous.core.planning.interpod import ZONE_KEYS, Incoming, Site, Topology
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.constraints import InstanceConstraints, PriceCategory
from gibbous.core.podmodel.pods import tolerates
from gibbous.core.podmodel.podtopology import (
    NO_TOPOLOGY,
    PodAffinityTerm,
    PodTopology,
    SpreadConstraint,
    describe_topology,
)
from gibbous.core.podmodel.resources import Resources, total
from gibbous.core.settings.config import Config

T = TypeVar("T")


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


def _scale(requests: Resources, count: int) -> Resources:
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


class _Budget:
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
class _NewNode:
    offer: Offer
    placement: Placement
    group: object  # which pods may join it: the affinity (bin-pack) or requirement (bin-select)
    uid: str = ""
    zone: str = ""
    pods: list[str] = field(default_factory=list)
    free: Resources = field(default_factory=Resources)


class _Simulation:
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
        self.budget = _Budget(guardrails)
        self.backed_off = backed_off
        self.zones_blocked = zones_blocked
        self.new_nodes: list[_NewNode] = []
        self.on_existing: dict[str, str] = {}
        self.unschedulable: dict[str, str] = {}
        self.placements: dict[str, Placement] = {}
        self.free: dict[str, Resources] = {}
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
            signature = _signature(pod) if pod.uid not in by_uid else None
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
        self.new_nodes.append(_NewNode(offer, placement, group, uid, zone, [], offer.allocatable))
        self.by_group.setdefault(group, []).append(len(self.new_nodes) - 1)
        return len(self.new_nodes) - 1

    def place_bin_pack(self, pods: list[PendingPod]) -> list[PendingPod]:
        """FFD per affinity group; returns pods too large for the bin-pack shape."""
        oversized: list[PendingPod] = []
        groups: dict[NodeAffinity, list[PendingPod]] = {}
        for pod in pods:
            groups.setdefault(pod.requirement.affinity, []).append(pod)
        for affinity, members in groups.items():
            shape = self._bin_pack_shape(affinity)
            if not shape:
                for pod in members:
                    self.unschedulable[pod.key] = shape.reason
                continue
            offer, bins = self._choose_bin_pack_offer(members, shape.offers)
            self.bin_pack_offers[affinity] = offer
            fitting = {pod.key for pod_bin in bins for pod in pod_bin}
            oversized.extend(pod for pod in members if pod.key not in fitting)
            self._open_bins(offer, affinity, bins)
        return oversized

    def _bin_pack_shape(self, affinity: NodeAffinity) -> CandidateResult:
        return cheapest_offer_for_shape(
            self.offers,
            cpu_millis=self.config.bin_pack_node_cpu_millis,
            memory_bytes=self.config.bin_pack_node_memory_bytes,
            gpus=self.config.bin_pack_node_gpus,
            config=self.config,
            categories=self.config.bin_pack_node_pricing,
            affinity=affinity,
            backed_off=self.backed_off,
        )

    def _choose_bin_pack_offer(
        self, pods: list[PendingPod], shapes: tuple[Offer, ...]
    ) -> tuple[Offer, list[list[PendingPod]]]:
        """The bin-pack node type and its bins.

        `cheapest-node` (Luna): the cheapest type meeting the spec. `lowest-total-cost`
        (default): among types meeting the spec and holding every pod, the one whose
        packing of these pods costs least in total; ties keep the cheaper node. Only
        the most promising few (by a resource lower bound) are packed in full.
        """
        cheapest = shapes[0]
        classes = _classes(pods)
        if self.config.bin_pack_node_strategy == "cheapest-node":
            return cheapest, _pack(classes, cheapest.allocatable)
        demand = total(pod.requirement.requests for pod in pods)
        viable = [o for o in shapes if all(r.fits_in(o.allocatable) for r in classes)]
        if not viable:
            return cheapest, _pack(classes, cheapest.allocatable)

        def lower_bound(offer: Offer) -> float:
            capacity = offer.allocatable
            nodes = max(
                demand.cpu_millis / max(1, capacity.cpu_millis),
                demand.memory_bytes / max(1, capacity.memory_bytes),
                demand.pods / max(1, capacity.pods),
                demand.gpus / capacity.gpus if demand.gpus else 0.0,
            )
            return math.ceil(nodes) * offer.price

        shortlist = sorted(viable, key=lambda o: (lower_bound(o), o.sort_key()))[:_SHAPES_TRIED]
        if viable[0] not in shortlist:
            # Luna's choice is always tried, so this strategy never costs more than it.
            shortlist.append(viable[0])
        best = shortlist[0]
        best_bins = _pack(classes, best.allocatable)
        best_cost = len(best_bins) * best.price
        for offer in shortlist[1:]:
            bins = _pack(classes, offer.allocatable)
            cost = len(bins) * offer.price
            if cost < best_cost - 1e-9 or (
                abs(cost - best_cost) <= 1e-9 and offer.sort_key() < best.sort_key()
            ):
                best, best_bins, best_cost = offer, bins, cost
        return best, best_bins

    def _open_bins(
        self, offer: Offer, affinity: NodeAffinity, bins: list[list[PendingPod]]
    ) -> None:
        for index, pod_bin in enumerate(bins):
            opened = self.open_node(offer, Placement.BIN_PACK, affinity)
            if isinstance(opened, str):
                for rest in bins[index:]:
                    for pod in rest:
                        self.unschedulable[pod.key] = opened
                return
            node = self.new_nodes[opened]
            node.pods.extend(pod.key for pod in pod_bin)
            node.free = node.free - total(pod.requirement.requests for pod in pod_bin)
            for pod in pod_bin:
                self.placements[pod.key] = pod.placement

    def _assign(self, index: int, pods: list[PendingPod], requests: Resources, count: int) -> None:
        node = self.new_nodes[index]
        node.pods.extend(pod.key for pod in pods)
        node.free = node.free - _scale(requests, count)
        for pod in pods:
            self.placements[pod.key] = pod.placement

    def place_bin_select(self, pods: list[PendingPod]) -> None:
        groups: dict[tuple[object, ...], list[PendingPod]] = {}
        for pod in pods:
            groups.setdefault(requirement_key(pod.requirement), []).append(pod)
        for group, members in groups.items():
            self._place_bin_select_group(group, members)

    def _bin_select_offers(self, requirement: PodRequirement) -> CandidateResult:
        return candidate_offers(
            requirement,
            self.offers,
            self.config,
            backed_off=self.backed_off,
            gpu_budget=self.budget.gpu_room(),
        )

    def _place_bin_select_group(self, group: object, members: list[PendingPod]) -> None:
        requirement = members[0].requirement
        result = self._bin_select_offers(requirement)
        if not result:
            for pod in members:
                self.unschedulable[pod.key] = result.reason
            return
        offer = result.offers[0]
        per_node = 1
        if self.config.bin_select_node_reuse and len(members) > 1:
            offer, per_node = _cheapest_for_group(result.offers, requirement.requests, len(members))
        queue = list(members)
        while queue:
            batch, queue = queue[:per_node], queue[per_node:]
            opened = self.open_node(offer, Placement.BIN_SELECT, group, batch[0].uid)
            if isinstance(opened, str):
                for pod in [*batch, *queue]:
                    self.unschedulable[pod.key] = opened
                return
            self._assign(opened, batch, requirement.requests, len(batch))

    # -- pods with inter-pod rules, one at a time ------------------------------------

    def place_constrained(
        self, pods: list[PendingPod], nodes: list[ExistingNode], others: Iterable[PendingPod]
    ) -> None:
        topology = Topology()
        self.spreads = _pending_spread(pods)
        for node in nodes:
            self.free.setdefault(node.name, node.free)
            topology.add_site(Site(node.name, node.labels, taints=node.taints), node.pods)
        placed = {pod.key: pod.topology for pod in others}
        for key, name in self.on_existing.items():
            if key in placed:
                topology.record(name, placed[key])
        for index, new in enumerate(self.new_nodes):
            topology.add_site(self._site(index, new), [placed[k] for k in new.pods if k in placed])
        by_uid = {node.assigned_pod_uid: node for node in nodes if node.assigned_pod_uid}
        for pod in pods:
            self._place_one(pod, nodes, by_uid, topology)

    def _site(self, index: int, new: _NewNode) -> Site:
        labels = offer_labels(new.offer, self.config, new.zone or None)
        labels[keys.PLACEMENT] = str(new.placement)
        undecided: dict[str, frozenset[str]] = {}
        if not new.zone:
            zones = frozenset(candidate_zones(new.offer.instance, self.config) or ())
            undecided = dict.fromkeys(ZONE_KEYS, zones)
        return Site(f"new:{index}", labels, undecided)

    def _place_one(
        self,
        pod: PendingPod,
        nodes: list[ExistingNode],
        by_uid: Mapping[str, ExistingNode],
        topology: Topology,
    ) -> None:
        incoming = Incoming(pod.topology, pod.requirement.affinity, pod.tolerations)
        opening = self._opening(pod)
        pod_offer: Offer | None = None
        zones: tuple[str, ...] = ()
        if not isinstance(opening, str):
            pod, pod_offer, zones = opening
        potential = dict.fromkeys(ZONE_KEYS, frozenset(zones))

        signature = _signature(pod)
        own = by_uid.get(pod.uid)
        requests = pod.requirement.requests

        def on_existing(node: ExistingNode) -> tuple[bool, bool]:
            """(admits, refuses for good): capacity only shrinks, node admission is
            static, hostname anti-affinity only grows within one simulation."""
            if not requests.fits_in(self.free[node.name]):
                return False, True
            if node is not own and (
                node.assigned_pod_uid == pod.uid or not node_admits(pod, node, self.config)
            ):
                return False, True
            site = topology.sites[node.name]
            if topology.refusal(incoming, site, potential):
                return False, topology.excludes_for_good(incoming, site)
            return True, False

        if own is not None and on_existing(own)[0]:
            target: ExistingNode | None = own
        else:
            target = self._first_fit(("existing", signature), nodes, on_existing)
        if target is not None:
            self._place_existing(pod, target.name)
            topology.record(target.name, pod.topology)
            return
        group = _group_of(pod)
        zone_matters = _zone_matters(pod.topology, topology.owned_anti_affinity(), self.spreads)
        joined: dict[int, Site] = {}

        def on_new(index: int) -> tuple[bool, bool]:
            new = self.new_nodes[index]
            if not requests.fits_in(new.free):
                return False, True
            if pod.placement is Placement.BIN_SELECT and not self.config.bin_select_node_reuse:
                return False, True
            current = topology.sites[f"new:{index}"]
            site = self._joinable(
                topology,
                current,
                incoming,
                potential=potential,
                zones=zones,
                zone_matters=zone_matters,
            )
            if site is None:
                return False, topology.excludes_for_good(incoming, current)
            joined[index] = site
            return True, False

        chosen = self._first_fit(("new", signature), self.by_group.get(group, []), on_new)
        if chosen is not None:
            new, site = self.new_nodes[chosen], joined[chosen]
            if zone_matters and not new.zone:
                # A planned node whose zone was free is put where this pod may go.
                new.zone = site.labels[keys.ZONE]
                topology.decide(site)
            self._assign(chosen, [pod], requests, 1)
            topology.record(site.name, pod.topology)
            return
        if pod_offer is None:
            self.unschedulable[pod.key] = str(opening)
            return
        self._open_for(
            pod, pod_offer, zones, incoming=incoming, potential=potential, topology=topology
        )

    def _first_fit(
        self, signature: object, candidates: list[T], check: Callable[[T], tuple[bool, bool]]
    ) -> T | None:
        """The first candidate `check` admits. Identical pods keep a cursor past the
        leading candidates refused for good, so a thousand anti-affine replicas do not
        each look again at every node the others filled."""
        start = self.cursors.get(signature, 0)
        advancing = True
        for position in range(start, len(candidates)):
            admitted, for_good = check(candidates[position])
            if admitted:
                return candidates[position]
            if advancing and for_good:
                self.cursors[signature] = position + 1
            else:
                advancing = False
        return None

    @staticmethod
    def _joinable(
        topology: Topology,
        site: Site,
        incoming: Incoming,
        *,
        potential: Mapping[str, frozenset[str]],
        zones: tuple[str, ...],
        zone_matters: bool,
    ) -> Site | None:
        """`site` if the rules admit the pod there; for a planned node whose zone is still
        free and a pod with a zone-keyed rule, the site put in the least loaded zone that
        admits it; None if none does."""
        possible = site.possible(keys.ZONE)
        if not zone_matters or possible is None:
            return None if topology.refusal(incoming, site, potential) else site
        choices = []
        for order, zone in enumerate(z for z in zones if not possible or z in possible):
            # Counted as if there, so the pods already on it count in that zone.
            pinned = Site(site.name, {**site.labels, **dict.fromkeys(ZONE_KEYS, zone)}, {})
            topology.decide(pinned)
            if not topology.refusal(incoming, pinned, potential):
                choices.append((topology.spread_load(incoming, pinned), order, pinned))
            topology.decide(site)
        return min(choices, key=lambda c: c[:2])[2] if choices else None

    def _opening(self, pod: PendingPod) -> tuple[PendingPod, Offer, tuple[str, ...]] | str:
        """The offer a new node for `pod` would have and the zones it could go in (the pod
        comes back as bin-select when it is too large for the bin-pack shape)."""
        offer: Offer | None = None
        if pod.placement is Placement.BIN_PACK:
            affinity = pod.requirement.affinity
            offer = self.bin_pack_offers.get(affinity)
            if offer is None:
                shape = self._bin_pack_shape(affinity)
                if not shape:
                    return shape.reason
                offer = self.bin_pack_offers.setdefault(affinity, shape.offers[0])
            if not pod.requirement.requests.fits_in(offer.allocatable):
                pod = _as_bin_select(pod)
        if pod.placement is Placement.BIN_SELECT or offer is None:
            result = self._bin_select_offers(pod.requirement)
            if not result:
                return result.reason
            offer = result.offers[0]
        zones = candidate_zones(offer.instance, self.config) or ()
        allowed = pod.requirement.affinity.allowed_values(keys.ZONE)
        blocked = self.zones_blocked(offer.name, str(offer.category)) if self.zones_blocked else ()
        zones = tuple(z for z in zones if (allowed is None or z in allowed) and z not in blocked)
        return pod, offer, zones

    def _open_for(
        self,
        pod: PendingPod,
        offer: Offer,
        zones: tuple[str, ...],
        *,
        incoming: Incoming,
        potential: Mapping[str, frozenset[str]],
        topology: Topology,
    ) -> None:
        name = f"new:{len(self.new_nodes)}"
        labels = offer_labels(offer, self.config)
        labels[keys.PLACEMENT] = str(pod.placement)
        zone = ""
        if _zone_matters(pod.topology, topology.owned_anti_affinity(), self.spreads):
            if not zones:
                self.unschedulable[pod.key] = (
                    f"its {describe_topology(pod.topology)} needs to know the zones a new "
                    f"{offer.instance.name} node can be put in: set the zones option"
                )
                return
            choices = []
            reason = ""
            for order, candidate in enumerate(zones):
                site = Site(name, {**labels, **dict.fromkeys(ZONE_KEYS, candidate)})
                refusal = topology.refusal(incoming, site, potential)
                if refusal:
                    reason = refusal
                    continue
                choices.append((topology.spread_load(incoming, site), order, candidate, site))
            if not choices:
                self.unschedulable[pod.key] = (
                    f"no node in any zone it can use ({', '.join(zones)}) can take it: {reason}"
                )
                return
            _, _, zone, site = min(choices)
        else:
            site = Site(name, labels, dict.fromkeys(ZONE_KEYS, frozenset(zones)))
            refusal = topology.refusal(incoming, site, potential)
            if refusal:
                self.unschedulable[pod.key] = f"not even a new node can take it: {refusal}"
                return
        opened = self.open_node(offer, pod.placement, _group_of(pod), pod.uid, zone)
        if isinstance(opened, str):
            self.unschedulable[pod.key] = opened
            return
        topology.add_site(site)
        self._assign(opened, [pod], pod.requirement.requests, 1)
        topology.record(name, pod.topology)

    def plan(self) -> Plan:
        return Plan(
            new_nodes=tuple(
                PlannedNode(
                    node.offer,
                    node.placement,
                    tuple(node.pods),
                    node.uid if node.placement is Placement.BIN_SELECT else "",
                    node.zone,
                )
                for node in self.new_nodes
            ),
            on_existing=dict(self.on_existing),
            unschedulable=dict(self.unschedulable),
            placements=dict(self.placements),
        )


def _signature(pod: PendingPod) -> object:
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


def _group_of(pod: PendingPod) -> object:
    if pod.placement is Placement.BIN_PACK:
        return pod.requirement.affinity
    return requirement_key(pod.requirement)


def _as_bin_select(pod: PendingPod) -> PendingPod:
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


def _zone_matters(
    topology: PodTopology,
    owned: Iterable[PodAffinityTerm],
    spreads: Iterable[tuple[str, SpreadConstraint]],
) -> bool:
    """Whether a zone-keyed rule bears on the pod: its own, a placed pod's anti-affinity
    that selects it, or a pending pod's zone spread that counts it (its node's zone is then
    decided now, not left to the provider, so the count is known)."""
    if not ZONE_KEYS.isdisjoint(topology.topology_keys()):
        return True
    if any(
        term.topology_key in ZONE_KEYS and term.selects(topology.namespace, topology.labels)
        for term in owned
    ):
        return True
    return any(
        c.topology_key in ZONE_KEYS and ns == topology.namespace and c.selects(topology.labels)
        for ns, c in spreads
    )


_SHAPES_TRIED = 6


def _classes(pods: list[PendingPod]) -> dict[Resources, list[PendingPod]]:
    """Identical-request groups, largest first (dominant share is computed per bin later)."""
    classes: dict[Resources, list[PendingPod]] = {}
    for pod in pods:
        classes.setdefault(pod.requirement.requests, []).append(pod)
    return classes


def _pack(
    classes: dict[Resources, list[PendingPod]], capacity: Resources
) -> list[list[PendingPod]]:
    """Multi-resource first-fit decreasing of identical-pod groups into bins of `capacity`.

    Groups are taken by decreasing dominant share of the bin; each group fills the open
    bins in opening order, as many pods at a time as fit, then opens new bins. Pods that
    fit no empty bin are left out (the caller treats them as bin-select).
    """

    def dominant_share(requests: Resources) -> float:
        return max(
            requests.cpu_millis / capacity.cpu_millis if capacity.cpu_millis else 0.0,
            requests.memory_bytes / capacity.memory_bytes if capacity.memory_bytes else 0.0,
            requests.gpus / capacity.gpus if capacity.gpus else 0.0,
            requests.pods / capacity.pods if capacity.pods else 0.0,
        )

    ordered = sorted(
        classes.items(),
        key=lambda item: (
            -dominant_share(item[0]),
            -item[0].cpu_millis,
            -item[0].memory_bytes,
            item[1][0].key,
        ),
    )
    bins: list[list[PendingPod]] = []
    free: list[Resources] = []
    for requests, members in ordered:
        per_empty_bin = fit_count(requests, capacity)
        if per_empty_bin == 0:
            continue
        queue = members
        for index in range(len(bins)):
            if not queue:
                break
            count = min(fit_count(requests, free[index]), len(queue))
            if count:
                bins[index].extend(queue[:count])
                free[index] = free[index] - _scale(requests, count)
                queue = queue[count:]
        while queue:
            count = min(per_empty_bin, len(queue))
            bins.append(list(queue[:count]))
            free.append(capacity - _scale(requests, count))
            queue = queue[count:]
    return bins


def _cheapest_for_group(
    offers: tuple[Offer, ...], requests: Resources, count: int
) -> tuple[Offer, int]:
    """Offer with the lowest total cost for `count` identical pods; a larger type wins only
    when strictly cheaper than the cheapest type's total (ties keep one node per pod)."""
    best = offers[0]
    best_per_node = max(1, min(fit_count(requests, best.allocatable), count))
    best_total = math.ceil(count / best_per_node) * best.price
    for offer in offers[1:]:
        per_node = max(1, min(fit_count(requests, offer.allocatable), count))
        total = math.ceil(count / per_node) * offer.price
        if total < best_total - 1e-6:
            best, best_per_node, best_total = offer, per_node, total
    return best, best_per_node


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


def simulate(
    pods: Iterable[PendingPod],
    offers: list[Offer],
    config: Config,
    *,
    existing: Iterable[ExistingNode] = (),
    guardrails: Guardrails | None = None,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
    zones_blocked: Callable[[str, str], frozenset[str]] | None = None,
) -> Plan:
    """Place `pods`: on `existing` nodes first, then on new nodes from `offers`.
    `zones_blocked(type, category)` names zones a new node of that offer must not use."""
    nodes = list(existing)
    simulation = _Simulation(
        offers, config, guardrails or Guardrails.from_config(config), backed_off, zones_blocked
    )
    ordered = []
    for pod in sorted(pods, key=lambda p: (-p.priority, p.key)):
        if pod.unsupported:
            simulation.unschedulable[pod.key] = pod.unsupported
        else:
            ordered.append(pod)
    constrained, free = _split_constrained(ordered, nodes)
    left = simulation.place_on_existing(free, nodes)
    bin_pack = [p for p in left if p.placement is Placement.BIN_PACK]
    bin_select = [p for p in left if p.placement is Placement.BIN_SELECT]
    oversized = simulation.place_bin_pack(bin_pack)
    simulation.place_bin_select([_as_bin_select(p) for p in oversized] + bin_select)
    if constrained:
        simulation.place_constrained(constrained, nodes, free)
    return simulation.plan()


def _split_constrained(
    pods: list[PendingPod], nodes: list[ExistingNode]
) -> tuple[list[PendingPod], list[PendingPod]]:
    """(pods the inter-pod rules bear on, the others). A pod without rules of its own is
    constrained when some running or pending pod's required anti-affinity, or a pending
    pod's hard spread, selects it."""
    terms = {term for pod in pods for term in pod.topology.anti_affinity}
    terms.update(term for node in nodes for placed in node.pods for term in placed.anti_affinity)
    spreads = _pending_spread(pods)
    if not terms and not any(pod.topology.constrained for pod in pods):
        return [], pods
    constrained, free = [], []
    for pod in pods:
        own = pod.topology
        if (
            own.constrained
            or any(t.selects(own.namespace, own.labels) for t in terms)
            or any(ns == own.namespace and c.selects(own.labels) for ns, c in spreads)
        ):
            constrained.append(pod)
        else:
            free.append(pod)
    return constrained, free


def _pending_spread(pods: Iterable[PendingPod]) -> frozenset[tuple[str, SpreadConstraint]]:
    return frozenset(
        (pod.topology.namespace, constraint) for pod in pods for constraint in pod.topology.spread
    )


def unconstrained(requests: Resources, offerings: frozenset[PriceCategory]) -> PodRequirement:
    """A requirement with nothing but resources and price categories (tests, benchmarks)."""
    return PodRequirement(requests=requests, constraints=InstanceConstraints(), offerings=offerings)
