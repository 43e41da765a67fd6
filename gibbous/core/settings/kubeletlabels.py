"""Which Node labels a kubelet may register with, one rule for every cloud.

The NodeRestriction admission plugin (kubernetes/kubernetes
plugin/pkg/admission/noderestriction; Kubernetes docs, "Admission Controllers:
NodeRestriction", and the kubelet's `--node-labels`) refuses a kubelet's Node carrying a
label under the `kubernetes.io` or `k8s.io` namespaces other than the kubelet's
well-known ones and the `kubelet.kubernetes.io` / `node.kubernetes.io` prefixes. EC2 user
data must leave them out of `--node-labels`, and a pool-based cloud (GKE, AKS, OKE) refuses
a pool carrying them; either way they go on the Node after registration.
"""

from __future__ import annotations

from collections.abc import Mapping

_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    }
)
_KUBELET_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")


def kubelet_may_set(key: str) -> bool:
    """Whether a kubelet may register its Node with label `key` under NodeRestriction."""
    prefix, _, _ = key.rpartition("/")
    restricted = prefix in ("kubernetes.io", "k8s.io") or prefix.endswith(
        (".kubernetes.io", ".k8s.io")
    )
    return not restricted or key in _KUBELET_LABELS or key.startswith(_KUBELET_PREFIXES)


def registration_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a node may carry when it registers (the rest are patched on after)."""
    return {k: v for k, v in labels.items() if kubelet_may_set(k)}


def after_registration(labels: Mapping[str, str]) -> frozenset[str]:
    """The keys of `labels` only the autoscaler may put on, once the Node exists."""
    return frozenset(k for k in labels if not kubelet_may_set(k))
