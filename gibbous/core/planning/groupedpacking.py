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
        """Pack per affinity group (the node type and bins of `_choose_bin_pack_offer`, each
        partly filled node then made the cheapest type that holds it); returns pods too
        large for the bin-pack shape."""
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
            offer, (bins, free) = self._choose_bin_pack_offer(members, shape.offers)
            fitting = {pod.key for pod_bin in bins for pod in pod_bin}
            oversized.extend(pod for pod in members if pod.key not in fitting)
            types = [offer] * len(bins)
            if self.config.bin_pack_node_strategy != "cheapest-node":
                types = _downsized(offer, free, shape.offers)
            self._open_bins(types, affinity, bins)
        return oversized

    def _choose_bin_pack_offer(
        self, pods: list[PendingPod], shapes: tuple[Offer, ...]
    ) -> tuple[Offer, _Bins]:
        """The bin-pack node type and its bins.

        `cheapest-node` (Luna): the cheapest type meeting the spec. `lowest-total-cost`
        (default): among types meeting the spec and holding every pod, the one whose
        packing of these pods costs least in total; ties keep the cheaper node. Only
        the most promising few (by a resource lower bound) are packed in full: first-fit
        decreasing, and balanced too where first fit needs more nodes than that bound; the
        cheaper wins, so the choice never costs more than first fit alone.
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
        best, best_cost = shortlist[0], math.inf
        best_bins: _Bins = ([], [])
        for offer in shortlist:
            bound = lower_bound(offer)
            if bound > best_cost + 1e-9:
                continue  # cannot beat the best packing found so far
            # First-fit decreasing is best when the pods are few per node; when it leaves
            # room the lower bound says is not needed, the balanced packing is tried too.
            packings = [_pack(classes, offer.allocatable)]
            if len(packings[0][0]) * offer.price > bound + 1e-9:
                packings.append(_pack_balanced(classes, offer.allocatable))
            for bins in packings:
                cost = len(bins[0]) * offer.price
                if cost < best_cost - 1e-9 or (
                    abs(cost - best_cost) <= 1e-9 and offer.sort_key() < best.sort_key()
                ):
                    best, best_bins, best_cost = offer, bins, cost
        return best, best_bins

    def _open_bins(
        self, types: list[Offer], affinity: NodeAffinity, bins: list[list[PendingPod]]
    ) -> None:
        for index, (offer, pod_bin) in enumerate(zip(types, bins, strict=True)):
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

# Pods per bin, and the room each bin has left.
_Bins = tuple[list[list[PendingPod]], list[Resources]]


def _classes(pods: list[PendingPod]) -> dict[Resources, list[PendingPod]]:
    """Identical-request groups, largest first (dominant share is computed per bin later)."""
    classes: dict[Resources, list[PendingPod]] = {}
    for pod in pods:
        classes.setdefault(pod.requirement.requests, []).append(pod)
    return classes


def _pack(classes: dict[Resources, list[PendingPod]], capacity: Resources) -> _Bins:
    """Multi-resource first-fit decreasing of identical-pod groups into bins of `capacity`.

    Groups are taken by decreasing dominant share of the bin; each group fills the open
    bins in opening order, as many pods at a time as fit, then opens new bins. Pods that
    fit no empty bin are left out (the caller treats them as bin-select). Returns the bins
    and the room left in each.
    """
    bins: list[list[PendingPod]] = []
    free: list[Resources] = []
    _first_fit(_by_dominant_share(classes, capacity), capacity, bins, free)
    return bins, free


def _by_dominant_share(
    classes: dict[Resources, list[PendingPod]], capacity: Resources
) -> list[tuple[Resources, list[PendingPod]]]:
    def dominant_share(requests: Resources) -> float:
        return max(
            requests.cpu_millis / capacity.cpu_millis if capacity.cpu_millis else 0.0,
            requests.memory_bytes / capacity.memory_bytes if capacity.memory_bytes else 0.0,
            requests.gpus / capacity.gpus if capacity.gpus else 0.0,
            requests.pods / capacity.pods if capacity.pods else 0.0,
        )

    return sorted(
        classes.items(),
        key=lambda item: (
            -dominant_share(item[0]),
            -item[0].cpu_millis,
            -item[0].memory_bytes,
            item[1][0].key,
        ),
    )


def _first_fit(
    ordered: list[tuple[Resources, list[PendingPod]]],
    capacity: Resources,
    bins: list[list[PendingPod]],
    free: list[Resources],
) -> None:
    """Each group in turn fills the bins in opening order, as many pods at a time as fit,
    then opens new bins (`bins` and `free` grow in place)."""
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


def _pack_balanced(classes: dict[Resources, list[PendingPod]], capacity: Resources) -> _Bins:
    """Bins that each take every group's share of the batch, for a large batch of pods of
    differing shapes: first-fit decreasing fills a node with the pods that weigh most in one
    resource (memory, say) and strands the other (its CPU), and on a node holding dozens of
    pods that waste reaches a third. Here the number of bins is the resource lower bound
    (the most binding resource, rounded up); each bin takes each group's per-bin share, the
    fractions carried from bin to bin (so a group of 5 pods over 10 bins lands in every
    other one); a pod that does not fit its bin is carried to the next; the pods left over
    then go first-fit into the room left, and into new bins after that. Pods that fit no
    empty bin are left out, as in `_pack`. Pods with extended resources are left to `_pack`
    (nothing is balanced: the result is first fit's)."""
    if any(requests.extended for requests in classes):
        return _pack(classes, capacity)
    size = _vector(capacity)
    ordered = [
        (_vector(requests), members)
        for requests, members in _by_dominant_share(classes, capacity)
        if _fits(_vector(requests), size) > 0
    ]
    if not ordered:
        return [], []
    count = 1
    for dimension, have in enumerate(size):
        need = sum(vector[dimension] * len(members) for vector, members in ordered)
        if need and have > 0:
            count = max(count, -(-need // have))
    bins: list[list[PendingPod]] = [[] for _ in range(count)]
    rooms = [list(size) for _ in range(count)]
    taken = [_spread(vector, members, bins, rooms) for vector, members in ordered]
    for index, (vector, members) in enumerate(ordered):
        start = taken[index]
        for pod_bin, room in zip(bins, rooms, strict=True):
            if start == len(members):
                break
            fits = min(_fits(vector, room), len(members) - start)
            if fits:
                pod_bin.extend(members[start : start + fits])
                for dimension, need in enumerate(vector):
                    room[dimension] -= need * fits
                start += fits
        while start < len(members):  # what no room held: new bins
            fits = min(_fits(vector, size), len(members) - start)
            bins.append(list(members[start : start + fits]))
            rooms.append([have - need * fits for have, need in zip(size, vector, strict=True)])
            start += fits
    kept = [index for index, pod_bin in enumerate(bins) if pod_bin]
    return [bins[index] for index in kept], [
        _resources(rooms[index], capacity.extended) for index in kept
    ]


def _spread(
    vector: tuple[int, ...],
    members: list[PendingPod],
    bins: list[list[PendingPod]],
    rooms: list[list[int]],
) -> int:
    """Deal one group's pods over the bins, its per-bin share (pods / bins) each, the
    fraction carried from bin to bin, a pod its bin has no room for carried to the next;
    returns how many were placed. Bins that get none of the group are skipped over, so a
    group costs the bins it lands in, not every bin."""
    share = len(members) / len(bins)
    carried = 0.0
    start = 0
    index = 0
    while index < len(bins) and start < len(members):
        if carried + share < 1 - 1e-9:  # skip to the first bin where a whole pod is due
            skip = max(0, math.ceil((1 - 1e-9 - carried) / share) - 1)
            carried += skip * share
            index += skip
            if index >= len(bins):
                break
        carried += share
        want = min(int(carried + 1e-9), len(members) - start)
        room = rooms[index]
        fits = min(want, _fits(vector, room))
        if fits > 0:
            bins[index].extend(members[start : start + fits])
            for dimension, need in enumerate(vector):
                room[dimension] -= need * fits
            start += fits
            carried -= fits
        index += 1
    return start


def _vector(resources: Resources) -> tuple[int, int, int, int, int]:
    return (
        resources.cpu_millis,
        resources.memory_bytes,
        resources.gpus,
        resources.pods,
        resources.ephemeral_bytes,
    )


def _resources(vector: list[int], extended: tuple[tuple[str, int], ...]) -> Resources:
    cpu_millis, memory_bytes, gpus, pods, ephemeral_bytes = vector
    return Resources(cpu_millis, memory_bytes, gpus, pods, ephemeral_bytes, extended)


def _fits(vector: tuple[int, ...], room: tuple[int, ...] | list[int]) -> int:
    """`fit_count` over plain vectors: how many pods of `vector` fit into `room`."""
    most = 1 << 30
    for need, have in zip(vector, room, strict=True):
        if need > 0:
            most = min(most, have // need if have > 0 else 0)
    return most


def _downsized(offer: Offer, free: list[Resources], shapes: tuple[Offer, ...]) -> list[Offer]:
    """Each bin's node type: `offer`, or the cheapest type meeting the spec that holds what
    the bin holds when that is cheaper (the last, partly filled node of a batch, or a bin
    whose load a smaller type holds)."""
    cheaper = sorted((o for o in shapes if o.price < offer.price - 1e-12), key=Offer.sort_key)
    if not cheaper:
        return [offer] * len(free)
    capacity = offer.allocatable
    # A load no cheaper type can hold is known before trying them one by one.
    most = cheaper[0].allocatable
    for other in cheaper[1:]:
        most = most.maximum(other.allocatable)
    types = []
    for room in free:
        load = capacity - room
        chosen = offer
        if load.fits_in(most):
            chosen = next((o for o in cheaper if load.fits_in(o.allocatable)), offer)
        types.append(chosen)
    return types


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
