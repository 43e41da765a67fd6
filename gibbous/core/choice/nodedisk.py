"""The node's disk: how large Gibbous may make it on each cloud, and the ephemeral storage
kube-scheduler counts on a node with a disk of a given size.

kube-scheduler's NodeResourcesFit counts pods' `ephemeral-storage` requests against the
node's allocatable ephemeral-storage; the kubelet computes that as the root filesystem's
capacity less kube-reserved/system-reserved ephemeral-storage and the `nodefs.available`
hard eviction threshold (Kubernetes "Reserve Compute Resources for System Daemons"; its
default `nodefs.available<10%`: "Node-pressure Eviction"). So a pod asking for 800Gi needs a
disk of about 890 GiB, and the disk of a new node is sized from the pods planned onto it
(`disk_for`), between the configured size and the cloud's largest.
"""

from __future__ import annotations

from gibbous.core.settings.config import Config

GIB = 2**30

# The largest boot/root disk each cloud takes, GiB (GB where the cloud counts in GB of 2^30):
#   aws: EBS gp3 up to 16 TiB (Amazon EBS User Guide, "Amazon EBS volume types");
#   gcp: pd-balanced up to 64 TB (Compute Engine "Persistent Disk": size limits);
#   azure: AKS `osDiskSizeGB` 0-2048 (AKS REST API, ManagedClusterAgentPoolProfile);
#   oci: boot volumes 50 GB to 32 TB (OCI "Boot Volumes": custom size).
MAX_DISK_GIB = {"aws": 16384, "gcp": 65536, "azure": 2048, "oci": 32768}
# When nothing configures it, an EKS node's root volume: Karpenter's and the EKS optimized
# AL2023 AMI's 20 GiB (Karpenter EC2NodeClass blockDeviceMappings default).
AWS_DEFAULT_ROOT_GIB = 20
# amazon-eks-ami sets kubeReserved ephemeral-storage 1Gi (templates, kubelet config).
_EKS_RESERVED = 1 * GIB


def default_disk_gib(config: Config) -> int:
    """The disk a node gets when its pods need no more: the configured size."""
    if config.cloud == "gcp":
        return config.gcp.disk_size_gb
    if config.cloud == "azure":
        return config.azure.os_disk_size_gb
    if config.cloud == "oci":
        return config.oci.boot_volume_size_gb
    for mapping in config.aws.block_device_mappings:
        size = (mapping.get("Ebs") or {}).get("VolumeSize")
        if isinstance(size, int):
            return size
    return AWS_DEFAULT_ROOT_GIB


def ephemeral_allocatable(cloud: str, disk_gib: int) -> int:
    """Allocatable ephemeral-storage, bytes, of a node whose disk has `disk_gib` GiB: less
    the kubelet's 10% eviction threshold and what the cloud reserves. GKE: "min(50% of the
    boot disk, 6 GiB + 35% of the boot disk, 100 GiB)" (GKE "Plan node sizes", local
    ephemeral storage reservation); EKS: 1 GiB kube-reserved; AKS and OKE: none documented
    beyond the eviction threshold."""
    capacity = disk_gib * GIB
    reserved = capacity // 10
    if cloud == "gcp":
        reserved += min(capacity // 2, 6 * GIB + capacity * 35 // 100, 100 * GIB)
    elif cloud == "aws":
        reserved += _EKS_RESERVED
    return max(0, capacity - reserved)


def largest_ephemeral(cloud: str) -> int:
    """The most ephemeral storage a node of this cloud can offer, at its largest disk."""
    return ephemeral_allocatable(cloud, MAX_DISK_GIB.get(cloud, MAX_DISK_GIB["aws"]))


def disk_for(cloud: str, default_gib: int, needed_bytes: int) -> int:
    """The smallest disk, GiB, of at least `default_gib` whose allocatable ephemeral storage
    holds `needed_bytes` (the requests of the pods planned onto the node), capped at the
    cloud's largest (the planner never puts more on a node than that holds)."""
    largest = MAX_DISK_GIB.get(cloud, MAX_DISK_GIB["aws"])
    if needed_bytes <= ephemeral_allocatable(cloud, default_gib):
        return default_gib
    low, high = default_gib, largest
    while low < high:
        middle = (low + high) // 2
        if ephemeral_allocatable(cloud, middle) >= needed_bytes:
            high = middle
        else:
            low = middle + 1
    return low
