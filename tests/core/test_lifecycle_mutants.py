"""Lifecycle rules the mutation run of issue 37 (docs/mutation.md) showed no test held:
the scale-down review's per-node verdicts, explain's node rules and text, the status
document's fields, launches in flight and the scheduler's Lease.

Expected values are worked out by hand from Luna's scale-down rules
(luna-spec-from-seeds.md 4.11, P09, P15), Kubernetes' node conditions, taints and Lease
fields, and the status format documented in docs/; none is read from the code under test."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.disruption import DrainReason, review_scale_down
from gibbous.core.lifecycle.explain import explain_pod, render_explanation
from gibbous.core.lifecycle.launches import Launch
from gibbous.core.lifecycle.routing import scheduler_liveness
from gibbous.core.lifecycle.statusreport import (
    DrainSnapshot,
    PodDecision,
    StatusSnapshot,
    duration,
    render_status,
    status_document,
)
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.placement import node_view
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import LaunchPlan, existing_nodes
from tests.core.test_statusreport_explain import NOW, cfg, node, offers, unschedulable, view_of
from tests.factories import config, make_pod

# --- the scale-down review, one node per verdict ---------------------------------------------

REVIEW_AT = "2026-02-01T00:00:00Z"


def review_node(
    name: str,
    *,
    created: str = "2026-01-01T00:00:00Z",
    ready: bool = True,
    cordoned: bool = False,
    placement: str = keys.PLACEMENT_BIN_PACK,
    assigned: str = "",
) -> dict[str, Any]:
    labels = {
        keys.CREATED_BY: keys.CREATED_BY_VALUE,
        keys.PLACEMENT: placement,
        keys.ARCH: "amd64",
        keys.HOSTNAME: name,
    }
    if assigned:
        labels[keys.ASSIGNED_POD_UID] = assigned
    return {
        "metadata": {"name": name, "labels": labels, "creationTimestamp": created},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def on(node_name: str, pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["nodeName"] = node_name
    pod["status"] = {"phase": "Running"}
    return pod


def test_scale_down_review_gives_every_node_its_verdict() -> None:
    cfg_ = config(
        **{
            "scaleDown.delayAfterAdd": "10m",
            "scaleDown.unneededTime": "5m",
            "scaleDown.maxDrainingNodes": 10,
            "scaleDown.maxDrainingPercent": 100,
        }
    )
    now = epoch_seconds(REVIEW_AT)
    assert now is not None
    # Listed in name order, the nodes that stay before the ones that go: every verdict
    # must be reached whatever came before it.
    nodes = [
        review_node("a-draining"),
        review_node("b-not-ready", ready=False),
        review_node("c-cordoned", cordoned=True),
        review_node("d-blocked"),
        review_node("e-young", created="2026-01-31T23:55:00Z"),  # 5 minutes old
        review_node("f-wanted"),
        review_node("g-in-use"),
        review_node("h-recent"),
        review_node("i-empty"),
        review_node("j-bin-select", placement=keys.PLACEMENT_BIN_SELECT, assigned="gone-uid"),
    ]
    pods = [
        on("d-blocked", make_pod("keep", annotations={keys.DO_NOT_EVICT: "true"})),
        on("g-in-use", make_pod("busy", cpu="2", memory="8Gi")),  # half the node
    ]
    bound = ClusterPods(cfg_.designation)
    bound.sync(pods)
    existing = existing_nodes(nodes, pods, {}, cfg_, bound=bound)
    # a bin-pack pod (1 CPU, under the 2-CPU bin-select threshold) only f-wanted may take
    wants_f = make_pod("wants-f", cpu="1", node_selector={keys.HOSTNAME: "f-wanted"})
    pending = [describe_pod(wants_f, cfg_)[0]]
    long_ago = now - 3600
    review = review_scale_down(
        nodes,
        bound,
        existing,
        pending,
        cfg_,
        now=now,
        unneeded_since={n["metadata"]["name"]: long_ago for n in nodes} | {"h-recent": now - 60},
        draining=frozenset({"a-draining"}),
    )
    assert review.kept == {
        "b-not-ready": "not Ready",
        "c-cordoned": "cordoned by someone else",
        "d-blocked": f"default/keep must not be evicted ({keys.DO_NOT_EVICT}=true)",
        "e-young": "younger than scaleDown.delayAfterAdd",
        "f-wanted": "pending pods would be placed on it",
        "g-in-use": "in use",  # 50 % used, above the 0.1 default threshold
        "h-recent": "unneeded for 60s of 300s",
    }
    assert [(d.node, d.reason, d.why) for d in review.drains] == [
        ("i-empty", DrainReason.SCALE_DOWN, "no managed pods"),
        # P09: a bin-select node goes when its pod is gone and nothing else runs there
        (
            "j-bin-select",
            DrainReason.SCALE_DOWN,
            "its bin-select pod is gone and no other pod runs there",
        ),
    ]
    # the clock starts at the first review that finds a node unneeded, and carries on
    assert review.unneeded_since == {"h-recent": now - 60, "i-empty": long_ago, "j-bin-select": long_ago}  # fmt: skip


def test_a_bin_select_node_stays_for_its_pod_still_pending() -> None:
    cfg_ = config(**{"scaleDown.delayAfterAdd": "0s", "scaleDown.unneededTime": "0s"})
    now = epoch_seconds(REVIEW_AT)
    assert now is not None
    # 3 CPUs: over the 2-CPU binSelectPodCpuThreshold (Luna's default), a bin-select pod
    waiting = make_pod("big", cpu="3", uid="u-big")
    nodes = [review_node("n", placement=keys.PLACEMENT_BIN_SELECT, assigned="u-big")]
    bound = ClusterPods(cfg_.designation)
    bound.sync([waiting])
    review = review_scale_down(
        nodes,
        bound,
        existing_nodes(nodes, [waiting], {}, cfg_, bound=bound),
        (),
        cfg_,
        now=now,
        unneeded_since={},
        draining=frozenset(),
    )
    assert review.drains == () and review.kept == {"n": "in use"}


# --- explain -----------------------------------------------------------------------------------


def test_explain_names_the_node_rule_that_rules_each_group_out() -> None:
    not_ready = node("a", "small.large", category="on-demand", price="0.10")
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    cordoned = node("b", "big.xlarge", category="on-demand", price="0.20")
    cordoned["spec"] = {"unschedulable": True}
    tainted = node("c", "gpu.xlarge", category="on-demand", price="0.50")
    tainted["spec"] = {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}
    pod = unschedulable(make_pod("p", namespace="ns", cpu="100m"))
    out = explain_pod(pod, view_of(not_ready, cordoned, tainted), cfg(), now=NOW)
    rules = {g["examples"][0]: g["ruledOutBy"] for g in out["existingNodes"]["groups"]}
    assert rules == {
        "a": "not Ready",  # the node condition's name
        "b": "cordoned",
        "c": "taint dedicated=:NoSchedule not tolerated",  # kubectl taint's key=:Effect
    }


def test_explain_judges_a_node_pinned_pod_node_by_node() -> None:
    # Two nodes alike but for their hostname; the pod selects the second by hostname.
    a1 = node("a1", "small.large", category="on-demand", price="0.10")
    a2 = node("a2", "small.large", category="on-demand", price="0.10")
    for shared in (a1, a2):
        shared["metadata"]["labels"][keys.PLACEMENT] = keys.PLACEMENT_BIN_PACK
    pod = unschedulable(make_pod("p", namespace="ns", cpu="100m"))
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "a2"}
    existing = explain_pod(pod, view_of(a1, a2), cfg(), now=NOW)["existingNodes"]
    assert existing["fit"] == 1
    assert [(g["examples"], g["ruledOutBy"]) for g in existing["groups"]] == [
        (["a2"], None),
        (["a1"], "node selector / affinity does not match"),
    ]


def test_explain_says_which_scheduler_places_the_pod() -> None:
    for scheduler, said in (
        ("gibbous-scheduler", "the Gibbous scheduler 'gibbous-scheduler' places it"),
        ("default-scheduler", "the default scheduler places it"),
        ("volcano", "another scheduler, 'volcano', places it"),
    ):
        pod = make_pod("p", namespace="ns")
        pod["spec"]["schedulerName"] = scheduler
        configured = cfg(schedulerName="gibbous-scheduler")
        out = explain_pod(pod, view_of(), configured, now=NOW)
        assert out["managed"]["scheduler"] == said


def test_explain_offers_a_gpu_type_when_only_it_fits() -> None:
    # The pod asks for gpu.xlarge by name: the only fitting type has a GPU it does not use.
    pod = unschedulable(make_pod("p", namespace="ns", cpu="100m"))
    pod["spec"]["nodeSelector"] = {keys.INSTANCE_TYPE: "gpu.xlarge"}
    types = explain_pod(pod, view_of(), cfg(), now=NOW)["instanceTypes"]
    assert types["wouldBuy"]["instanceType"] == "gpu.xlarge"
    assert types["decisiveRule"] is None  # something fits: no rule decided against all


def test_explain_names_the_decisive_rule_only_when_nothing_fits() -> None:
    pod = unschedulable(make_pod("p", namespace="ns", cpu="3", memory="1Gi"))
    types = explain_pod(pod, view_of(), cfg(), now=NOW)["instanceTypes"]
    assert types["fitting"] == 1 and types["decisiveRule"] is None
    huge = unschedulable(make_pod("h", namespace="ns", cpu="64", memory="1Gi"))
    types = explain_pod(huge, view_of(), cfg(), now=NOW)["instanceTypes"]
    assert types["fitting"] == 0 and types["decisiveRule"] == "room for 64 CPU, 1Gi memory"


def test_explain_text_has_the_last_decision_and_the_events() -> None:
    pod = unschedulable(make_pod("p", namespace="ns", cpu="3", memory="1Gi"))
    status = {
        "writtenAt": NOW - 1,
        "decisions": [
            {"uid": "uid-p", "pod": "ns/p", "at": NOW - 5, "outcome": "launch", "detail": "x"}
        ],
    }
    event = {
        "type": "Normal",
        "reason": "TriggeredScaleUp",
        "message": "a big.xlarge",
        "source": {"component": "gibbous"},
        "lastTimestamp": "1970-01-12T13:46:10Z",  # NOW - 30 (NOW = 1,000,000 s)
    }
    cluster = view_of(status=status)
    cluster = type(cluster)(
        nodes=cluster.nodes, pods=cluster.pods, offers=cluster.offers, events=[event], status=status
    )
    text = render_explanation(explain_pod(pod, cluster, cfg(), now=NOW), NOW)
    assert "\nlast decision (5s ago): launch: x\n" in text
    assert text.endswith(
        "\nevents (newest first):\n  30s ago Normal TriggeredScaleUp (gibbous): a big.xlarge\n"
    )


# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),  # 2 minutes
        (7199, "120m"),  # 119.98 minutes, rounded
        (7200, "2.0h"),  # 2 hours
        (5400 * 4, "6.0h"),
    ],
)
def test_durations_for_people(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_status_keeps_drain_times_to_the_millisecond_and_names_decided_pods() -> None:
    snapshot = StatusSnapshot(
        now=NOW,
        launches=(),
        backoffs=Backoffs(),
        nodes=(node_view(node("a", "small.large", category="spot", price="0.03")),),
        drains=(DrainSnapshot("old", "empty", "no pods", NOW - 120.12345),),
        decisions=(PodDecision("u1", "ns/p1", NOW - 30.5, "launch", "a new big.xlarge"),),
        on_demand_prices={"small.large": 0.10},
    )
    document = status_document(snapshot, cfg())
    assert document["drains"] == [
        {"node": "old", "reason": "empty", "why": "no pods", "since": 999879.877}
    ]
    assert document["decisions"] == [
        {
            "uid": "u1",
            "pod": "ns/p1",
            "at": 999969.5,
            "outcome": "launch",
            "detail": "a new big.xlarge",
        }
    ]
    text = render_status({**document, "writtenAt": NOW - 3}, NOW)
    assert "written 3s ago" in text
    # one spot small.large at $0.03; on demand it would be $0.10
    assert "\ncost: $0.0300/hr (on demand: $0.1000/hr)" in text


# --- launches and the scheduler's Lease ----------------------------------------------------------


def test_a_launch_in_flight_keeps_its_start_and_zone() -> None:
    offer = offers()[0]
    for zones, zone, expected in ((("us-west-2a",), "", "us-west-2a"), ((), "", ""), ((), "b", "b")):  # fmt: skip
        plan = LaunchPlan(offer, Placement.BIN_PACK, ("ns/p",), zones, {}, ())
        flying = Launch("tok", plan, requested_at=NOW - 7, zone=zone).in_flight()
        assert (flying.zone, flying.started_at) == (expected, NOW - 7)


@pytest.mark.parametrize(
    ("renewed_ago", "alive", "why"),
    [
        (0.0, True, "Lease renewed 0s ago"),
        (0.4, True, "Lease renewed 0s ago"),
        (25.0, True, "Lease renewed 25s ago"),  # leaseDurationSeconds 15 + 10 s margin
        (26.0, False, "its Lease was not renewed for 26s"),
    ],
)
def test_scheduler_lease_liveness(renewed_ago: float, alive: bool, why: str) -> None:
    renewed = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    lease = {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z", "leaseDurationSeconds": 15}}
    liveness = scheduler_liveness(lease, renewed + renewed_ago)
    assert (liveness.alive, liveness.why) == (alive, why)
