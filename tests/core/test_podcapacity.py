"""Pod slots a node gets from its cluster's network (AKS docs, "Configure Azure CNI
Overlay networking" and "Legacy Container Networking Interfaces"; OKE docs, "Pod
Networking")."""

from __future__ import annotations

from gibbous.core.choice.podcapacity import aks_max_pods, oci_vnics, oke_max_pods


def test_aks_max_pods_by_network_plugin() -> None:
    assert aks_max_pods("azure", "") == 30
    assert aks_max_pods("azure", "overlay") == 250
    assert aks_max_pods("Azure", "Overlay") == 250  # ARM's values are case-insensitive
    assert aks_max_pods("kubenet", "") == 110
    assert aks_max_pods("none", "") == 110
    assert aks_max_pods("azure", "", configured=64) == 64


def test_oke_max_pods_by_pod_network() -> None:
    assert oke_max_pods(("FLANNEL_OVERLAY",)) == 110
    assert oke_max_pods(()) == 110
    assert oke_max_pods(("OCI_VCN_IP_NATIVE",)) == 31
    assert oke_max_pods(("OCI_VCN_IP_NATIVE",), configured=90) == 90


def test_oke_vcn_native_max_pods_are_limited_by_the_shapes_vnics() -> None:
    """OCI "Compute Shapes": a Flex VM has 2 VNICs with 1 OCPU, else 1 per OCPU, at most
    24; VM.GPU3.1 has 6, BM.GPU4.8 64. OKE "Pod Networking": 31 pod IPs on each VNIC but
    the first. By hand: 1 OCPU -> 31; 4 OCPUs -> 3 x 31 = 93; 64 OCPUs -> 24 VNICs ->
    713, so the 110 asked for; the default stays 31 on any shape."""
    native = ("OCI_VCN_IP_NATIVE",)
    assert [oci_vnics(t) for t in ("VM.Standard.E4.Flex-1-8", "VM.Standard.E4.Flex-4-32")] == [
        2,
        4,
    ]
    assert oci_vnics("VM.Standard.E5.Flex-64-512") == 24
    assert oci_vnics("VM.GPU3.1") == 6 and oci_vnics("BM.GPU4.8") == 64
    assert oke_max_pods(native, 110, vnics=2) == 31
    assert oke_max_pods(native, 110, vnics=4) == 93
    assert oke_max_pods(native, 110, vnics=24) == 110
    assert oke_max_pods(native, 0, vnics=4) == 31
    assert oke_max_pods(("FLANNEL_OVERLAY",), 0, vnics=2) == 110
    assert oci_vnics("VM.Unknown.Shape") == 0 and oke_max_pods(native, 64, vnics=0) == 64
