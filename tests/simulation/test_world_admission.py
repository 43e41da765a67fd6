"""The simulated cluster admits pods as a real one does: where Gibbous is installed its
mutating webhook changes each new pod, where it is not (the peers' clusters) nothing does;
a controller's replacement comes from the workload's template; the bill stops at the end.

The race's P10 Ray head (bench/race/trace.py, `posts`) is the case that showed it: written
as a user writes it (27 CPU, 27Gi, 2 GPUs, Luna's `instance-offerings: spot,on-demand`, no
toleration), it stayed pending in the simulator on the spot node Gibbous bought for it, while
in the real race Gibbous's webhook gave it the spot toleration and kube-scheduler bound it in
15 s."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gibbous.catalogs import load_catalog
from gibbous.core.podmodel.pods import key_of
from gibbous.simulation.cloud import SimCloud, StartingNode
from gibbous.simulation.engine import run, scenario_config
from gibbous.simulation.scenario import parse_scenario
from gibbous.simulation.world import SimCluster

# Gibbous's own spot taint, on every spot node it launches (docs/decisions.md: "The spot
# taint stays on every cloud"), and the toleration its webhook gives pods that allow spot.
SPOT_TOLERATION = {
    "key": "gibbous.dev/capacity-type",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def ray_head() -> dict[str, Any]:
    """P10's Ray head as the race's replay creates it (no toleration of its own)."""
    return {
        "metadata": {
            "labels": {"elotl-luna": "true"},
            "annotations": {"node.elotl.co/instance-offerings": "spot,on-demand"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "resources": {
                        "requests": {"cpu": "27", "memory": "27Gi"},
                        "limits": {"nvidia.com/gpu": "2"},
                    },
                }
            ]
        },
    }


def world(*, gibbous: bool, options: dict[str, Any] | None = None) -> SimCluster:
    scenario = parse_scenario({"name": "w", "cloud": "aws", "config": options or {}}, "w")
    config = scenario_config(scenario)
    catalog = load_catalog(None, "aws", config.effective_region)
    now = [0.0]
    return SimCluster(
        SimCloud(catalog, lambda: now[0], boot_s=10), config, lambda: now[0], {}, steering=gibbous
    )


def test_with_gibbous_installed_a_pod_that_allows_spot_tolerates_the_spot_taint() -> None:
    pod = world(gibbous=True).create_pod(
        ray_head(), workload="head", run_for_s=None, replace_pods=True, usage=(), arrival=0
    )
    tolerations = pod.obj["spec"]["tolerations"]
    assert SPOT_TOLERATION in tolerations
    # ExtendedResourceToleration's, for the GPU limit, is there too.
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    # 27 CPUs is over bin-pack's 6-CPU limit (Luna's default binPackingNodeCpu): bin-select.
    assert pod.obj["metadata"]["labels"]["gibbous.dev/placement"] == "bin-select"


def test_without_gibbous_the_pod_stays_as_written() -> None:
    # Karpenter's cluster in the race has no Gibbous webhook: only the API server's own
    # ExtendedResourceToleration applies.
    pod = world(gibbous=False).create_pod(
        ray_head(), workload="head", run_for_s=None, replace_pods=True, usage=(), arrival=0
    )
    assert pod.obj["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "gibbous.dev/placement" not in pod.obj["metadata"]["labels"]


def test_the_p10_ray_head_runs_on_the_spot_node_gibbous_buys_for_it() -> None:
    # One pod on an empty AWS cluster, nodes Ready 10 s after launch, 2 s steps. By hand: the
    # pod is seen pending after its first step, decided after Gibbous's 1 s batch window (the
    # next step), its node Ready 10 s later and bound at the following step: about 16 s, and
    # well under a minute whatever the rounding. Spot is cheaper than on-demand for every
    # GPU type here, so the node is spot and tainted; the pod runs only with the webhook's
    # toleration. Before the fix it waited the whole 5 minutes.
    scenario = parse_scenario(
        {
            "name": "p10-head",
            "cloud": "aws",
            "duration": "5m",
            "bootTime": "10s",
            "workloads": [{"name": "head", "count": 1, "replace": True, "pod": ray_head()}],
        },
        "p10-head",
    )
    result = run(scenario, "gibbous")
    assert result.never_ran == 0
    assert result.pods_bound == 1
    assert result.pending_max_s <= 30
    (node,) = result.first_nodes
    assert node.category == "spot"


def test_a_replacement_is_made_from_the_template_not_from_the_released_pod() -> None:
    # provisioningGate on: the webhook gates a bin-select pod; Gibbous releases it pinned to
    # its node by hostname (plan_release). When that pod is evicted, its ReplicaSet makes the
    # next one from the template: gated again, pinned nowhere.
    cluster = world(gibbous=True, options={"provisioningGate": True})
    first = cluster.create_pod(
        ray_head(), workload="head", run_for_s=None, replace_pods=True, usage=(), arrival=0
    )
    assert first.obj["spec"]["schedulingGates"] == [{"name": "gibbous.dev/provisioning"}]
    cluster.release_pod(first.obj, "node-a")
    released = cluster.pods_by_key[key_of(first.obj)].obj
    assert released["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-a"}
    assert "schedulingGates" not in released["spec"]
    cluster.remove_pod(key_of(released), why="evicted")
    (replacement,) = cluster.pods_by_key.values()
    assert "nodeSelector" not in replacement.obj["spec"]
    assert replacement.obj["spec"]["schedulingGates"] == [{"name": "gibbous.dev/provisioning"}]


def test_the_bill_stops_at_the_end_of_the_scenario() -> None:
    # One node running from the start and nothing else to do: the engine takes 30 s idle
    # steps. Its bill over 100 s is 100/3600 of its bill over an hour, whatever its price;
    # it was 120/3630 when the last step was billed whole past the end.
    node = StartingNode("n1", "m5.large", "on-demand", "us-west-2a", {})
    short = parse_scenario({"name": "idle", "cloud": "aws", "duration": "100s"}, "idle")
    short = replace(short, nodes=(node,))
    hour = replace(short, duration_s=3600.0)
    expected = run(hour, "static").total_cost * 100 / 3600
    assert run(short, "static").total_cost == pytest.approx(expected, rel=1e-9)
