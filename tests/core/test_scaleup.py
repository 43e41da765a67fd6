from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.planning.backoff import Backoffs, FailureKind
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import Guardrails, PendingPod
from gibbous.core.planning.scaleup import InFlight, plan_scale_up
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
