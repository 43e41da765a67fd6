"""Consolidation that replaces: which nodes may be replaced, by what, when it acts, and the
order of a replacement (launch, Ready, then drain within the budget). Prices in the
expectations are read from the catalog file's rows here, never from the product's cost
function."""

from __future__ import annotations

import csv
import datetime
import gzip
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.choice.selection import Offer, offer_labels
from gibbous.core.lifecycle.consolidation import (
    InProgress,
    Outcome,
    Replacement,
    advance_replacement,
    consolidation_candidates,
    decide_consolidation,
    find_replacement,
)
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import Guardrails, PendingPod
from gibbous.core.planning.placement import node_view
from gibbous.core.planning.podfacts import ClusterPods, PodFacts
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod, offers

AWS_CATALOG = Path(__file__).resolve().parents[2] / "gibbous" / "catalogs" / "aws.csv.gz"
NOW = 1_800_000_000.0
DAY = 86_400.0
GiB = 2**30

with gzip.open(AWS_CATALOG, "rt", newline="") as _lines:
    ROWS = {
        r["instance_type"]: r
        for r in csv.DictReader(_lines)
        if r["region"] == "us-west-2" and r["arch"] == "amd64"
    }


def catalog_price(instance_type: str, category: str) -> float:
    """The catalog's price: on-demand as listed; spot as listed, else half the on-demand
    one (spotPriceRatioEstimate's default)."""
    row = ROWS[instance_type]
    on_demand = float(row["on_demand_usd_per_hour"])
    if category == "on-demand":
        return on_demand
    return float(row["spot_usd_per_hour"] or on_demand * 0.5)


def offer_of(cfg: Config, instance_type: str, category: str = "on-demand") -> Offer:
    return next(
        o for o in offers("aws", cfg) if o.name == instance_type and str(o.category) == category
    )


def gibbous_node(
    name: str,
    offer: Offer,
    cfg: Config,
    *,
    age_s: float = DAY,
    cordoned: bool = False,
    zone: str | None = None,
) -> dict[str, Any]:
    labels = {**offer_labels(offer, cfg, zone), keys.PLACEMENT: keys.PLACEMENT_BIN_PACK}
    labels[keys.HOSTNAME] = name
    created = NOW - age_s
    stamp = datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    allocatable = offer.allocatable
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "creationTimestamp": stamp,
            "resourceVersion": "1",
        },
        "spec": {"unschedulable": cordoned}
        | (
            {"taints": [{"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}]}
            if offer.category is PriceCategory.SPOT
            else {}
        ),
        "status": {
            "allocatable": {
                "cpu": f"{allocatable.cpu_millis}m",
                "memory": str(allocatable.memory_bytes),
                "pods": str(allocatable.pods),
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def app_pod(
    name: str,
    node: str,
    *,
    cpu: int,
    memory: int,
    annotations: dict[str, str] | None = None,
    controller: bool = True,
) -> dict[str, Any]:
    pod = make_pod(name, cpu=f"{cpu}m", memory=str(memory), annotations=annotations)
    if controller:
        pod["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs"}
            | {"controller": True}
        ]
    pod["metadata"]["resourceVersion"] = "1"
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": "Running"}
    return pod


def review(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], cfg: Config
) -> tuple[Replacement | None, dict[str, str]]:
    bound = ClusterPods(cfg.designation)
    bound.sync(pods)
    catalog_offers = offers("aws", cfg)
    by_key = {(o.name, str(o.category)): o for o in catalog_offers}

    def described(facts: PodFacts) -> PendingPod | str:
        return describe_pod(facts.pod, cfg)[0]

    views = [node_view(n) for n in nodes]
    candidates, kept = consolidation_candidates(
        views, bound, described, by_key, cfg, now=NOW, busy=frozenset()
    )
    existing = existing_nodes(nodes, pods, by_key, cfg, bound=bound)
    found = find_replacement(
        candidates, existing, catalog_offers, cfg, backoffs=Backoffs(), guardrails=None, now=NOW
    )
    return found, kept


# --- single-node replacement, by hand -----------------------------------------------------


def test_a_large_node_with_two_small_pods_is_replaced_by_the_cheapest_bin_pack_shape() -> None:
    # An m5.8xlarge (32 vCPU, $1.536/hr) left with two 500m / 1 GiB pods after a scale-in.
    # The bin-pack shape is at least 4 vCPU and 16 GiB (binPackingNode* defaults); the
    # cheapest such us-west-2 amd64 row of the catalog holds both pods: computed here.
    cfg = config()
    big = gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg)
    pods = [app_pod(f"web-{i}", "big", cpu=500, memory=GiB) for i in range(2)]
    fitting = [
        r
        for r in ROWS.values()
        if int(r["vcpu"]) >= 4 and float(r["memory_gib"]) >= 16 and int(r["gpu_count"]) == 0
    ]
    cheapest = min(fitting, key=lambda r: float(r["on_demand_usd_per_hour"]))
    found, _ = review([big], pods, cfg)
    assert found is not None
    assert found.retire == ("big",)
    assert [launch.offer.name for launch in found.launches] == [cheapest["instance_type"]]
    assert found.launches[0].offer.category is PriceCategory.ON_DEMAND
    assert sorted(found.launches[0].pods) == ["default/web-0", "default/web-1"]
    assert found.cost_before == pytest.approx(1.536)
    assert found.cost_after == pytest.approx(float(cheapest["on_demand_usd_per_hour"]))


def test_pods_that_fit_on_the_other_nodes_need_no_replacement_node() -> None:
    # "Possibly none": the 32-vCPU node's two pods fit on a t3a.xlarge with room.
    cfg = config(**{"consolidation.candidates": "all"})
    nodes = [
        gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg),
        gibbous_node("small", offer_of(cfg, "t3a.xlarge"), cfg),
    ]
    pods = [
        app_pod("a", "big", cpu=500, memory=GiB),
        app_pod("b", "big", cpu=500, memory=GiB),
        app_pod("c", "small", cpu=1500, memory=2 * GiB),
    ]
    found, _ = review(nodes, pods, cfg)
    assert found is not None and found.retire == ("big",)
    assert found.launches == () and found.cost_after == 0.0
    assert found.moves == {"default/a": "small", "default/b": "small"}


def test_the_cheapest_shape_already_is_not_replaced() -> None:
    cfg = config(**{"consolidation.candidates": "all"})
    small = gibbous_node("small", offer_of(cfg, "t3a.xlarge"), cfg)
    found, _ = review([small], [app_pod("a", "small", cpu=500, memory=GiB)], cfg)
    assert found is None


@pytest.mark.parametrize(("percent", "acts"), [(50, True), (51, False)])
def test_the_saving_must_beat_the_threshold(percent: int, acts: bool) -> None:
    # t3a.2xlarge $0.3008 -> t3a.xlarge $0.1504: exactly 50 % less.
    cfg = config(**{"consolidation.candidates": "all", "consolidation.minSavingsPercent": percent})
    node = gibbous_node("n", offer_of(cfg, "t3a.2xlarge"), cfg)
    pods = [app_pod(f"p{i}", "n", cpu=1500, memory=GiB) for i in range(2)]
    found, _ = review([node], pods, cfg)
    assert (found is not None) is acts
    if found is not None:
        assert found.cost_after == pytest.approx(catalog_price("t3a.xlarge", "on-demand"))


def test_under_used_candidates_are_those_below_the_scale_down_threshold() -> None:
    # 2 x 1.5 CPU on a t3a.2xlarge (8 vCPU): 3/8 = 37.5 % of CPU, above Luna's 20 %.
    node_pods = [app_pod(f"p{i}", "n", cpu=1500, memory=GiB) for i in range(2)]
    cfg = config()
    node = gibbous_node("n", offer_of(cfg, "t3a.2xlarge"), cfg)
    found, kept = review([node], node_pods, cfg)
    assert found is None and "utilization 0.3" in kept["n"]
    found, _ = review([node], node_pods, config(**{"consolidation.candidates": "all"}))
    assert found is not None


@pytest.mark.parametrize(
    ("annotations", "controller", "why"),
    [
        ({keys.DO_NOT_EVICT: "true"}, True, "must not be evicted"),
        ({keys.KARPENTER_DO_NOT_DISRUPT: "true"}, True, "must not be evicted"),
        ({keys.CA_SAFE_TO_EVICT: "false"}, True, "must not be evicted"),
        ({}, False, "no controller"),
    ],
)
def test_a_node_with_a_pod_that_must_stay_is_never_a_candidate(
    annotations: dict[str, str], controller: bool, why: str
) -> None:
    cfg = config()
    big = gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg)
    pods = [
        app_pod("free", "big", cpu=500, memory=GiB),
        app_pod(
            "stays", "big", cpu=500, memory=GiB, annotations=annotations, controller=controller
        ),
    ]
    found, kept = review([big], pods, cfg)
    assert found is None and why in kept["big"]


def test_young_and_cordoned_nodes_are_not_candidates() -> None:
    cfg = config()
    nodes = [
        gibbous_node("young", offer_of(cfg, "m5.8xlarge"), cfg, age_s=60),
        gibbous_node("cordoned", offer_of(cfg, "m5.8xlarge"), cfg, cordoned=True),
    ]
    pods = [
        app_pod("a", "young", cpu=500, memory=GiB),
        app_pod("b", "cordoned", cpu=500, memory=GiB),
    ]
    found, kept = review(nodes, pods, cfg)
    assert found is None
    assert kept == {"young": "younger than scaleDown.delayAfterAdd", "cordoned": "cordoned"}


def test_on_demand_goes_to_spot_only_when_the_pods_allow_spot() -> None:
    node_pods = [app_pod(f"p{i}", "n", cpu=1500, memory=GiB) for i in range(2)]
    on_demand_only = config(**{"consolidation.candidates": "all"})
    node = gibbous_node("n", offer_of(on_demand_only, "t3a.2xlarge"), on_demand_only)
    found, _ = review([node], node_pods, on_demand_only)
    assert found is not None
    assert {launch.offer.category for launch in found.launches} == {PriceCategory.ON_DEMAND}
    # Bin-pack pods may run on spot when binPackingNodePricing allows it.
    spot_ok = config(
        **{"consolidation.candidates": "all", "binPackingNodePricing": "spot,on-demand"}
    )
    found, _ = review([node], node_pods, spot_ok)
    assert found is not None
    (launch,) = found.launches
    assert launch.offer.category is PriceCategory.SPOT
    # Cheaper than the on-demand type it had, by the catalog's rows.
    assert catalog_price(launch.offer.name, "spot") < catalog_price("t3a.2xlarge", "on-demand")


def test_spot_goes_to_cheaper_spot_when_the_pods_allow_it() -> None:
    cfg = config(**{"consolidation.candidates": "all", "binPackingNodePricing": "spot"})
    node = gibbous_node("n", offer_of(cfg, "m5.8xlarge", "spot"), cfg)
    pods = [app_pod(f"p{i}", "n", cpu=1500, memory=GiB) for i in range(2)]
    found, _ = review([node], pods, cfg)
    assert found is not None
    (launch,) = found.launches
    assert launch.offer.category is PriceCategory.SPOT
    assert found.cost_before == pytest.approx(catalog_price("m5.8xlarge", "spot"))
    assert catalog_price(launch.offer.name, "spot") < catalog_price("m5.8xlarge", "spot")


def with_claim(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    return pod


def test_pods_with_a_claim_are_replaced_only_within_their_zone() -> None:
    # The volume behind a claim may be a zonal disk (EBS): the replacement of the 32-vCPU
    # node in us-west-2b must launch in us-west-2b.
    cfg = config()
    big = gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg, zone="us-west-2b")
    pods = [with_claim(app_pod("db", "big", cpu=500, memory=GiB))]
    found, _ = review([big], pods, cfg)
    assert found is not None
    (launch,) = found.launches
    assert launch.zones == ("us-west-2b",)
    assert launch.labels[keys.ZONE] == "us-west-2b"


def test_a_pod_with_a_claim_never_moves_to_a_node_in_another_zone() -> None:
    cfg = config(**{"consolidation.candidates": "all"})
    nodes = [
        gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg, zone="us-west-2b"),
        gibbous_node("elsewhere", offer_of(cfg, "t3a.xlarge"), cfg, zone="us-west-2a"),
    ]
    pods = [
        with_claim(app_pod("db", "big", cpu=500, memory=GiB)),
        app_pod("web", "elsewhere", cpu=500, memory=GiB),
    ]
    found, _ = review(nodes, pods, cfg)
    # Without the claim it would simply move to `elsewhere` (see the test of pods that fit
    # on the other nodes); with it, that move is refused.
    assert found is None or all(node != "elsewhere" for node in found.moves.values())
    if found is not None:
        assert all(launch.zones == ("us-west-2b",) for launch in found.launches)


def test_several_under_used_nodes_become_fewer() -> None:
    # Three t3a.2xlarge ($0.3008 each) with one 1 CPU pod each: one t3a.xlarge holds the
    # three (3 CPU of its 4 vCPU, minus what the kubelet keeps: 3.92 CPU allocatable).
    cfg = config(**{"consolidation.candidates": "all"})
    nodes = [gibbous_node(f"n{i}", offer_of(cfg, "t3a.2xlarge"), cfg) for i in range(3)]
    pods = [app_pod(f"p{i}", f"n{i}", cpu=1000, memory=GiB) for i in range(3)]
    found, _ = review(nodes, pods, cfg)
    assert found is not None
    assert found.retire == ("n0", "n1", "n2")
    assert [launch.offer.name for launch in found.launches] == ["t3a.xlarge"]
    assert found.cost_before == pytest.approx(3 * 0.3008)
    assert found.cost_after == pytest.approx(0.1504)


# --- validation delay ----------------------------------------------------------------------


def replacement(*retire: str, after: float = 0.1) -> Replacement:
    return Replacement(tuple(retire), (), {}, 1.0, after)


def test_a_replacement_acts_only_when_it_still_pays_after_the_validation_delay() -> None:
    first = decide_consolidation(replacement("a"), None, now=100.0, delay_s=15.0)
    assert first.act is None and first.proposal is not None
    early = decide_consolidation(replacement("a"), first.proposal, now=114.9, delay_s=15.0)
    assert early.act is None and early.proposal == first.proposal
    on_time = decide_consolidation(
        replacement("a", after=0.2), early.proposal, now=115.0, delay_s=15.0
    )
    assert on_time.act == replacement("a", after=0.2) and on_time.proposal is None


def test_a_different_set_of_nodes_or_no_saving_starts_the_delay_over() -> None:
    first = decide_consolidation(replacement("a"), None, now=100.0, delay_s=15.0)
    other = decide_consolidation(replacement("b"), first.proposal, now=116.0, delay_s=15.0)
    assert other.act is None and other.proposal is not None and other.proposal.found_at == 116.0
    gone = decide_consolidation(None, other.proposal, now=140.0, delay_s=15.0)
    assert gone.act is None and gone.proposal is None


# --- the order of a replacement ------------------------------------------------------------


def test_no_node_is_drained_before_every_replacement_launch_is_ready() -> None:
    progress = InProgress(replacement("old1", "old2"), ("t1", "t2"), started_at=0.0)
    kwargs: dict[str, Any] = {
        "present": frozenset({"old1", "old2", "new1"}),
        "blocked": {},
        "budget": 5,
        "timeout_s": 600.0,
    }
    step = advance_replacement(
        progress, in_flight=frozenset({"t2"}), ready={"t1": "new1"}, now=10.0, **kwargs
    )
    assert step.outcome is Outcome.LAUNCHING and step.drain == ()
    step = advance_replacement(
        step.progress, in_flight=frozenset(), ready={"t2": "new2"}, now=20.0, **kwargs
    )
    assert step.outcome is Outcome.DRAINING and step.drain == ("old1", "old2")


def test_a_failed_or_slow_launch_abandons_without_draining() -> None:
    progress = InProgress(replacement("old"), ("t1",), started_at=0.0)
    common: dict[str, Any] = {"present": frozenset({"old"}), "blocked": {}, "budget": 1}
    lost = advance_replacement(
        progress, in_flight=frozenset(), ready={}, now=5.0, timeout_s=600.0, **common
    )
    assert lost.outcome is Outcome.ABANDONED and lost.drain == ()
    slow = advance_replacement(
        progress, in_flight=frozenset({"t1"}), ready={}, now=601.0, timeout_s=600.0, **common
    )
    assert slow.outcome is Outcome.ABANDONED and slow.drain == ()


def test_the_drain_keeps_the_budget_and_spares_a_node_whose_pod_became_protected() -> None:
    progress = InProgress(replacement("a", "b", "c"), (), started_at=0.0)
    present = frozenset({"a", "b", "c"})
    step = advance_replacement(
        progress,
        in_flight=frozenset(),
        ready={},
        present=present,
        blocked={"b": "default/x must not be evicted"},
        budget=1,
        now=1.0,
        timeout_s=600.0,
    )
    assert step.drain == ("a",) and step.progress.kept == {"b": "default/x must not be evicted"}
    step = advance_replacement(
        step.progress,
        in_flight=frozenset(),
        ready={},
        present=present - {"a"},
        blocked={},
        budget=1,
        now=2.0,
        timeout_s=600.0,
    )
    assert step.drain == ("c",) and step.outcome is Outcome.DRAINING
    step = advance_replacement(
        step.progress,
        in_flight=frozenset(),
        ready={},
        present=frozenset({"b"}),
        blocked={},
        budget=1,
        now=3.0,
        timeout_s=600.0,
    )
    assert step.outcome is Outcome.DONE and step.drain == ()


# --- properties at real sizes --------------------------------------------------------------

TYPES = ("t3a.xlarge", "t3a.2xlarge", "m5.2xlarge", "m6a.4xlarge", "m5.8xlarge")
SIZES = ((100, 128 * 2**20), (250, 512 * 2**20), (500, GiB), (1000, 2 * GiB), (1500, 3 * GiB))
BLOCKERS = (
    {keys.DO_NOT_EVICT: "true"},
    {keys.KARPENTER_DO_NOT_DISRUPT: "true"},
    {keys.CA_SAFE_TO_EVICT: "false"},
)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[tuple[str, list[tuple[int, int]]]], int]:
    """Nodes of several types, each with the pods kube-scheduler bound there: sizes in
    order, kept while they fit its allocatable CPU and memory (a size, and a kind: 0
    evictable, 1-3 one of the blockers, 4 a bare pod)."""
    nodes = []
    for _ in range(draw(st.integers(2, 8))):
        instance_type = draw(st.sampled_from(TYPES))
        wanted = draw(
            st.lists(
                st.tuples(
                    st.integers(0, len(SIZES) - 1),
                    st.sampled_from((0,) * 16 + (1, 2, 3, 4)),
                ),
                max_size=14,
            )
        )
        nodes.append((instance_type, wanted))
    return nodes, draw(st.integers(0, 40))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), all_nodes=st.booleans())
def test_a_replacement_never_costs_more_never_moves_a_protected_pod_and_holds_every_pod(
    cluster: tuple[list[tuple[str, list[tuple[int, int]]]], int], all_nodes: bool
) -> None:
    shapes, min_saving = cluster
    cfg = config(
        **{
            "consolidation.candidates": "all" if all_nodes else "under-used",
            "consolidation.minSavingsPercent": min_saving,
        }
    )
    nodes, pods = [], []
    room: dict[str, list[int]] = {}  # node -> [free CPU m, free memory bytes]
    protected: set[str] = set()
    requests: dict[str, tuple[int, int]] = {}
    for i, (instance_type, wanted) in enumerate(shapes):
        name = f"n{i}"
        offer = offer_of(cfg, instance_type)
        nodes.append(gibbous_node(name, offer, cfg))
        free = [offer.allocatable.cpu_millis, offer.allocatable.memory_bytes]
        for j, (size, kind) in enumerate(wanted):
            cpu, memory = SIZES[size]
            if cpu > free[0] or memory > free[1]:
                continue
            free[0] -= cpu
            free[1] -= memory
            pod_name = f"p{i}-{j}"
            pods.append(
                app_pod(
                    pod_name,
                    name,
                    cpu=cpu,
                    memory=memory,
                    annotations=BLOCKERS[kind - 1] if 1 <= kind <= 3 else None,
                    controller=kind != 4,
                )
            )
            requests[f"default/{pod_name}"] = (cpu, memory)
            if kind:
                protected.add(name)
        room[name] = free
    found, _ = review(nodes, pods, cfg)
    if found is None:
        return
    by_node = {f"n{i}": instance_type for i, (instance_type, _) in enumerate(shapes)}
    before = math.fsum(catalog_price(by_node[n], "on-demand") for n in found.retire)
    after = math.fsum(
        catalog_price(launch.offer.name, str(launch.offer.category)) for launch in found.launches
    )
    assert after < before and after <= before * (1 - min_saving / 100) + 1e-9
    assert not set(found.retire) & protected
    moving = {
        f"default/{p['metadata']['name']}" for p in pods if p["spec"]["nodeName"] in found.retire
    }
    placed = [key for launch in found.launches for key in launch.pods] + list(found.moves)
    assert sorted(placed) == sorted(moving)
    for target, keys_there in _by_target(found.moves).items():
        assert target not in found.retire
        assert sum(requests[k][0] for k in keys_there) <= room[target][0]
        assert sum(requests[k][1] for k in keys_there) <= room[target][1]
    for launch in found.launches:
        row = ROWS[launch.offer.name]
        assert sum(requests[k][0] for k in launch.pods) <= int(row["vcpu"]) * 1000
        assert sum(requests[k][1] for k in launch.pods) <= float(row["memory_gib"]) * GiB
    if len(found.retire) > 1:
        assert len(found.launches) < len(found.retire)
    if not all_nodes:
        for name in found.retire:
            cpu = sum(requests[k][0] for k in moving if _node_of(pods, k) == name)
            allocatable = offer_of(cfg, by_node[name]).allocatable
            assert cpu < 0.2 * allocatable.cpu_millis


def _by_target(moves: dict[str, str] | Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, node in moves.items():
        out.setdefault(node, []).append(key)
    return out


def _node_of(pods: list[dict[str, Any]], key: str) -> str:
    return next(
        str(p["spec"]["nodeName"]) for p in pods if f"default/{p['metadata']['name']}" == key
    )


@settings(max_examples=60, deadline=None)
@given(
    retire=st.integers(1, 6),
    tokens=st.integers(0, 3),
    events=st.lists(
        st.tuples(st.sampled_from(("ready", "lost", "blocked", "gone", "tick")), st.integers(0, 5)),
        max_size=30,
    ),
    budget=st.integers(0, 3),
)
def test_replacement_steps_never_drain_early_beyond_the_budget_or_a_protected_node(
    retire: int, tokens: int, events: list[tuple[str, int]], budget: int
) -> None:
    names = tuple(f"old{i}" for i in range(retire))
    token_names = tuple(f"t{i}" for i in range(tokens))
    progress = InProgress(replacement(*names), token_names, started_at=0.0)
    in_flight, ready = set(token_names), {}
    present, blocked = set(names), {}
    drained_at: dict[str, int] = {}
    for step_number, (event, index) in enumerate(events):
        if event == "ready" and token_names:
            token = token_names[index % len(token_names)]
            if token in in_flight:
                in_flight.discard(token)
                ready[token] = f"new-{token}"
        elif event == "lost" and token_names:
            in_flight.discard(token_names[index % len(token_names)])
        elif event == "blocked":
            blocked[names[index % retire]] = "protected"
        elif event == "gone":
            node = names[index % retire]
            if node in drained_at:
                present.discard(node)
        step = advance_replacement(
            progress,
            in_flight=frozenset(in_flight),
            ready=dict(ready),
            present=frozenset(present),
            blocked=dict(blocked),
            budget=budget,
            now=float(step_number),
            timeout_s=600.0,
        )
        assert len(step.drain) <= budget
        for node in step.drain:
            assert all(t in ready for t in token_names), "drained before the replacement"
            assert node not in blocked and node not in drained_at
            drained_at[node] = step_number
        if step.outcome is Outcome.ABANDONED:
            assert not step.drain
            return
        progress = step.progress
        if step.outcome is Outcome.DONE:
            return


# --- what a review says, and what it never does -------------------------------------------


def test_the_review_says_whether_nothing_paid_or_the_found_replacement_stopped_paying() -> None:
    nothing = decide_consolidation(None, None, now=100.0, delay_s=15.0)
    assert (nothing.act, nothing.why) == (None, "no replacement pays")
    found = decide_consolidation(replacement("a"), None, now=100.0, delay_s=15.0)
    gone = decide_consolidation(None, found.proposal, now=110.0, delay_s=15.0)
    assert (gone.act, gone.proposal, gone.why) == (None, None, "the replacement no longer pays")


def test_nodes_waiting_for_the_drain_budget_are_counted_in_the_reason() -> None:
    # Three nodes to retire, a budget of one: one drains, two wait.
    progress = InProgress(replacement("a", "b", "c"), (), started_at=0.0)
    step = advance_replacement(
        progress,
        in_flight=frozenset(),
        ready={},
        present=frozenset({"a", "b", "c"}),
        blocked={},
        budget=1,
        now=1.0,
        timeout_s=600.0,
    )
    assert step.drain == ("a",)
    assert step.why == "the replacement is Ready; 2 node(s) wait for the drain budget"


def test_a_replacement_of_the_same_price_is_never_made_even_with_no_savings_threshold() -> None:
    # minSavingsPercent 0: a t3a.xlarge holding one pod would be "replaced" by another
    # t3a.xlarge (the cheapest bin-pack shape) at the same $/hr: churn for nothing.
    cfg = config(**{"consolidation.candidates": "all", "consolidation.minSavingsPercent": 0})
    small = gibbous_node("small", offer_of(cfg, "t3a.xlarge"), cfg)
    found, _ = review([small], [app_pod("a", "small", cpu=500, memory=GiB)], cfg)
    assert found is None


def _candidates(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], cfg: Config
) -> tuple[list[Any], ClusterPods, dict[tuple[str, str], Offer]]:
    """The consolidation candidates of `nodes`, with the bound pods and offers by key."""
    bound = ClusterPods(cfg.designation)
    bound.sync(pods)
    by_key = {(o.name, str(o.category)): o for o in offers("aws", cfg)}
    candidates, _ = consolidation_candidates(
        [node_view(n) for n in nodes],
        bound,
        lambda facts: describe_pod(facts.pod, cfg)[0],
        by_key,
        cfg,
        now=NOW,
        busy=frozenset(),
    )
    return list(candidates), bound, by_key


def test_a_replacement_that_would_break_max_nodes_is_not_planned() -> None:
    # The big node's two pods would go to a new small node while the big one still exists
    # (the replacement launches first): two nodes, over maxNodes 1.
    cfg = config()
    nodes = [gibbous_node("big", offer_of(cfg, "m5.8xlarge"), cfg)]
    pods = [app_pod(f"web-{i}", "big", cpu=500, memory=GiB) for i in range(2)]
    candidates, bound, by_key = _candidates(nodes, pods, cfg)
    catalog_offers = offers("aws", cfg)
    existing = existing_nodes(nodes, pods, by_key, cfg, bound=bound)

    def found(guardrails: Guardrails | None) -> Replacement | None:
        return find_replacement(
            candidates,
            existing,
            catalog_offers,
            cfg,
            backoffs=Backoffs(),
            guardrails=guardrails,
            now=NOW,
        )

    assert found(None) is not None
    assert found(Guardrails(max_nodes=1, nodes_in_use=1)) is None


def test_candidates_come_least_used_first() -> None:
    # Three m5.2xlarge (8 vCPU, 32 GiB): 3, 1 and 2 pods of 500m / 1 GiB, so 18.75 %, 6.25 %
    # and 12.5 % of CPU (the larger share). Single-node attempts and multi-node groups are
    # taken from the front: the least-used node first.
    cfg = config()
    nodes = [gibbous_node(name, offer_of(cfg, "m5.2xlarge"), cfg) for name in ("a", "b", "c")]
    pods = [
        app_pod(f"{node}-{i}", node, cpu=500, memory=GiB)
        for node, count in (("a", 3), ("b", 1), ("c", 2))
        for i in range(count)
    ]
    candidates, _, _ = _candidates(nodes, pods, cfg)
    assert [c.name for c in candidates] == ["b", "c", "a"]
