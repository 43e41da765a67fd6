"""The grouped fast path of the packing simulation: bin-pack pods by multi-resource
first-fit decreasing onto nodes of the bin-pack shape, identical pods as one group (which
keeps 10,000 pods fast); bin-select pods a node type choice per group of identical
pods."""

from __future__ import annotations

import math

from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.packingmodel import PendingPod, fit_count, requirement_key, scaled
from gibbous.core.planning.packingstate import PackingState
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.resources import Resources, total


class GroupedPacking(PackingState):
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

    def place_bin_select(self, pods: list[PendingPod]) -> None:
        groups: dict[tuple[object, ...], list[PendingPod]] = {}
        for pod in pods:
            groups.setdefault(requirement_key(pod.requirement), []).append(pod)
        for group, members in groups.items():
            self._place_bin_select_group(group, members)

    def _place_bin_select_group(self, group: object, members: list[PendingPod]) -> None:
        requirement = members[0].requirement
        result = self._bin_select_offers(requirement)
        if not result:
            for pod in members:
                self.unschedulable[pod.key] = result.reason
            return
        nodes = [(result.offers[0], 1)] * len(members)
        if self.config.bin_select_node_reuse and len(members) > 1:
            nodes = _cheapest_for_group(result.offers, requirement.requests, len(members))
        queue = list(members)
        for offer, per_node in nodes:
            batch, queue = queue[:per_node], queue[per_node:]
            opened = self.open_node(offer, Placement.BIN_SELECT, group, batch[0].uid)
            if isinstance(opened, str):
                for pod in [*batch, *queue]:
                    self.unschedulable[pod.key] = opened
                return
            self._assign(opened, batch, requirement.requests, len(batch))


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
                free[index] = free[index] - scaled(requests, count)
                queue = queue[count:]
        while queue:
            count = min(per_empty_bin, len(queue))
            bins.append(list(queue[:count]))
            free.append(capacity - scaled(requests, count))
            queue = queue[count:]
    return bins


def _cheapest_for_group(
    offers: tuple[Offer, ...], requests: Resources, count: int
) -> list[tuple[Offer, int]]:
    """The nodes, each (offer, pods on it), with the lowest total cost for `count` identical
    pods, mixing types (3 pods of one GPU: one 2-GPU node and one 1-GPU node when that is
    cheaper than three 1-GPU nodes). Larger types win only when strictly cheaper than the
    cheapest type alone (ties keep one node per pod)."""
    best = offers[0]
    best_per_node = max(1, min(fit_count(requests, best.allocatable), count))
    baseline = [(best, best_per_node)] * math.ceil(count / best_per_node)
    # For each number of pods a node holds, its cheapest offer (offers are cheapest first).
    by_size: dict[int, Offer] = {}
    for offer in offers:
        by_size.setdefault(max(1, min(fit_count(requests, offer.allocatable), count)), offer)
    # cost[n]: the cheapest nodes for n pods; a node of size k holds min(k, n) of them.
    cost = [0.0] * (count + 1)
    choice = [0] * (count + 1)
    for n in range(1, count + 1):
        cost[n] = math.inf
        for size, offer in by_size.items():
            total = offer.price + cost[max(0, n - size)]
            if total < cost[n] - 1e-9:
                cost[n], choice[n] = total, size
    if cost[count] >= best.price * len(baseline) - 1e-6:
        return baseline
    nodes = []
    n = count
    while n > 0:
        size = choice[n]
        nodes.append((by_size[size], min(size, n)))
        n -= size
    nodes.sort(key=lambda node: -node[1])
    return nodes
