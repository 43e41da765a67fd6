"""Bin-pack node choice for batches of pods of differing shapes: the balanced packing (each
node takes every shape's share of the batch) and the fill-aware choice of each node's type
(a partly filled node is the cheapest type that holds what it holds).

Expected costs are worked by hand in each test; the property compares with first-fit
decreasing computed here, from the offers, the rule the planner followed before.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gibbous.core.choice.selection import Offer
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.groupedpacking import _pack_balanced
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod, offers

GI = 2**30
AWS_ON_DEMAND = [o for o in offers() if o.category is PriceCategory.ON_DEMAND]
TEMPLATE = next(o for o in AWS_ON_DEMAND if o.name == "m5.xlarge")


def offer(name: str, vcpu: int, memory_gib: int, price: float) -> Offer:
    """A node type whose allocatable is exactly its size (no reserved share), so the
    hand computations below read straight off the numbers."""
    instance = replace(
        TEMPLATE.instance,
        name=name,
        vcpu=vcpu,
        memory_bytes=memory_gib * GI,
        on_demand_price=price,
    )
    allocatable = Resources(
        cpu_millis=vcpu * 1000,
        memory_bytes=memory_gib * GI,
        pods=110,
        ephemeral_bytes=TEMPLATE.allocatable.ephemeral_bytes,
    )
    return Offer(instance, PriceCategory.ON_DEMAND, price, allocatable)


def pods(cfg: Config, *groups: tuple[int, str, str]) -> list[PendingPod]:
    out: list[PendingPod] = []
    for count, cpu, memory in groups:
        for _ in range(count):
            name = f"p{len(out):03d}"
            out.append(describe_pod(make_pod(name, cpu=cpu, memory=memory), cfg)[0])
    return out


def test_memory_heavy_and_cpu_heavy_pods_share_nodes() -> None:
    # One type, 4 vCPU / 16Gi at $1. Eight pods of 100m/4Gi and eight of 900m/1Gi: 8 vCPU
    # and 40Gi in all, so 3 nodes at least (40Gi / 16Gi = 2.5). First-fit decreasing takes
    # the 4Gi pods first (a quarter of the memory each): 4 per node fill two nodes' memory
    # with 400m of CPU used; no 900m/1Gi pod fits beside them, so those take two more nodes
    # (4 x 900m = 3.6 vCPU each): 4 nodes, $4. Sharing: 3 pods of each per node is 3 vCPU
    # and 15Gi, so 3 + 3 + 2 of each fit 3 nodes: $3. (The 4Gi pods stay bin-pack pods
    # under an 8Gi bin-select threshold.)
    cfg = config(
        binPackingNodeCpu="4", binPackingNodeMemory="16Gi", binSelectPodMemoryThreshold="8Gi"
    )
    node = offer("test.node", 4, 16, 1.0)
    batch = pods(cfg, (8, "100m", "4Gi"), (8, "900m", "1Gi"))
    plan = simulate(batch, [node], cfg)
    assert not plan.unschedulable
    assert len(plan.new_nodes) == 3
    assert plan.cost_per_hour == 3.0
    shapes = {p.key: p.requirement.requests.memory_bytes for p in batch}
    for planned in plan.new_nodes:  # each takes both shapes
        assert {shapes[k] for k in planned.pods} == {4 * GI, GI}


def test_the_partly_filled_last_node_is_the_cheapest_type_that_holds_it() -> None:
    # Big: 4 vCPU / 16Gi at $1.00; small: 2 vCPU / 8Gi at $0.65 (dearer per vCPU, so the
    # batch goes on big nodes). Five pods of 1800m/1Gi: two per big node, so 3 big nodes
    # ($3.00) with the last holding one pod; five small nodes would be $3.25. One pod
    # (1800m, 1Gi) fits the small type: 2 big + 1 small = $2.65.
    cfg = config(binPackingNodeCpu="2", binPackingNodeMemory="8Gi")
    big, small = offer("test.big", 4, 16, 1.0), offer("test.small", 2, 8, 0.65)
    plan = simulate(pods(cfg, (5, "1800m", "1Gi")), [small, big], cfg)
    assert not plan.unschedulable
    assert sorted(n.offer.name for n in plan.new_nodes) == ["test.big", "test.big", "test.small"]
    assert plan.cost_per_hour == 2.65
    # Luna's rule keeps one type: the cheapest meeting the spec, one pod per small node.
    luna = config(
        binPackingNodeCpu="2", binPackingNodeMemory="8Gi", binPackingNodeStrategy="cheapest-node"
    )
    assert simulate(pods(luna, (5, "1800m", "1Gi")), [small, big], luna).cost_per_hour == 3.25


# --- property: never more than first-fit decreasing, the rule before ----------------------

# Six real AWS types; those meeting the default bin-pack spec (4 vCPU, 16 GiB: c6a.xlarge
# has 8 GiB) are five, few enough that the planner packs every one of them.
TYPES = r"^(t3a|c6a|m6a)\.(xlarge|2xlarge)$"
CANDIDATES = [
    o
    for o in AWS_ON_DEMAND
    if o.name in {f"{f}.{s}" for f in ("t3a", "c6a", "m6a") for s in ("xlarge", "2xlarge")}
    and o.instance.vcpu >= 4
    and o.instance.memory_bytes >= 16 * GI
]
SHAPES = st.tuples(
    st.sampled_from(["100m", "250m", "500m", "1", "1500m"]),
    st.sampled_from(["100Mi", "256Mi", "512Mi", "1Gi", "2Gi", "3Gi"]),
    st.integers(min_value=1, max_value=80),
)


def first_fit_decreasing(batch: list[PendingPod], capacity: Resources) -> int:
    """Nodes used by multi-resource first-fit decreasing of identical-pod groups: groups by
    decreasing dominant share of the node, each filling the open nodes in order, as many
    as fit, then new nodes."""
    groups: dict[Resources, int] = {}
    first: dict[Resources, str] = {}
    for pod in batch:
        r = pod.requirement.requests
        groups[r] = groups.get(r, 0) + 1
        first.setdefault(r, pod.key)

    def share(r: Resources) -> float:
        return max(
            r.cpu_millis / capacity.cpu_millis,
            r.memory_bytes / capacity.memory_bytes,
            r.pods / capacity.pods,
        )

    def fit(r: Resources, room: list[int]) -> int:
        return min(room[0] // r.cpu_millis, room[1] // r.memory_bytes, room[2] // r.pods)

    rooms: list[list[int]] = []
    for r in sorted(groups, key=lambda r: (-share(r), -r.cpu_millis, -r.memory_bytes, first[r])):
        left = groups[r]
        for room in rooms:
            n = min(left, fit(r, room))
            room[0] -= n * r.cpu_millis
            room[1] -= n * r.memory_bytes
            room[2] -= n * r.pods
            left -= n
        while left:
            room = [capacity.cpu_millis, capacity.memory_bytes, capacity.pods]
            n = min(left, fit(r, room))
            room = [room[0] - n * r.cpu_millis, room[1] - n * r.memory_bytes, room[2] - n * r.pods]
            rooms.append(room)
            left -= n
    return len(rooms)


@settings(max_examples=25, deadline=None)
@given(st.lists(SHAPES, min_size=1, max_size=12))
# First fit strands CPU here: $4.9632 on its best type, $4.512 balanced.
@example([("250m", "3Gi", 40), ("1500m", "256Mi", 40), ("500m", "2Gi", 30), ("1", "1Gi", 30)])
def test_never_costs_more_than_first_fit_decreasing(groups: list[tuple[str, str, int]]) -> None:
    cfg = config(binPackingNodeTypeRegexp=TYPES)
    batch = pods(cfg, *((count, cpu, memory) for cpu, memory, count in groups))
    plan = simulate(batch, AWS_ON_DEMAND, cfg)
    assert not plan.unschedulable
    before = min(first_fit_decreasing(batch, o.allocatable) * o.price for o in CANDIDATES)
    assert plan.cost_per_hour <= before + 1e-9
    # and never below what the resources alone need of the cheapest type per vCPU
    cpu = sum(p.requirement.requests.cpu_millis for p in batch)
    floor = min(o.price / o.allocatable.cpu_millis for o in CANDIDATES) * cpu
    assert plan.cost_per_hour >= floor - 1e-9
    assert math.isfinite(plan.cost_per_hour)


# --- the balanced packing itself: its dealing rule and its bookkeeping -------------------

CAPACITY = Resources(cpu_millis=1000, memory_bytes=4 * GI, pods=110)


def _groups(*shapes: tuple[int, str]) -> dict[Resources, list[PendingPod]]:
    """Groups of identical pods, `count` pods of `cpu` and 16Mi each."""
    cfg = config()
    classes: dict[Resources, list[PendingPod]] = {}
    for pod in pods(cfg, *((count, cpu, "16Mi") for count, cpu in shapes)):
        classes.setdefault(pod.requirement.requests, []).append(pod)
    return classes


def _cpu_of(bin_pods: list[PendingPod]) -> list[int]:
    return sorted(p.requirement.requests.cpu_millis for p in bin_pods)


def test_a_group_of_five_over_ten_bins_lands_in_every_other_one() -> None:
    # Ten 900m pods and five 100m pods on 1-vCPU bins: 9.5 vCPU, so 10 bins. The 900m pods
    # (the larger share) are dealt first, one a bin (a share of 1.0). The 100m pods' share is
    # 0.5 a bin: the fraction carried from bin to bin reaches a whole pod at the 2nd, 4th,
    # 6th, 8th and 10th bins, each with the 100m its 900m pod left.
    bins, rooms = _pack_balanced(_groups((10, "900m"), (5, "100m")), CAPACITY)
    assert [_cpu_of(b) for b in bins] == [[900], [100, 900]] * 5
    assert [r.cpu_millis for r in rooms] == [100, 0] * 5


def test_a_pod_dealt_past_the_last_bin_takes_the_room_left_and_the_room_is_counted() -> None:
    # 1000m + 2 x 900m + 100m = 2.9 vCPU: 3 bins. The 1000m pod (share 1/3) is dealt to the
    # 3rd bin, the two 900m pods (share 2/3) to the 1st and 2nd; the 100m pod (share 1/3) is
    # due at the 3rd, which is full, so it is left over and goes first-fit into the 1st bin's
    # 100m. Rooms left: 0, 100m, 0; memory: 4Gi less 16Mi a pod.
    bins, rooms = _pack_balanced(_groups((1, "1000m"), (2, "900m"), (1, "100m")), CAPACITY)
    assert [_cpu_of(b) for b in bins] == [[100, 900], [900], [1000]]
    assert [r.cpu_millis for r in rooms] == [0, 100, 0]
    assert [r.memory_bytes for r in rooms] == [4 * GI - 2 * 16 * 2**20, *[4 * GI - 16 * 2**20] * 2]
    assert [r.pods for r in rooms] == [108, 109, 109]
