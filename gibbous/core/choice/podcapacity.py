"""How many pods a node of a pool-based cloud runs when Gibbous does not say: what the
cluster's network plugin gives it. The providers size their catalogs with it, so that
planning counts the pod slots the kubelet will register."""

from __future__ import annotations


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


def oke_max_pods(cni_types: tuple[str, ...], configured: int = 0) -> int:
    """With OCI VCN-native pod networking, `configured` (oci.maxPodsPerNode) or OKE's
    default of 31 a node (one VNIC's secondary IPs); with flannel 110 (OKE docs, "Pod
    Networking": VCN-native "maximum of 31 pods per node" by default, up to 110)."""
    if "OCI_VCN_IP_NATIVE" in cni_types:
        return configured or 31
    return 110
