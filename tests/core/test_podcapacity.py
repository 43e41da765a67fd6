"""Pod slots a node gets from its cluster's network (AKS docs, "Configure Azure CNI
Overlay networking" and "Legacy Container Networking Interfaces"; OKE docs, "Pod
Networking")."""

from __future__ import annotations

from gibbous.core.choice.podcapacity import aks_max_pods, oke_max_pods


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
