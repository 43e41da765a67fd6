"""The status document, its rendering and `explain`'s reasoning, on hand-built clusters
whose answers are worked out here by hand."""

from __future__ import annotations

from typing import Any

from gibbous.core import keys
from gibbous.core.choice.catalog import parse_catalog_csv
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import build_offers
from gibbous.core.lifecycle.explain import ClusterView, explain_pod, render_explanation
from gibbous.core.lifecycle.launches import Launch, LaunchState
from gibbous.core.lifecycle.statusreport import (
    DrainSnapshot,
    PodDecision,
    StatusSnapshot,
    node_cost,
    render_status,
    staleness,
    status_document,
)
from gibbous.core.planning.backoff import Backoffs, FailureKind
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.placement import node_view
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import LaunchPlan
from tests.factories import config, csv_catalog, make_pod

NOW = 1_000_000.0
CATALOG = csv_catalog(
    "aws,us-west-2,small.large,2,8,0,,amd64,0.10,0.03",
    "aws,us-west-2,big.xlarge,4,16,0,,amd64,0.20,0.06",
    "aws,us-west-2,gpu.xlarge,4,16,1,T4,amd64,0.50,0.15",
)


def cfg(**values: object) -> Any:
    return config(clusterID="c1", maxNodes=3, maxClusterCostPerHour=1.0, **values)


def offers(**values: object) -> list[Any]:
    return build_offers(parse_catalog_csv(CATALOG, "test"), cfg(**values))


def node(name: str, instance_type: str, *, category: str, price: str, cpu: str = "2") -> Any:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": "1",
            "labels": {
                keys.CREATED_BY: keys.CREATED_BY_VALUE,
                keys.INSTANCE_TYPE: instance_type,
                keys.PLACEMENT: "bin-select",
                keys.PRICE_PER_HOUR: price,
                keys.CAPACITY_TYPE: category,
                keys.HOSTNAME: name,
            },
        },
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_cost_by_capacity_type_and_what_it_would_cost_on_demand() -> None:
    views = [
        node_view(node("a", "small.large", category="spot", price="0.03")),
        node_view(node("b", "small.large", category="spot", price="0.03")),
        node_view(node("c", "big.xlarge", category="on-demand", price="0.20")),
    ]
    cost = node_cost(views, {"small.large": 0.10, "big.xlarge": 0.20})
    assert cost.by_type == {
        ("spot", "small.large"): (2, 0.06),
        ("on-demand", "big.xlarge"): (1, 0.20),
    }
    assert cost.by_category() == {"on-demand": (1, 0.20), "spot": (2, 0.06)}
    assert round(cost.on_demand_equivalent, 6) == 0.40  # 0.10 + 0.10 + 0.20


def launch_of(offer: Any, pods: tuple[str, ...]) -> Launch:
    plan = LaunchPlan(
        offer=offer,
        placement=Placement.BIN_SELECT,
        pods=pods,
        zones=("us-west-2a",),
        labels={},
        taints=(),
    )
    return Launch(
        "tok-1", plan, requested_at=NOW - 30, state=LaunchState.ACCEPTED, zone="us-west-2b"
    )


def test_the_status_document_and_its_text() -> None:
    config_ = cfg()
    big = next(o for o in offers() if o.name == "big.xlarge" and str(o.category) == "on-demand")
    backoffs = Backoffs().add(
        instance_type="gpu.xlarge",
        category="spot",
        zone="",
        kind=FailureKind.INSUFFICIENT_CAPACITY,
        now=NOW - 60,
        duration_s=300,
    )
    snapshot = StatusSnapshot(
        now=NOW,
        launches=(launch_of(big, ("ns/p1", "ns/p2")),),
        backoffs=backoffs,
        nodes=(node_view(node("a", "small.large", category="spot", price="0.03")),),
        drains=(DrainSnapshot("old", "empty", "no pods for 10m", NOW - 120),),
        decisions=(PodDecision("u1", "ns/p1", NOW - 30, "launch", "a new big.xlarge"),),
        on_demand_prices={"small.large": 0.10},
    )
    document = status_document(snapshot, config_)
    assert document["launches"][0] | {} == {
        "token": "tok-1",
        "instanceType": "big.xlarge",
        "category": "on-demand",
        "zone": "us-west-2b",
        "state": "accepted",
        "requestedAt": NOW - 30,
        "instanceId": "",
        "node": "",
        "pricePerHour": 0.20,
        "pods": ["ns/p1", "ns/p2"],
    }
    assert document["backoffs"] == [
        {
            "instanceType": "gpu.xlarge",
            "category": "spot",
            "zone": "",
            "kind": "insufficient-capacity",
            "until": NOW + 240,
        }
    ]
    # one node and one launch; $0.03 + $0.20
    assert document["guardrails"] == {
        "gpus": {"used": 0, "limit": None},
        "nodes": {"used": 2, "limit": 3},
        "costPerHour": {"used": 0.23, "limit": 1.0},
    }
    assert document["cost"] == {
        "perHour": 0.03,
        "onDemandEquivalentPerHour": 0.10,
        "byCapacityType": {"spot": {"nodes": 1, "perHour": 0.03}},
    }
    assert document["decisions"][0]["outcome"] == "launch"
    text = render_status({**document, "writtenAt": NOW - 2}, NOW)
    assert "big.xlarge on-demand zone=us-west-2b age=30s state=accepted pods waiting: 2" in text
    assert "gpu.xlarge spot zone=all insufficient-capacity, ends in 4m (at 13:50:40Z)" in text
    assert "nodes: 2 of 3" in text
    assert "old: empty (no pods for 10m), for 2m" in text
    assert "spot: 1 node(s), $0.0300/hr" in text
    assert staleness({**document, "writtenAt": NOW - 2}, NOW) == ""
    assert staleness({**document, "writtenAt": NOW - 600}, NOW).startswith(
        "the status object is stale: last written 10m ago"
    )
    assert staleness(None, NOW).startswith("no status object")


def view_of(*nodes: Any, pods: list[Any] | None = None, status: Any = None) -> ClusterView:
    index = ClusterPods(cfg().designation)
    index.sync(pods or [])
    return ClusterView(
        nodes=[node_view(n) for n in nodes],
        pods=index,
        offers=offers(),
        events=[],
        status=status,
    )


def unschedulable(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"] = {
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    }
    return pod


def test_explain_groups_nodes_and_ranks_types() -> None:
    # 3 CPUs: bin-select only when asked (annotation); here: needs a 4-vCPU type.
    pod = unschedulable(make_pod("p", namespace="ns", cpu="3", memory="1Gi"))
    full = make_pod("filler", namespace="ns", cpu="1")
    full["spec"]["nodeName"] = "a1"
    cluster = view_of(
        node("a1", "small.large", category="on-demand", price="0.10"),
        node("a2", "small.large", category="on-demand", price="0.10"),
        pods=[full],
    )
    out = explain_pod(pod, cluster, cfg(), now=NOW)
    assert out["managed"]["managed"] is True
    assert out["intake"]["decision"] == "provision"
    groups = out["existingNodes"]["groups"]
    # both nodes are one group (hostname aside); 2 CPUs leave no room for 3
    assert [(g["nodes"], g["ruledOutBy"]) for g in groups] == [(2, "no room (short of cpu)")]
    types = out["instanceTypes"]
    # on-demand only: 3 spot offers fall to the offerings; small.large has no room; the
    # GPU type fits but a type without GPUs does too
    assert types["ruledOut"] == {
        "offerings on-demand": 3,
        "room for 3 CPU, 1Gi memory": 1,
        "has GPUs the pod does not need (a type without fits)": 1,
    }
    assert types["wouldBuy"] == {
        "instanceType": "big.xlarge",
        "category": "on-demand",
        "pricePerHour": 0.20,
        "blockedBy": None,
    }
    assert out["summary"].startswith("Gibbous would buy a big.xlarge on-demand ($0.2000/hr)")
    text = render_explanation(out, NOW)
    assert "2 x small.large (Gibbous): no room" in text


def test_explain_says_what_stands_in_the_way() -> None:
    pod = unschedulable(make_pod("p", namespace="ns", cpu="3", memory="1Gi"))
    status = {
        "writtenAt": NOW - 1,
        "backoffs": [
            {
                "instanceType": "big.xlarge",
                "category": "on-demand",
                "zone": "",
                "kind": "quota",
                "until": NOW + 90,
            }
        ],
        "guardrails": {"nodes": {"used": 3, "limit": 3}},
        "decisions": [
            {
                "uid": "uid-p",
                "pod": "ns/p",
                "at": NOW - 5,
                "outcome": "unsatisfiable",
                "detail": "x",
            }
        ],
    }
    out = explain_pod(pod, view_of(status=status), cfg(), now=NOW)
    (candidate,) = out["instanceTypes"]["cheapest"]
    assert candidate["blockedBy"] == "backed off (quota) for 90s more"
    assert out["summary"] == "every fitting type is blocked: backed off (quota) for 90s more"
    assert out["lastDecision"]["outcome"] == "unsatisfiable"
    assert out["autoscaler"]["stale"] is None

    without = {**status, "backoffs": []}
    out = explain_pod(pod, view_of(status=without), cfg(), now=NOW)
    assert (
        out["instanceTypes"]["cheapest"][0]["blockedBy"]
        == "maxNodes: 3 used of 3, this type adds 1"
    )


def test_explain_of_pods_gibbous_leaves_alone() -> None:
    stranger = make_pod("s", namespace="ns", managed=False)
    out = explain_pod(stranger, view_of(), cfg(), now=NOW)
    assert out["summary"] == "not managed by Gibbous: it has no label elotl-luna=true"
    opted_out = make_pod("o", namespace="ns", annotations={keys.IGNORE: "true"})
    out = explain_pod(opted_out, view_of(), cfg(), now=NOW)
    assert out["summary"] == f"not managed by Gibbous: it opts out with {keys.IGNORE}"
    assert out["autoscaler"]["stale"].startswith("no status object")


def test_explain_gives_the_planners_reason_naming_the_unmet_requirement() -> None:
    # A GPU type the catalog lacks (it has only T4), for a bin-select pod and for a small
    # bin-pack one: explain's summary is the reason the planner (the autoscaler's event,
    # `gibbous estimate`) gives, and it names the requirement and the catalog's gap.
    selector = {"karpenter.k8s.aws/instance-gpu-name": "h100"}
    for cpu, placement in (("3", Placement.BIN_SELECT), ("100m", Placement.BIN_PACK)):
        pod = unschedulable(make_pod("p", namespace="ns", cpu=cpu, memory="1Gi"))
        pod["spec"]["nodeSelector"] = selector
        pending, _ = describe_pod(pod, cfg())
        assert pending.placement is placement
        plan = simulate([pending], offers(), cfg())
        planned = plan.unschedulable[pending.key]
        out = explain_pod(pod, view_of(), cfg(), now=NOW)
        assert out["summary"] == planned
        assert "no type meets karpenter.k8s.aws/instance-gpu-name In h100" in planned
        assert "the catalog has no h100 types" in planned
