"""How many pods a node of a pool-based cloud runs when Gibbous does not say: what the
cluster's network plugin gives it. The providers size their catalogs with it, so that
planning counts the pod slots the kubelet will register."""

from __future__ import annotations

import re


def aks_max_pods(network_plugin: str, network_plugin_mode: str, configured: int = 0) -> int:
    """`configured` (azure.maxPods) when set; else AKS's default for a pool created without
    `maxPods`: 250 with Azure CNI Overlay, 30 with Azure CNI on the node subnet, 110 with
    kubenet or a CNI of the user's own (AKS docs, "Configure Azure CNI Overlay
    networking", "Legacy Container Networking Interfaces": maximum pods per node)."""
    if configured:
        return configured
    if network_plugin.lower() == "azure":
        return 250 if network_plugin_mode.lower() == "overlay" else 30
    return 110


# OCI's "Compute Shapes" page, Max VNICs Total (Linux), for the fixed shapes of the catalog;
# a Flex VM has 2 VNICs with 1 OCPU, else 1 per OCPU, at most 24 (VM.Optimized3.Flex: 2 per
# OCPU). OKE's VCN-native pod networking gives pods 31 secondary IPs of each VNIC but the
# first, which is the node's ("Pod Networking": node shapes and number of pods).
OCI_SHAPE_VNICS = {
    "BM.GPU.A10.4": 256,
    "BM.GPU4.8": 64,
    "VM.GPU.A10.1": 15,
    "VM.GPU.A10.2": 24,
    "VM.GPU2.1": 12,
    "VM.GPU3.1": 6,
    "VM.GPU3.2": 12,
    "VM.GPU3.4": 24,
}
OKE_PODS_PER_VNIC = 31
_FLEX = re.compile(r"(.+\.Flex)-(\d+(?:\.\d+)?)-\d+(?:\.\d+)?")


def oci_vnics(instance_type: str) -> int:
    """The VNICs a node of a catalog type (`VM.Standard.E4.Flex-4-32`: shape, OCPUs,
    memory) can attach; 0 when not known."""
    flex = _FLEX.fullmatch(instance_type)
    if flex is None:
        return OCI_SHAPE_VNICS.get(instance_type, 0)
    ocpus = float(flex.group(2))
    if flex.group(1) == "VM.Optimized3.Flex":
        return min(24, int(2 * ocpus))
    return min(24, max(2, int(ocpus)))


def oke_max_pods(cni_types: tuple[str, ...], configured: int = 0, vnics: int = 0) -> int:
    """With OCI VCN-native pod networking, `configured` (oci.maxPodsPerNode) or OKE's
    default of 31 a node, limited by the pod IPs of the shape's VNICs, (VNICs - 1) x 31
    when `vnics` is known; with flannel 110 (OKE docs, "Pod Networking": VCN-native
    "maximum of 31 pods per node" by default, up to 110; the SDK's
    `OciVcnIpNativeNodePoolPodNetworkOptionDetails.maxPodsPerNode` "will be limited by the
    number of VNICs attachable to the node pool shape")."""
    if "OCI_VCN_IP_NATIVE" in cni_types:
        pods = configured or 31
        return min(pods, (vnics - 1) * OKE_PODS_PER_VNIC) if vnics >= 2 else pods
    return 110
