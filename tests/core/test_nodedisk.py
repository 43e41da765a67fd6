"""A pod's ephemeral-storage request sizes the disk of the node it gets, counted as
kube-scheduler counts it: against allocatable, which is the disk less the kubelet's 10%
`nodefs.available` eviction threshold (Kubernetes "Node-pressure Eviction") and what the
cloud reserves (GKE "Plan node sizes": min(50%, 6 GiB + 35%, 100 GiB) of the boot disk;
amazon-eks-ami: 1 GiB kube-reserved). Expected disks are worked out by hand below."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import Plan
from gibbous.devcluster.gcp.agent import gke_storage_reserved
from tests.factories import config, make_pod, offers


def storage_pod(name: str, ephemeral: str, cpu: str = "3") -> dict[str, Any]:
    pod = make_pod(name, cpu=cpu, memory="4Gi")
    pod["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = ephemeral
    return pod


def plan(pods: list[dict[str, Any]], cloud: str, **options: object) -> Plan:
    cfg = config(cloudProvider=cloud, **options)
    return simulate([describe_pod(p, cfg)[0] for p in pods], offers(cloud, cfg), cfg)


@pytest.mark.parametrize(
    ("cloud", "disk"),
    [
        # GKE: above 268 GiB the reservation is 100 GiB: 0.9 D - 100 >= 800 -> D = 1000.
        ("gcp", 1000),
        # EKS: 0.9 D - 1 >= 800 -> D = 890 (889 gives 799.1 GiB).
        ("aws", 890),
        # AKS, OKE: 0.9 D >= 800 -> D = 889 (888.9 rounded up).
        ("azure", 889),
        ("oci", 889),
    ],
)
def test_leaderworkersets_800gi_vllm_pod_gets_a_disk_that_holds_it(cloud: str, disk: int) -> None:
    (node,) = plan([storage_pod("vllm", "800Gi")], cloud).new_nodes
    assert node.disk_gib == disk


def test_gkes_80gi_vllm_sample_needs_157_gib_not_the_default_100() -> None:
    # 100 GiB: 100 - 10 - min(50, 41, 100) = 49 GiB allocatable, short of 80. Between 40 and
    # 268 GiB the reservation is 6 + 0.35 D: 0.55 D - 6 >= 80 -> D = 157 (156 gives 79.8).
    (node,) = plan([storage_pod("vllm", "80Gi")], "gcp").new_nodes
    assert node.disk_gib == 157


def test_pods_that_fit_the_configured_disk_leave_it_alone() -> None:
    # 100 GiB on GKE holds 49 GiB of requests.
    (node,) = plan([storage_pod("small", "40Gi")], "gcp").new_nodes
    assert node.disk_gib == 0
    (node,) = plan([storage_pod("small", "40Gi")], "gcp", **{"gcp.diskSizeGb": 200}).new_nodes
    assert node.disk_gib == 0  # 200 - 20 - 76 = 104 GiB


def test_the_disk_holds_every_pod_packed_onto_the_node() -> None:
    # Two bin-pack pods of 30Gi share one bin-pack node on GKE: 60 GiB of requests,
    # 0.55 D - 6 >= 60 -> D = 120.
    pods = [storage_pod(f"p{i}", "30Gi", cpu="500m") for i in range(2)]
    (node,) = plan(pods, "gcp").new_nodes
    assert len(node.pods) == 2
    assert node.disk_gib == 120


def test_more_than_the_largest_disk_holds_is_unsatisfiable_and_says_ephemeral_storage() -> None:
    # AKS takes an OS disk of at most 2048 GiB: 1843.2 GiB allocatable.
    result = plan([storage_pod("huge", "1900Gi")], "azure")
    assert not result.new_nodes
    (reason,) = result.unschedulable.values()
    assert "ephemeral-storage" in reason


def test_the_gke_emulators_kubelet_reserves_what_gke_documents() -> None:
    # A 100 GiB boot disk: 10 GiB eviction threshold + min(50, 6 + 35, 100) = 51 GiB kept.
    assert gke_storage_reserved(100 * 2**30) == 51 * 2**30
    # 1000 GiB: 100 + min(500, 356, 100) = 200 GiB.
    assert gke_storage_reserved(1000 * 2**30) == 200 * 2**30
