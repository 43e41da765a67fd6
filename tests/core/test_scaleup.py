from hypothesis import given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.planning.backoff import Backoffs, FailureKind
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import Guardrails, PendingPod
from gibbous.core.planning.scaleup import InFlight, LaunchPlan, plan_scale_up
from gibbous.core.podmodel.resources import Resources
from tests.factories import config, make_pod, offers

CFG = config()
OFFERS = offers()


def pending(*pods: dict[str, object]) -> list[PendingPod]:
    return [describe_pod(p, CFG)[0] for p in pods]


def test_pending_pods_become_launches_with_labels_and_zones() -> None:
    plan = plan_scale_up(
        pending(make_pod("big", cpu="3", uid="u-big"), make_pod("s", cpu="100m")),
        OFFERS,
        CFG,
        now=0,
    )
    assert len(plan.launches) == 2
    select = next(launch for launch in plan.launches if launch.placement is Placement.BIN_SELECT)
    assert select.assigned_pod_uid == "u-big" and select.labels[keys.ASSIGNED_POD_UID] == "u-big"
    assert select.zones and all(z.startswith("us-west-2") for z in select.zones)
    assert not plan.unsatisfiable


def test_launches_in_flight_are_not_launched_again() -> None:
    pods = pending(*(make_pod(f"s{i}", cpu="250m") for i in range(6)))
    first = plan_scale_up(pods, OFFERS, CFG, now=0)
    (launch,) = first.launches
    flying = InFlight(
        token="t-1",
        offer=launch.offer,
        placement=launch.placement,
        zone=launch.zones[0],
        started_at=0,
        labels=launch.labels,
    )
    second = plan_scale_up(pods, OFFERS, CFG, in_flight=[flying], now=30)
    assert second.launches == ()
    assert set(second.on_existing.values()) == {"in-flight:t-1"}


def test_backed_off_zones_are_skipped_and_a_pair_blocked_everywhere_gives_way() -> None:
    pod = make_pod("z", cpu="3", node_selector={keys.ZONE: "us-west-2a"})
    (launch,) = plan_scale_up(pending(pod), OFFERS, CFG, now=0).launches
    assert launch.zones == ("us-west-2a",)
    backoffs = Backoffs().add(
        instance_type=launch.offer.name,
        category=str(launch.offer.category),
        zone="us-west-2a",
        kind=FailureKind.INSUFFICIENT_CAPACITY,
        now=0,
        duration_s=900,
    )
    # The pod may only use us-west-2a, where its first choice is backed off: the next
    # candidate type is planned there (a stock-out moves on, it does not strand the pod).
    (next_choice,) = plan_scale_up(pending(pod), OFFERS, CFG, backoffs=backoffs, now=10).launches
    assert next_choice.zones == ("us-west-2a",)
    assert (next_choice.offer.name, next_choice.offer.category) != (
        launch.offer.name,
        launch.offer.category,
    )
    free = make_pod("y", cpu="3")
    (moved,) = plan_scale_up(pending(free), OFFERS, CFG, backoffs=backoffs, now=10).launches
    assert "us-west-2a" not in moved.zones


def test_guardrails_count_what_is_in_flight() -> None:
    cfg = config(clusterGPULimit=1)
    gpu_pods = [
        describe_pod(make_pod(f"g{i}", cpu="1", gpus=1, uid=f"g{i}"), cfg)[0] for i in range(2)
    ]
    plan = plan_scale_up(
        gpu_pods, offers(cfg=cfg), cfg, guardrails=Guardrails.from_config(cfg, gpus=1), now=0
    )
    assert plan.launches == ()
    assert all("clusterGPULimit" in reason for reason in plan.unsatisfiable.values())


def test_spot_launches_carry_the_spot_taint() -> None:
    pod = make_pod("sp", cpu="3", annotations={keys.INSTANCE_OFFERINGS: "spot"})
    (launch,) = plan_scale_up(pending(pod), OFFERS, CFG, now=0).launches
    assert str(launch.offer.category) == "spot"
    assert launch.taints == ({"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"},)


SPOT_TOLERATION = {
    "key": keys.SPOT_TAINT_KEY,
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def in_flight(launch: LaunchPlan, token: str, bound: Resources | None = None) -> InFlight:
    """A launch the cloud accepted, as the loop hands it to the next decision."""
    return InFlight(
        token=token,
        offer=launch.offer,
        placement=launch.placement,
        zone=launch.zones[0],
        started_at=0,
        labels=launch.labels,
        taints=launch.taints,
        bound=bound or Resources(),
    )


def small(count: int) -> list[PendingPod]:
    return pending(*(make_pod(f"t{i}", cpu="250m", memory="256Mi") for i in range(count)))


def test_pods_arriving_during_a_launch_take_its_room_and_no_more() -> None:
    # A trickle: the first 250m pod gets a bin-pack node (at least 4 vCPU, binPackingNodeCpu);
    # each later decision plans every pending pod again, the launch counted as a node.
    (launch,) = plan_scale_up(small(1), OFFERS, CFG, now=0).launches
    flying = in_flight(launch, "t-1")
    holds = launch.offer.allocatable.cpu_millis // 250  # 250m pods its CPU holds
    assert holds >= 14  # 4 vCPU less at most 0.5 reserved: 3500m / 250m
    full = plan_scale_up(small(holds), OFFERS, CFG, in_flight=[flying], now=2)
    assert full.launches == ()
    assert set(full.on_existing.values()) == {"in-flight:t-1"}
    assert len(full.on_existing) == holds
    # One more than it holds: one launch, for that one pod.
    (spill,) = plan_scale_up(small(holds + 1), OFFERS, CFG, in_flight=[flying], now=4).launches
    assert len(spill.pods) == 1


def test_what_the_scheduler_bound_to_a_booting_node_is_not_promised_again() -> None:
    # A pod that tolerates the not-ready taint was bound to the launch's Node while it boots,
    # leaving it 500m of CPU: a 1-CPU arrival needs a launch, a 500m one does not.
    (launch,) = plan_scale_up(small(1), OFFERS, CFG, now=0).launches
    room = launch.offer.allocatable
    taken = Resources(cpu_millis=room.cpu_millis - 500, memory_bytes=2**30, pods=1)
    flying = in_flight(launch, "t-1", bound=taken)
    one_cpu = pending(make_pod("one", cpu="1", memory="1Gi"))
    assert len(plan_scale_up(one_cpu, OFFERS, CFG, in_flight=[flying], now=2).launches) == 1
    half = pending(make_pod("half", cpu="500m", memory="1Gi"))
    placed = plan_scale_up(half, OFFERS, CFG, in_flight=[flying], now=2)
    assert placed.launches == () and placed.on_existing == {"default/half": "in-flight:t-1"}


def test_a_spot_launch_in_flight_takes_no_pod_that_does_not_tolerate_spot() -> None:
    # The spot node will carry gibbous.dev/capacity-type=spot:NoSchedule; an on-demand pod
    # (no toleration) counted on it would wait for a node kube-scheduler never gives it.
    spot = make_pod(
        "sp",
        cpu="250m",
        node_selector={keys.KARPENTER_CAPACITY_TYPE: "spot"},
        tolerations=[SPOT_TOLERATION],
    )
    (launch,) = plan_scale_up(pending(spot), OFFERS, CFG, now=0).launches
    assert str(launch.offer.category) == "spot" and launch.placement is Placement.BIN_PACK
    flying = in_flight(launch, "t-s")
    late_spot = make_pod(
        "sp2",
        cpu="250m",
        node_selector={keys.KARPENTER_CAPACITY_TYPE: "spot"},
        tolerations=[SPOT_TOLERATION],
    )
    on_demand = make_pod("od", cpu="250m")
    plan = plan_scale_up(
        pending(spot, late_spot, on_demand), OFFERS, CFG, in_flight=[flying], now=2
    )
    assert plan.on_existing == {"default/sp": "in-flight:t-s", "default/sp2": "in-flight:t-s"}
    (for_on_demand,) = plan.launches
    assert for_on_demand.pods == ("default/od",)
    assert str(for_on_demand.offer.category) == "on-demand"


def test_a_launch_that_stops_counting_leaves_its_pods_to_the_next_decision() -> None:
    # Nothing is reserved outside the decision: once a failed or timed-out launch is no
    # longer in flight, the pods it was to hold are planned afresh (one node for the six).
    pods = small(6)
    (launch,) = plan_scale_up(pods, OFFERS, CFG, now=0).launches
    held = plan_scale_up(pods, OFFERS, CFG, in_flight=[in_flight(launch, "t-1")], now=5)
    assert held.launches == ()
    (again,) = plan_scale_up(pods, OFFERS, CFG, in_flight=[], now=6).launches
    assert sorted(again.pods) == sorted(p.key for p in pods)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([250, 500, 1000, 1500]), min_size=1, max_size=24),
    bound_cpu=st.integers(0, 4000),
)
def test_an_in_flight_node_is_never_promised_past_its_room(
    sizes: list[int], bound_cpu: int
) -> None:
    # Whatever arrives and whatever the scheduler already bound there, the pods counted on
    # a launch in flight fit in its allocatable less what is bound (CPU and memory), and
    # every pod is either counted there or launched for: none is dropped.
    (launch,) = plan_scale_up(small(1), OFFERS, CFG, now=0).launches
    room = launch.offer.allocatable
    bound = Resources(cpu_millis=min(bound_cpu, room.cpu_millis), memory_bytes=2**30, pods=1)
    pods = pending(*(make_pod(f"r{i}", cpu=f"{m}m", memory=f"{m}Mi") for i, m in enumerate(sizes)))
    plan = plan_scale_up(pods, OFFERS, CFG, in_flight=[in_flight(launch, "t-1", bound)], now=1)
    on_flight = [p for p in pods if plan.on_existing.get(p.key) == "in-flight:t-1"]
    used_cpu = sum(p.requirement.requests.cpu_millis for p in on_flight)
    used_memory = sum(p.requirement.requests.memory_bytes for p in on_flight)
    assert used_cpu <= room.cpu_millis - bound.cpu_millis
    assert used_memory <= room.memory_bytes - bound.memory_bytes
    launched = {key for each in plan.launches for key in each.pods}
    assert launched | set(plan.on_existing) | set(plan.unsatisfiable) == {p.key for p in pods}
    assert not plan.unsatisfiable


def test_spot_replicas_take_the_zones_in_turn_and_on_demand_ones_do_not() -> None:
    spot = {keys.INSTANCE_OFFERINGS: "spot"}
    toleration = {"key": keys.SPOT_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}

    def replica(name: str, offerings: dict[str, str], **labels: str) -> dict[str, object]:
        return make_pod(
            name, cpu="3", labels=labels, annotations=offerings, tolerations=[toleration]
        )

    # A StatefulSet's replicas differ in their per-pod labels, and are one workload still.
    stateful = [
        replica(
            f"kv-{i}",
            spot,
            app="kv",
            **{
                "statefulset.kubernetes.io/pod-name": f"kv-{i}",
                "apps.kubernetes.io/pod-index": str(i),
            },
        )
        for i in range(4)
    ]
    plan = plan_scale_up(pending(*stateful), OFFERS, CFG, now=0)
    assert {str(launch.offer.category) for launch in plan.launches} == {"spot"}
    zones = [launch.zones for launch in plan.launches]
    assert len(zones) == 4 and len(set(zones[0])) == len(zones[0]) >= 2
    # Each the first's order turned by one more (by hand: the n-th starts at zone n mod k).
    k = len(zones[0])
    for n, order in enumerate(zones):
        assert order == zones[0][n % k :] + zones[0][: n % k]
    on_demand = [replica(f"web-{i}", {}, app="web") for i in range(3)]
    launches = plan_scale_up(pending(*on_demand), OFFERS, CFG, now=0).launches
    assert {str(launch.offer.category) for launch in launches} == {"on-demand"}
    assert len({launch.zones for launch in launches}) == 1
