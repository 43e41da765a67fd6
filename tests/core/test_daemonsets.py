"""New nodes are sized with what the cluster's DaemonSets will run on them (Karpenter's
daemon overhead per NodeClaim template): selector/affinity against the node's labels,
tolerations against its taints. Expected figures are worked out by hand below."""

from __future__ import annotations

from typing import Any

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.daemonsets import DaemonSetPod, describe_daemonset
from gibbous.core.choice.selection import build_offers
from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.constraints import PriceCategory
from tests.factories import config

GIB = 2**30
MIB = 2**20

# Reservations off, so allocatable is capacity minus the DaemonSets alone.
BARE = {"nodeOverhead": {"reservation": "none", "evictionMemory": 0}}


def daemonset(
    name: str, pod_spec: dict[str, Any], namespace: str = "kube-system"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
    }


def container(cpu: str, memory: str) -> dict[str, Any]:
    return {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}}


# GPU nodes only, tolerating GPU taints: GKE's NVIDIA device plugin selects nodes with
# an accelerator label.
DEVICE_PLUGIN = daemonset(
    "nvidia-gpu-device-plugin",
    {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container("50m", "100Mi")],
    },
)
# Every node, every taint: a log shipper with an init container bigger than its app.
LOG_AGENT = daemonset(
    "log-agent",
    {
        "tolerations": [{"operator": "Exists"}],
        "initContainers": [container("300m", "64Mi")],
        "containers": [container("100m", "200Mi"), container("50m", "56Mi")],
    },
)
# No tolerations: kept off spot and GPU-tainted nodes.
NODE_EXPORTER = daemonset("node-exporter", {"containers": [container("20m", "30Mi")]})


def gcp_type(name: str, vcpu: int, memory_gib: int, gpus: int = 0) -> InstanceType:
    return InstanceType(
        cloud="gcp",
        region="us-central1",
        name=name,
        family=name.split("-", maxsplit=1)[0],
        vcpu=vcpu,
        memory_bytes=memory_gib * GIB,
        gpu_count=gpus,
        gpu_sku="T4" if gpus else "",
        gpu_memory_bytes=16 * GIB * gpus,
        arch="amd64",
        on_demand_price=1.0 + gpus,
        spot_price=0.3,
        max_pods=110,
    )


def described(*objects: dict[str, Any]) -> list[DaemonSetPod]:
    out = []
    for obj in objects:
        pod = describe_daemonset(obj)
        assert isinstance(pod, DaemonSetPod)
        out.append(pod)
    return out


def test_a_gpu_node_runs_both_daemonsets_a_cpu_node_only_the_one_tolerating_everything() -> None:
    cfg = config(cloudProvider="gcp", **BARE)
    types = [gcp_type("n1-standard-4", 4, 16), gcp_type("n1-standard-4+t4x1", 4, 16, gpus=1)]
    offers = {
        (o.name, o.category): o.allocatable
        for o in build_offers(types, cfg, described(DEVICE_PLUGIN, LOG_AGENT))
    }
    # log-agent: containers 100m+50m = 150m, 200Mi+56Mi = 256Mi; its init container
    # (300m, 64Mi) runs alone first, so the pod asks max(150m, 300m) = 300m and
    # max(256Mi, 64Mi) = 256Mi, and one pod slot.
    # device plugin: 50m, 100Mi, one pod slot; GPU nodes only.
    cpu_node = offers[("n1-standard-4", PriceCategory.ON_DEMAND)]
    assert (cpu_node.cpu_millis, cpu_node.memory_bytes, cpu_node.pods) == (
        4000 - 300,
        16 * GIB - 256 * MIB,
        110 - 1,
    )
    gpu_node = offers[("n1-standard-4+t4x1", PriceCategory.ON_DEMAND)]
    assert (gpu_node.cpu_millis, gpu_node.memory_bytes, gpu_node.pods, gpu_node.gpus) == (
        4000 - 300 - 50,
        16 * GIB - 256 * MIB - 100 * MIB,
        110 - 2,
        1,
    )


def test_taints_keep_a_daemonset_without_tolerations_off_spot_and_gpu_nodes() -> None:
    cfg = config(cloudProvider="gcp", **BARE)
    types = [gcp_type("n1-standard-4", 4, 16), gcp_type("n1-standard-4+t4x1", 4, 16, gpus=1)]
    offers = {
        (o.name, o.category): o.allocatable
        for o in build_offers(types, cfg, described(NODE_EXPORTER))
    }
    # on-demand CPU node: no taint, node-exporter runs (20m, 30Mi)
    assert offers[("n1-standard-4", PriceCategory.ON_DEMAND)].cpu_millis == 4000 - 20
    # spot: Gibbous's spot taint; GPU: GKE's nvidia.com/gpu=present taint
    assert offers[("n1-standard-4", PriceCategory.SPOT)].cpu_millis == 4000
    assert offers[("n1-standard-4+t4x1", PriceCategory.ON_DEMAND)].cpu_millis == 4000


def test_without_known_daemonsets_the_configured_overhead_is_left() -> None:
    cfg = config(
        cloudProvider="gcp",
        nodeOverhead={
            "reservation": "none",
            "evictionMemory": 0,
            "daemonSetCpu": "100m",
            "daemonSetMemory": "200Mi",
        },
    )
    types = [gcp_type("n1-standard-4", 4, 16)]
    (fallback, _spot) = build_offers(types, cfg)
    assert (fallback.allocatable.cpu_millis, fallback.allocatable.memory_bytes) == (
        3900,
        16 * GIB - 200 * MIB,
    )
    # Known and none at all: nothing is set aside for DaemonSets.
    (known_none, _spot) = build_offers(types, cfg, [])
    assert (known_none.allocatable.cpu_millis, known_none.allocatable.pods) == (4000, 110)


def test_affinity_on_the_zone_counts_the_daemonset_zone_is_picked_at_launch() -> None:
    zonal = daemonset(
        "zonal",
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": keys.ZONE, "operator": "In", "values": ["z1"]},
                                    {"key": keys.ARCH, "operator": "In", "values": ["arm64"]},
                                ]
                            },
                            {
                                "matchExpressions": [
                                    {"key": keys.ZONE, "operator": "In", "values": ["z2"]}
                                ]
                            },
                        ]
                    }
                }
            },
            "containers": [container("10m", "10Mi")],
        },
    )
    (pod,) = described(zonal)
    # second term: only the zone, unknown before launch -> counted
    assert pod.runs_on({keys.ARCH: "amd64"}, [])
    # first term alone would need arm64; the second term is the one met
    only_first = DaemonSetPod(
        pod.name, pod.requests, type(pod.affinity)(pod.affinity.terms[:1]), ()
    )
    assert not only_first.runs_on({keys.ARCH: "amd64"}, [])
    assert only_first.runs_on({keys.ARCH: "arm64"}, [])


def test_a_template_with_an_unreadable_quantity_is_reported_not_raised() -> None:
    broken = daemonset("broken", {"containers": [container("lots", "1Gi")]})
    problem = describe_daemonset(broken)
    assert isinstance(problem, GibbousError)
    assert "DaemonSet kube-system/broken" in str(problem)
