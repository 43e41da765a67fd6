"""Well-known machine labels in selectors are requirements on the instance type, and needs
Gibbous cannot supply are reported as what they are. Expected values come from
scheduling-fidelity-facts section 8 (Karpenter's `computeRequirements`, GKE's accelerator
names) and the clouds' machine specifications, not from Gibbous's output."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.choice.machinelabels import machine_labels
from gibbous.core.choice.selection import matching_labels, offer_labels
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.podmodel.constraints import PriceCategory
from tests.factories import catalog, config, make_pod, offers


def instance(cloud: str, name: str) -> Any:
    (found,) = [i for i in catalog(cloud) if i.name == name]
    return found


def plan_one(pod: dict[str, Any], cloud: str, **options: object) -> Any:
    cfg = config(cloudProvider=cloud, **options)
    return simulate([describe_pod(pod, cfg)[0]], offers(cloud, cfg), cfg)


def gpu_pod(name: str, gpus: int, selector: dict[str, str]) -> dict[str, Any]:
    return make_pod(name, cpu="1", memory="4Gi", gpus=gpus, node_selector=selector)


def test_karpenter_aws_labels_of_g5_xlarge() -> None:
    # Karpenter's reference: g5.xlarge is category g, generation 5, 4 vCPU, 16384 MiB,
    # one NVIDIA A10G.
    labels = machine_labels(instance("aws", "g5.xlarge"), PriceCategory.ON_DEMAND)
    assert {k: v for k, v in labels.items() if k.startswith("karpenter.k8s.aws/")} == {
        "karpenter.k8s.aws/instance-category": "g",
        "karpenter.k8s.aws/instance-family": "g5",
        "karpenter.k8s.aws/instance-generation": "5",
        "karpenter.k8s.aws/instance-size": "xlarge",
        "karpenter.k8s.aws/instance-cpu": "4",
        "karpenter.k8s.aws/instance-memory": "16384",
        "karpenter.k8s.aws/instance-gpu-name": "a10g",
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-count": "1",
    }  # instance-gpu-memory (EC2's 22888 MiB) is left out: the catalog has whole GiB only
    # Gibbous writes them on its EKS nodes: nothing else would, and Karpenter users'
    # selectors need them there.
    (offer,) = [o for o in offers("aws") if o.name == "g5.xlarge" and o.category == "on-demand"]
    assert offer_labels(offer, config())["karpenter.k8s.aws/instance-gpu-name"] == "a10g"


def test_gke_accelerator_l4_selects_l4_machines_even_with_place_node_selector() -> None:
    # 4 x L4 is g2-standard-48 (Compute Engine G2 series); the T4 machine must not be
    # bought and labelled L4.
    pod = gpu_pod("l4", 4, {"cloud.google.com/gke-accelerator": "nvidia-l4"})
    for place in (True, False):
        (node,) = plan_one(pod, "gcp", placeNodeSelector=place).new_nodes
        assert node.offer.name == "g2-standard-48"


def test_a_gke_label_on_aws_is_unsatisfiable_and_named() -> None:
    pod = gpu_pod("l4", 4, {"cloud.google.com/gke-accelerator": "nvidia-l4"})
    result = plan_one(pod, "aws", placeNodeSelector=True)
    assert not result.new_nodes
    assert "cloud.google.com/gke-accelerator In nvidia-l4" in result.unschedulable["default/l4"]


def test_karpenter_gpu_name_and_gfd_product_select_the_gpu() -> None:
    (node,) = plan_one(
        gpu_pod("a", 1, {"karpenter.k8s.aws/instance-gpu-name": "a10g"}), "aws"
    ).new_nodes
    assert node.offer.instance.gpu_sku == "A10G"
    (node,) = plan_one(gpu_pod("t", 1, {"nvidia.com/gpu.product": "Tesla-T4"}), "aws").new_nodes
    assert node.offer.instance.gpu_sku == "T4"


def test_a_custom_label_without_place_node_selector_names_the_selector_and_option() -> None:
    pod = make_pod("ssd", node_selector={"disktype": "ssd"})
    result = plan_one(pod, "aws")
    reason = result.unschedulable["default/ssd"]
    assert "disktype In ssd" in reason and "placeNodeSelector=true" in reason
    assert plan_one(pod, "aws", placeNodeSelector=True).new_nodes


@pytest.mark.parametrize(
    ("resource", "said"),
    [
        ("amd.com/gpu", "AMD GPUs"),
        ("google.com/tpu", "TPU"),
        ("nvidia.com/mig-1g.5gb", "MIG"),
    ],
)
def test_resources_gibbous_cannot_supply_are_reported_as_such(resource: str, said: str) -> None:
    pod = make_pod("p")
    pod["spec"]["containers"][0]["resources"]["limits"] = {resource: "1"}
    result = plan_one(pod, "gcp")
    assert said in result.unschedulable["default/p"]
    assert (
        "not supported yet" in result.unschedulable["default/p"]
        or "no AMD" in (result.unschedulable["default/p"])
    )


def test_dra_claims_and_kai_fractions_are_reported() -> None:
    claim = make_pod("claim")
    claim["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": "one-gpu"}]
    assert "Dynamic Resource Allocation" in plan_one(claim, "aws").unschedulable["default/claim"]
    fraction = make_pod("kai", annotations={"gpu-fraction": "0.5"})
    assert "gpu-fraction" in plan_one(fraction, "aws").unschedulable["default/kai"]


# --- labels the cloud puts on its nodes: requirements Gibbous meets -----------------------
# Expected categories and values: GKE's Spot VMs page (gke-spot "true", gke-provisioning
# spot), EKS managed node groups (capacityType SPOT / ON_DEMAND), Karpenter's labels.go
# (capacity-type spot / on-demand), AKS's spot node pool page (scalesetpriority spot).
SPOT_SELECTORS = (
    ("gcp", {"cloud.google.com/gke-spot": "true"}),
    ("gcp", {"cloud.google.com/gke-provisioning": "spot"}),
    ("gcp", {"karpenter.sh/capacity-type": "spot"}),
    ("aws", {"karpenter.sh/capacity-type": "spot"}),
    ("aws", {"eks.amazonaws.com/capacityType": "SPOT"}),
    ("azure", {"kubernetes.azure.com/scalesetpriority": "spot"}),
)


@pytest.mark.parametrize(("cloud", "selector"), SPOT_SELECTORS)
def test_a_spot_selector_buys_spot_and_the_node_carries_the_label(
    cloud: str, selector: dict[str, str]
) -> None:
    pod = make_pod("spot", cpu="3", memory="4Gi", node_selector=selector)
    (node,) = plan_one(pod, cloud).new_nodes
    assert node.offer.category == "spot"  # the default offerings are on-demand only
    ((key, value),) = selector.items()
    assert offer_labels_with_cloud(node.offer, cloud)[key] == value


def offer_labels_with_cloud(offer: Any, cloud: str) -> dict[str, str]:
    return matching_labels(offer, config(cloudProvider=cloud))


@pytest.mark.parametrize(
    ("cloud", "selector"),
    [
        ("aws", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}),
        ("gcp", {"cloud.google.com/gke-provisioning": "standard"}),
    ],
)
def test_an_on_demand_selector_keeps_on_demand_even_when_spot_is_allowed(
    cloud: str, selector: dict[str, str]
) -> None:
    pod = make_pod("od", cpu="3", memory="4Gi", node_selector=selector)
    (node,) = plan_one(pod, cloud, defaultInstanceOfferings="spot,on-demand").new_nodes
    assert node.offer.category == "on-demand"


def test_another_clouds_capacity_label_is_unsatisfiable_and_named() -> None:
    pod = make_pod(
        "x", cpu="3", memory="4Gi", node_selector={"eks.amazonaws.com/capacityType": "SPOT"}
    )
    plan = plan_one(pod, "gcp")
    assert not plan.new_nodes
    (reason,) = plan.unschedulable.values()
    assert "eks.amazonaws.com/capacityType is a label aws puts on its nodes" in reason


def test_gke_gpu_driver_version_is_met_by_gpu_pools_gke_installs_the_driver_on() -> None:
    # GKE labels GPU nodes with the pool's driver version (default or latest).
    pod = gpu_pod("drv", 1, {"cloud.google.com/gke-gpu-driver-version": "latest"})
    (node,) = plan_one(pod, "gcp", **{"gcp.gpuDriverVersion": "latest"}).new_nodes
    assert node.offer.instance.gpu_count == 1
    plan = plan_one(pod, "gcp")  # pools get the default driver
    (reason,) = plan.unschedulable.values()
    assert "gcp.gpuDriverVersion (default)" in reason
    cpu_only = make_pod(
        "cpu",
        cpu="3",
        memory="4Gi",
        node_selector={"cloud.google.com/gke-gpu-driver-version": "default"},
    )
    # Only GPU nodes carry the label, so only a GPU machine meets the selector.
    (node,) = plan_one(cpu_only, "gcp").new_nodes
    assert node.offer.instance.gpu_count


def test_workload_identity_selector_needs_the_metadata_server_pools() -> None:
    pod = make_pod(
        "wi",
        cpu="3",
        memory="4Gi",
        node_selector={"iam.gke.io/gke-metadata-server-enabled": "true"},
    )
    (reason,) = plan_one(pod, "gcp").unschedulable.values()
    assert "gcp.workloadIdentity=true" in reason
    (node,) = plan_one(pod, "gcp", **{"gcp.workloadIdentity": True}).new_nodes
    assert node.offer.category == "on-demand"


@pytest.mark.parametrize(("cloud", "selector"), SPOT_SELECTORS)
def test_small_pods_selecting_spot_get_spot_bin_pack_nodes(
    cloud: str, selector: dict[str, str]
) -> None:
    # binPackingNodePricing is on-demand by default; the selector asks for spot.
    pods = [
        make_pod(f"small-{i}", cpu="100m", memory="128Mi", node_selector=selector) for i in range(3)
    ]
    cfg = config(cloudProvider=cloud)
    plan = simulate([describe_pod(p, cfg)[0] for p in pods], offers(cloud, cfg), cfg)
    (node,) = plan.new_nodes
    assert node.offer.category == "spot" and len(node.pods) == 3
