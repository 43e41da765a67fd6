"""The NodeRestriction rule every provider follows (Kubernetes docs, "Admission
Controllers: NodeRestriction"; kubernetes/kubernetes k8s.io/kubelet/pkg/apis
`IsKubeletLabel`)."""

from __future__ import annotations

from gibbous.core.settings.kubeletlabels import after_registration, registration_labels


def test_restricted_labels_wait_for_registration() -> None:
    labels = {
        "node-role.kubernetes.io/gpu": "",
        "node-restriction.kubernetes.io/team": "a",
        "example.k8s.io/x": "1",
        "kubernetes.io/team": "ml",
        "node.kubernetes.io/pool": "p",
        "kubelet.kubernetes.io/x": "y",
        "topology.kubernetes.io/zone": "z",
        "kubernetes.io/arch": "amd64",
        "example.com/kubernetes.io": "v",
        "team": "ml",
    }
    assert registration_labels(labels) == {
        "node.kubernetes.io/pool": "p",
        "kubelet.kubernetes.io/x": "y",
        "topology.kubernetes.io/zone": "z",
        "kubernetes.io/arch": "amd64",
        "example.com/kubernetes.io": "v",
        "team": "ml",
    }
    assert after_registration(labels) == {
        "node-role.kubernetes.io/gpu",
        "node-restriction.kubernetes.io/team",
        "example.k8s.io/x",
        "kubernetes.io/team",
    }
