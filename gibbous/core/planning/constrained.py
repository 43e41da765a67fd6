"""Placing the pods the inter-pod rules bear on (required pod affinity or anti-affinity,
hard topology spread, or selected by another pod's anti-affinity or spread), one by one
after the others: each on the first node, existing, in flight or planned, that the
scheduler's inter-pod filters admit, else on a new node put in the zone the rules allow
with the fewest matching pods (`interpod`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer, candidate_zones, offer_labels
from gibbous.core.planning.interpod import ZONE_KEYS, Incoming, Site, Topology
from gibbous.core.planning.packingmodel import ExistingNode, PendingPod, node_admits
from gibbous.core.planning.packingstate import (
    NewNode,
    PackingState,
    as_bin_select,
    group_of,
    pod_signature,
)
from gibbous.core.podmodel.podtopology import (
    PodAffinityTerm,
    PodTopology,
    SpreadConstraint,
    describe_topology,
)

T = TypeVar("T")


class ConstrainedPacking(PackingState):
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

    def _site(self, index: int, new: NewNode) -> Site:
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

        signature = pod_signature(pod)
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
        group = group_of(pod)
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
                pod = as_bin_select(pod)
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
        opened = self.open_node(offer, pod.placement, group_of(pod), pod.uid, zone)
        if isinstance(opened, str):
            self.unschedulable[pod.key] = opened
            return
        topology.add_site(site)
        self._assign(opened, [pod], pod.requirement.requests, 1)
        topology.record(name, pod.topology)


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


def split_constrained(
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
