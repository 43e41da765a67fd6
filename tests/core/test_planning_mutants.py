"""Planning rules the mutation run of issue 37 (docs/mutation.md) showed no test held.

Expected values come from kube-scheduler's rules (PodTopologySpread's nodeAffinityPolicy,
scheduling-fidelity-facts.md; NodeResourcesFit for extended resources), the Node and
annotation formats, and hand computations written here."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.errors import ManifestError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.estimate import expand_workloads
from gibbous.core.planning.packingmodel import fit_count
from gibbous.core.planning.placement import filter_node, node_view, pod_facts
from gibbous.core.planning.scaleup import InFlight
from gibbous.core.podmodel.resources import Resources
from tests.core.test_interpod import GCP, ZONES, existing, plan, spread
from tests.factories import config, make_pod, offers

# --- topology spread: which nodes count ----------------------------------------------------


def zone_spread_pod(policy: str | None) -> dict[str, Any]:
    pod = make_pod("w-new", labels={"app": "w"})
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": keys.ZONE, "operator": "In", "values": list(ZONES[:2])}
                        ]
                    }
                ]
            }
        }
    }
    extra: dict[str, Any] = {} if policy is None else {"nodeAffinityPolicy": policy}
    return spread(pod, "w", **extra)


@pytest.mark.parametrize("policy", [None, "Honor"])
def test_spread_counts_only_the_nodes_the_pods_affinity_admits(policy: str | None) -> None:
    # Zones a and b hold one app=w pod each, c none. The pod may only go to a or b.
    # nodeAffinityPolicy Honor (the default): c is not a domain, so the minimum is 1 and
    # a pod in a makes 2 - 1 = 1 <= maxSkew 1: it fits on the existing node n-a.
    nodes = [
        existing("n-a", ZONES[0], [make_pod("w0", labels={"app": "w"})]),
        existing("n-b", ZONES[1], [make_pod("w1", labels={"app": "w"})]),
        existing("n-c", ZONES[2], []),
    ]
    result = plan([zone_spread_pod(policy)], existing=nodes)
    assert result.on_existing == {"default/w-new": "n-a"}


def test_spread_that_ignores_node_affinity_counts_every_zone() -> None:
    # nodeAffinityPolicy Ignore: c counts with 0 pods, so a or b would make 2 - 0 = 2 > 1,
    # and the pod may not go to c: nowhere.
    nodes = [
        existing("n-a", ZONES[0], [make_pod("w0", labels={"app": "w"})]),
        existing("n-b", ZONES[1], [make_pod("w1", labels={"app": "w"})]),
        existing("n-c", ZONES[2], []),
    ]
    result = plan([zone_spread_pod("Ignore")], existing=nodes)
    assert result.on_existing == {} and not result.new_nodes
    assert "topology spread" in result.unschedulable["default/w-new"]


# --- resources ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("have", "fits"),
    [
        ((("example.com/fpga", 5),), 2),  # 5 // 2
        ((("example.com/fpga", 1),), 0),
        ((), 0),  # a node without the resource takes none
        ((("example.com/fpga", -3),), 0),  # never negative
    ],
)
def test_fit_count_of_extended_resources(have: tuple[tuple[str, int], ...], fits: int) -> None:
    # NodeResourcesFit: an extended resource fits when the node's allocatable minus what is
    # used covers the request; 100 CPUs leave CPU out of the answer
    requests = Resources(100, 0, 0, 1, 0, (("example.com/fpga", 2),))
    free = Resources(100_000, 0, 0, 110, 0, have)
    assert fit_count(requests, free) == fits


# --- nodes as read ---------------------------------------------------------------------------


def read_node(**metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "n", **metadata},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
    }


def test_a_nodes_observed_utilization_and_its_problems() -> None:
    observed = read_node(annotations={"gibbous.dev/observed-utilization": "cpu=61.0,memory=40.5"})
    view = node_view(observed)
    assert (view.observed_cpu, view.observed_memory, view.problems) == (61.0, 40.5, ())
    plain = node_view(read_node(labels={"a": "b"}))
    assert (plain.observed_cpu, plain.observed_memory, plain.problems) == (None, None, ())
    odd = node_view(read_node(labels={"a": 1}))
    assert odd.problems == ("labels that are not strings were ignored",)


def test_a_spot_gibbous_node_is_refused_to_an_on_demand_only_pod() -> None:
    node = read_node(
        labels={
            keys.CREATED_BY: keys.CREATED_BY_VALUE,
            keys.CAPACITY_TYPE: "spot",
            keys.PLACEMENT: keys.PLACEMENT_BIN_PACK,
        }
    )
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    # Luna's binPackingNodePricing: the offerings bin-pack pods get without an annotation
    cfg = config(binPackingNodePricing="on-demand")
    pod = make_pod("p")
    verdict = filter_node(pod_facts(pod, cfg), node_view(node), reserved_for_pending=lambda _: True)
    assert not verdict.ok
    assert verdict.reason == "gibbous: node is spot, pod allows on-demand"


def test_an_in_flight_launch_is_a_node_of_its_offer() -> None:
    offer = offers("gcp", GCP)[0]
    node = InFlight("tok", offer, Placement.BIN_PACK, ZONES[0], 0.0).as_node()
    assert (node.name, node.offer, node.free) == ("in-flight:tok", offer, offer.allocatable)


# --- manifests --------------------------------------------------------------------------------


def test_every_structural_problem_of_a_pod_is_named() -> None:
    pod = make_pod("p")
    pod["spec"]["containers"][0]["name"] = 7
    pod["spec"]["containers"].append({"name": 8, "image": "busybox"})
    with pytest.raises(ManifestError) as raised:
        describe_pod(pod, config())
    assert str(raised.value) == (
        "spec.containers[0].name: expected a string, got the number 7; "
        "spec.containers[1].name: expected a string, got the number 8 "
        "(the API server refuses this structure)"
    )


def test_workload_notes_and_errors_name_the_document() -> None:
    _, notes = expand_workloads([{"apiVersion": "example.com/v1", "kind": "Widget"}])
    assert notes[0].startswith("input document 1 (Widget unnamed): skipped:")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}
    job["spec"] = {"parallelism": "many", "template": {"spec": {"containers": []}}}
    with pytest.raises(ManifestError, match=r"^input document 1 \(Job j\) parallelism"):
        expand_workloads([job])
