"""Launch bookkeeping: every row of the rule table in gibbous.core.lifecycle.launches."""

from __future__ import annotations

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.instances import Instance, InstanceState
from gibbous.core.choice.selection import Offer
from gibbous.core.lifecycle.launches import (
    Launch,
    LaunchReview,
    LaunchState,
    NodeState,
    review_launches,
)
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.planning.nodes import node_labels
from gibbous.core.planning.scaleup import LaunchPlan
from tests.factories import config, offers

CFG = config(scaleUpTimeout="10m", registrationTimeout="15m", orphanGracePeriod="5m")
OFFERS = offers()
BY_KEY = {(o.name, str(o.category)): o for o in OFFERS}
M5 = BY_KEY[("m5.large", "on-demand")]
G4 = BY_KEY[("g4dn.xlarge", "spot")]


def launch(
    token: str = "t1",
    offer: Offer = M5,
    *,
    state: LaunchState = LaunchState.ACCEPTED,
    at: float = 0.0,
    retry_at: float = 0.0,
) -> Launch:
    plan = LaunchPlan(
        offer=offer,
        placement=Placement.BIN_PACK,
        pods=("default/p",),
        zones=("us-west-2a",),
        labels=node_labels(offer, Placement.BIN_PACK, CFG, zone="us-west-2a"),
        taints=(),
    )
    accepted = state is LaunchState.ACCEPTED
    return Launch(
        token=token,
        plan=plan,
        requested_at=at,
        state=state,
        instance_id=f"i-{token}" if accepted else "",
        node_name=f"n-{token}" if accepted else "",
        retry_at=retry_at,
    )


def instance(
    token: str = "t1",
    offer: Offer = M5,
    *,
    at: float = 0.0,
    node: str | None = None,
    labels: dict[str, str] | None = None,
) -> Instance:
    return Instance(
        id=f"i-{token}",
        token=token,
        cluster_id=CFG.cluster_id,
        instance_type=offer.name,
        category=str(offer.category),
        zone="us-west-2a",
        state=InstanceState.RUNNING,
        created_at=at,
        node_name=f"n-{token}" if node is None else node,
        labels=labels
        if labels is not None
        else node_labels(offer, Placement.BIN_PACK, CFG, zone="us-west-2a"),
    )


def review(
    launches: list[Launch], instances: list[Instance] | None, nodes: list[NodeState], now: float
) -> LaunchReview:
    return review_launches(
        {item.token: item for item in launches},
        instances,
        {n.name: n for n in nodes},
        BY_KEY,
        CFG,
        now=now,
    )


def test_a_ready_node_completes_its_launch() -> None:
    result = review([launch()], [instance()], [NodeState("n-t1", ready=True)], now=60)
    assert [(item.token, node) for item, node in result.completed] == [("t1", "n-t1")]
    assert result.launches == {}


def test_a_gpu_node_is_not_done_until_its_gpus_are_allocatable() -> None:
    item = launch(offer=G4)
    booting = review([item], [instance(offer=G4)], [NodeState("n-t1", ready=True)], now=60)
    assert booting.completed == () and "t1" in booting.launches
    done = review(
        [item], [instance(offer=G4)], [NodeState("n-t1", True, gpus_allocatable=1)], now=61
    )
    assert len(done.completed) == 1


def test_scale_up_timeout_terminates_and_backs_off_the_pair() -> None:
    result = review([launch()], [instance()], [NodeState("n-t1", ready=False)], now=601)
    (termination,) = result.terminate
    assert termination.instance_id == "i-t1" and "scaleUpTimeout" in termination.reason
    assert termination.backoff == ("m5.large", "on-demand", "", FailureKind.LAUNCH_TIMEOUT)
    assert result.launches == {}


def test_throttled_requests_are_retried_then_dropped_at_the_timeout() -> None:
    waiting = launch(state=LaunchState.REQUESTED, retry_at=10)
    assert review([waiting], [], [], now=5).retry == ()
    assert review([waiting], [], [], now=10).retry == (waiting,)
    late = review([waiting], [], [], now=700)
    assert late.launches == {} and late.dropped[0][0] is waiting and late.terminate == ()


def test_an_accepted_launch_whose_instance_vanished_is_dropped_after_settling() -> None:
    assert "t1" in review([launch()], [], [], now=30).launches
    assert review([launch()], [], [], now=61).dropped
    assert "t1" in review([launch()], None, [], now=300).launches  # listing failed: keep


def test_a_restart_adopts_instances_still_booting() -> None:
    result = review([], [instance(node="")], [], now=100)
    (adopted,) = result.adopted
    assert adopted.token == "t1" and adopted.instance_id == "i-t1" and adopted.plan.offer == M5
    assert "t1" in result.launches and result.terminate == ()


def test_bin_select_placement_and_pod_are_recovered_from_tags() -> None:
    labels = node_labels(G4, Placement.BIN_SELECT, CFG, zone="us-west-2a", assigned_pod_uid="u-9")
    (adopted,) = review([], [instance(offer=G4, node="", labels=labels)], [], now=10).adopted
    assert adopted.plan.placement is Placement.BIN_SELECT and adopted.plan.assigned_pod_uid == "u-9"
    assert adopted.in_flight().assigned_pod_uid == "u-9"


def test_running_nodes_are_left_alone() -> None:
    ready = review([], [instance()], [NodeState("n-t1", ready=True)], now=10_000)
    assert ready.adopted == () and ready.terminate == ()
    # Registered long ago and NotReady now: a sick node, not a launch to time out.
    sick = review([], [instance()], [NodeState("n-t1", ready=False)], now=10_000)
    assert sick.adopted == () and sick.terminate == ()


def test_orphans_are_terminated_after_the_grace_period() -> None:
    stray = instance(node="")
    first = review_launches({}, [stray], {}, BY_KEY, CFG, now=1000)
    assert first.terminate == () and first.orphans_seen == {"i-t1": 1000}
    later = review_launches({}, [stray], {}, BY_KEY, CFG, now=1299, orphans_seen=first.orphans_seen)
    assert later.terminate == ()
    due = review_launches({}, [stray], {}, BY_KEY, CFG, now=1300, orphans_seen=later.orphans_seen)
    (termination,) = due.terminate
    assert termination.instance_id == "i-t1" and termination.backoff is None
    assert "orphan" in termination.reason


def test_another_installs_instances_are_neither_adopted_nor_collected() -> None:
    # Same clusterID, another install: its young launch and its stray instance are its own.
    other = node_labels(M5, Placement.BIN_PACK, config(installName="team-b"), zone="us-west-2a")
    assert other[keys.OWNER] == "gibbous.team-b"
    young = instance("tb1", node="", labels=other, at=990)
    stray = instance("tb2", node="", labels=other)
    first = review_launches({}, [young, stray], {}, BY_KEY, CFG, now=1000)
    assert first.adopted == () and first.orphans_seen == {}
    due = review_launches({}, [young, stray], {}, BY_KEY, CFG, now=5000, orphans_seen={"i-tb2": 0})
    assert due.terminate == () and due.adopted == ()


def test_unknown_instance_types_are_not_adopted() -> None:
    odd = Instance(
        "i-x", "tx", CFG.cluster_id, "z9.huge", "on-demand", "", InstanceState.PENDING, 0.0
    )
    assert review([], [odd], [], now=10).adopted == ()


def test_in_flight_view_counts_the_offer() -> None:
    flying = launch().in_flight()
    assert flying.offer == M5 and flying.zone == "us-west-2a"
    assert flying.as_node().free == M5.allocatable
    assert flying.labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
