"""Well-known node labels that describe the machine, as the cloud, Karpenter or NVIDIA's
GPU Feature Discovery (GFD) write them (scheduling-fidelity-facts section 8).

A pod's nodeSelector or required node affinity on one of these keys is a requirement
on the instance type (or price category), never a label to copy onto a node: with
`placeNodeSelector`, `cloud.google.com/gke-accelerator: nvidia-l4` must get an L4
machine, not a T4 machine labelled L4.

`machine_labels` gives every such label an offer's node will carry, including those
others write after it registers (GKE's accelerator label, GFD's `nvidia.com/gpu.*`);
`written_machine_labels` the subset Gibbous itself puts on its nodes: Karpenter's AWS
labels (so Karpenter users' selectors keep working on EKS, where nothing else writes
them). Values the sources do not pin down (a GFD product string Gibbous cannot predict)
are left out, so a selector on them is reported as unsatisfiable, not guessed.
"""

from __future__ import annotations

import re

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.settings.config import Config

KARPENTER_AWS = "karpenter.k8s.aws/"
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
GKE_MACHINE_FAMILY = "cloud.google.com/machine-family"
GKE_PROVISIONING = "cloud.google.com/gke-provisioning"
GKE_PREEMPTIBLE = "cloud.google.com/gke-preemptible"
GKE_TPU_ACCELERATOR = "cloud.google.com/gke-tpu-accelerator"
AKS_ACCELERATOR = "kubernetes.azure.com/accelerator"
GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_COUNT = "nvidia.com/gpu.count"
GFD_MEMORY = "nvidia.com/gpu.memory"
GKE_GPU_DRIVER_VERSION = "cloud.google.com/gke-gpu-driver-version"
GKE_METADATA_SERVER = "iam.gke.io/gke-metadata-server-enabled"

_AWS_KEYS = tuple(
    KARPENTER_AWS + name
    for name in (
        "instance-category",
        "instance-family",
        "instance-generation",
        "instance-size",
        "instance-cpu",
        "instance-memory",
        "instance-gpu-name",
        "instance-gpu-manufacturer",
        "instance-gpu-count",
        "instance-gpu-memory",
    )
)

# Every key that describes the machine or its offering, on any cloud.
MACHINE_KEYS = frozenset(
    (
        *_AWS_KEYS,
        GKE_ACCELERATOR,
        GKE_MACHINE_FAMILY,
        GKE_PROVISIONING,
        GKE_PREEMPTIBLE,
        GKE_TPU_ACCELERATOR,
        AKS_ACCELERATOR,
        GFD_PRODUCT,
        GFD_COUNT,
        GFD_MEMORY,
        GKE_GPU_DRIVER_VERSION,
        GKE_METADATA_SERVER,
    )
)

# --- labels the cloud puts on its nodes ----------------------------------------------
# Per cloud, the labels its node pools (or Karpenter) put on a node because of the pool's
# settings or the node's price category, with the source that says so. A selector on one
# is a requirement Gibbous meets by that setting or category (`cloud_labels`,
# `selected_categories`), never a user label to copy onto a node.
CLOUD_NODE_LABELS: dict[str, dict[str, str]] = {
    "gcp": {
        keys.GKE_SPOT: "GKE Spot VMs (cloud.google.com/kubernetes-engine/docs/concepts/spot-vms): "
        '"true" on Spot VM nodes; cluster-autoscaler gce_price_model.go reads it',
        GKE_PROVISIONING: "GKE node auto-creation (cloud.google.com/kubernetes-engine/docs/"
        "concepts/node-auto-provisioning): spot on Spot VM nodes, standard otherwise",
        GKE_GPU_DRIVER_VERSION: "GKE GPUs (cloud.google.com/kubernetes-engine/docs/how-to/gpus): "
        "the pool's gpuDriverInstallationConfig, default or latest, on GPU nodes GKE installs "
        "the driver on",
        GKE_METADATA_SERVER: "GKE Workload Identity (cloud.google.com/kubernetes-engine/docs/"
        'how-to/workload-identity): "true" on pools with workloadMetadataConfig GKE_METADATA',
    },
    "aws": {
        keys.EKS_CAPACITY_TYPE: "EKS managed node groups (docs.aws.amazon.com/eks/latest/"
        "userguide/managed-node-groups.html): SPOT or ON_DEMAND on every node",
        keys.KARPENTER_CAPACITY_TYPE: "Karpenter (sigs.k8s.io/karpenter pkg/apis/v1/labels.go): "
        "spot or on-demand",
    },
    "azure": {
        keys.AKS_SCALESET_PRIORITY: "AKS Spot node pools (learn.microsoft.com/azure/aks/"
        "spot-node-pool): spot on Spot pools' nodes; regular pools carry none",
    },
    "oci": {},
}
# Gibbous's own and Karpenter's capacity labels, written by Gibbous on every cloud.
_GIBBOUS_CAPACITY_KEYS = (keys.CAPACITY_TYPE, keys.KARPENTER_CAPACITY_TYPE)
CAPACITY_KEYS = frozenset(
    (
        *_GIBBOUS_CAPACITY_KEYS,
        keys.GKE_SPOT,
        GKE_PROVISIONING,
        keys.EKS_CAPACITY_TYPE,
        keys.AKS_SCALESET_PRIORITY,
    )
)


def capacity_labels(cloud: str, category: PriceCategory) -> dict[str, str]:
    """The labels that say a node's price category on `cloud`, as the cloud (and Gibbous,
    for its own and Karpenter's key) write them."""
    spot = category is PriceCategory.SPOT
    labels = {key: str(category) for key in _GIBBOUS_CAPACITY_KEYS}
    if cloud == "aws":
        labels[keys.EKS_CAPACITY_TYPE] = "SPOT" if spot else "ON_DEMAND"
    if cloud == "gcp":
        labels[GKE_PROVISIONING] = "spot" if spot else "standard"
        if spot:
            labels[keys.GKE_SPOT] = "true"
    if cloud == "azure" and spot:
        labels[keys.AKS_SCALESET_PRIORITY] = "spot"
    return labels


def selected_categories(affinity: NodeAffinity, cloud: str) -> frozenset[PriceCategory] | None:
    """The price categories a pod's node selector or required affinity picks with the
    capacity labels of `cloud`, or None when some term says nothing about the category (the
    configured default then applies) or no category meets it (the affinity check reports
    that, naming the label)."""
    if not affinity.terms:
        return None
    chosen: set[PriceCategory] = set()
    for term in affinity.terms:
        asked = [r for r in term if r.key in CAPACITY_KEYS]
        if not asked:
            return None
        for category in PriceCategory:
            labels = capacity_labels(cloud, category)
            if all(r.matches(labels) for r in asked):
                chosen.add(category)
    return frozenset(chosen) or None


def cloud_labels(instance: InstanceType, config: Config) -> dict[str, str]:
    """Labels the cloud puts on a node of this type because of the settings of the pool
    Gibbous makes for it (`CLOUD_NODE_LABELS`); the price category's are `capacity_labels`."""
    labels: dict[str, str] = {}
    if instance.cloud == "gcp":
        driver = config.gcp.gpu_driver_version
        if instance.gpu_count and driver != "disabled":
            labels[GKE_GPU_DRIVER_VERSION] = driver
        if config.gcp.workload_identity:
            labels[GKE_METADATA_SERVER] = "true"
    return labels


# Compute Engine accelerator type names (cloud.google.com/compute/docs/gpus).
_GKE_ACCELERATORS = {
    "T4": "nvidia-tesla-t4",
    "L4": "nvidia-l4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
    "K80": "nvidia-tesla-k80",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
    "GB200": "nvidia-gb200",
}

# GFD product names (NVML device name, sanitised) where a source gives them.
_GFD_PRODUCTS = {"T4": "Tesla-T4", "A10G": "NVIDIA-A10G", "L4": "NVIDIA-L4"}

_AWS_TYPE = re.compile(r"(^[a-z]+)(-[0-9]+tb)?([0-9]+).*\.")


def _per_gpu_gib(instance: InstanceType) -> int:
    if not instance.gpu_count or not instance.gpu_memory_bytes:
        return 0
    return round(instance.gpu_memory_bytes / instance.gpu_count / (1 << 30))


def gke_accelerator(instance: InstanceType) -> str:
    """GKE's `cloud.google.com/gke-accelerator` value for a GPU type, "" if unknown."""
    sku = instance.gpu_sku
    if sku == "A100":
        return "nvidia-a100-80gb" if _per_gpu_gib(instance) >= 80 else "nvidia-tesla-a100"
    if sku == "H100":
        mega = instance.name.startswith("a3-mega")
        return "nvidia-h100-mega-80gb" if mega else "nvidia-h100-80gb"
    return _GKE_ACCELERATORS.get(sku, "")


def _aws_labels(instance: InstanceType) -> dict[str, str]:
    family, _, size = instance.name.partition(".")
    labels = {
        KARPENTER_AWS + "instance-family": family,
        KARPENTER_AWS + "instance-size": size,
        KARPENTER_AWS + "instance-cpu": str(round(instance.vcpu)),
        KARPENTER_AWS + "instance-memory": str(instance.memory_bytes // (1 << 20)),
    }
    match = _AWS_TYPE.match(instance.name)
    if match:
        labels[KARPENTER_AWS + "instance-category"] = match.group(1)
        labels[KARPENTER_AWS + "instance-generation"] = match.group(3)
    if instance.gpu_count:
        labels[KARPENTER_AWS + "instance-gpu-name"] = instance.gpu_sku.lower()
        labels[KARPENTER_AWS + "instance-gpu-manufacturer"] = "nvidia"
        labels[KARPENTER_AWS + "instance-gpu-count"] = str(instance.gpu_count)
        # instance-gpu-memory is EC2's exact MiB (g5: 22888); the catalog keeps whole GiB,
        # so it is not guessed.
    return labels


def written_machine_labels(instance: InstanceType) -> dict[str, str]:
    """Machine labels Gibbous writes on its own nodes."""
    return _aws_labels(instance) if instance.cloud == "aws" else {}


def machine_labels(instance: InstanceType, category: PriceCategory) -> dict[str, str]:
    """Every well-known machine label a node of this type and category carries once it
    runs (written by Gibbous, the cloud or GFD)."""
    labels = written_machine_labels(instance)
    spot = category is PriceCategory.SPOT
    if instance.cloud == "gcp":
        labels[GKE_MACHINE_FAMILY] = instance.name.split("-", 1)[0]
        labels[GKE_PROVISIONING] = "spot" if spot else "standard"
        accelerator = gke_accelerator(instance) if instance.gpu_count else ""
        if accelerator:
            labels[GKE_ACCELERATOR] = accelerator
    if instance.cloud == "azure" and instance.gpu_count:
        labels[AKS_ACCELERATOR] = "nvidia"
    if instance.gpu_count:
        labels[GFD_COUNT] = str(instance.gpu_count)
        product = _GFD_PRODUCTS.get(instance.gpu_sku)
        if product:
            labels[GFD_PRODUCT] = product
    return labels


def is_machine_key(key: str) -> bool:
    return key in MACHINE_KEYS or key.startswith(KARPENTER_AWS)


def cloud_label_note(affinity: NodeAffinity, config: Config) -> str:
    """Why a selector on a label the cloud writes finds no offer, naming the label: another
    cloud's label, or a pool setting Gibbous is configured not to make; "" otherwise."""
    asked = {r.key for term in affinity.terms for r in term}
    ours = set(CLOUD_NODE_LABELS.get(config.cloud, {})) | set(_GIBBOUS_CAPACITY_KEYS)
    notes = []
    for cloud, table in sorted(CLOUD_NODE_LABELS.items()):
        for key in sorted(asked & set(table) - ours):
            notes.append(f"{key} is a label {cloud} puts on its nodes, and this is {config.cloud}")
    if config.cloud == "gcp" and GKE_METADATA_SERVER in asked and not config.gcp.workload_identity:
        notes.append(
            f"{GKE_METADATA_SERVER} is on nodes of pools with GKE's metadata server: "
            "set gcp.workloadIdentity=true (the cluster needs Workload Identity)"
        )
    if config.cloud == "gcp" and GKE_GPU_DRIVER_VERSION in asked:
        notes.append(
            f"{GKE_GPU_DRIVER_VERSION} is on GPU nodes only, with the value of "
            f"gcp.gpuDriverVersion ({config.gcp.gpu_driver_version})"
        )
    return "".join("; " + note for note in notes)
