"""What a cluster's DaemonSets run on a new node, so that a node is sized with room for
them before any pending pod (Karpenter's daemon overhead per NodeClaim template,
kubernetes-sigs/karpenter `pkg/controllers/provisioning/scheduling`, `getDaemonOverhead`).

A DaemonSet's pod counts on a node when the node's labels meet its nodeSelector and
required node affinity and the pod tolerates every NoSchedule/NoExecute taint the node
registers with; it counts with its requests as kube-scheduler adds them up (containers,
init containers, sidecars, pod-level requests, `overhead` when the template carries it)
and one pod slot.

A DaemonSet's pod template is described once per DaemonSet version (the autoscaler's watch
event); `daemonset_overhead` is then a sum over the described templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.affinity import NodeAffinity, pod_node_affinity
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.pods import as_map, metadata, pod_requests, spec, tolerates, tolerations
from gibbous.core.podmodel.resources import Resources, total

SPOT_TAINT = {"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}
AKS_SPOT_TAINT = {"key": keys.AKS_SCALESET_PRIORITY, "value": "spot", "effect": "NoSchedule"}
# GKE taints GPU nodes itself; OKE's GPU nodes carry the taint cluster-autoscaler's OCI
# provider models (docs/clouds/oke.md). DaemonSets such as NVIDIA's device plugin tolerate it.
GKE_GPU_TAINT = {"key": keys.NVIDIA_GPU, "value": "present", "effect": "NoSchedule"}
OKE_GPU_TAINT = {"key": keys.NVIDIA_GPU, "value": "", "effect": "NoSchedule"}

# Labels a node gets only once it exists (its zone is the cloud's pick among those
# allowed, its hostname its own): a DaemonSet selecting on them may run there, so it is
# counted (room left unused is the cheaper mistake than a node too small for its pods).
_KNOWN_AFTER_LAUNCH = frozenset({keys.ZONE, keys.ZONE_BETA, keys.HOSTNAME})


def registered_taints(instance: InstanceType, category: PriceCategory) -> list[dict[str, str]]:
    """The taints a new node of this type and category registers with: Gibbous's spot
    taint and the ones its cloud adds (AKS on spot pools, GKE and OKE on GPU nodes)."""
    taints = []
    if category is PriceCategory.SPOT:
        taints.append(SPOT_TAINT)
        if instance.cloud == "azure":
            taints.append(AKS_SPOT_TAINT)
    if instance.gpu_count and instance.cloud == "gcp":
        taints.append(GKE_GPU_TAINT)
    if instance.gpu_count and instance.cloud == "oci":
        taints.append(OKE_GPU_TAINT)
    return [dict(t) for t in taints]


@dataclass(frozen=True, slots=True)
class DaemonSetPod:
    """A DaemonSet's pod template as node sizing reads it."""

    name: str  # namespace/name of the DaemonSet
    requests: Resources
    affinity: NodeAffinity
    tolerations: tuple[Mapping[str, Any], ...]

    def runs_on(self, labels: Mapping[str, str], taints: Iterable[Mapping[str, Any]]) -> bool:
        pod_tolerations = list(self.tolerations)
        for taint in taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                pod_tolerations, taint
            ):
                return False
        if not self.affinity.terms:
            return True
        return any(
            all(r.key in _KNOWN_AFTER_LAUNCH or r.matches(labels) for r in term)
            for term in self.affinity.terms
        )


def describe_daemonset(daemonset: Mapping[str, Any]) -> DaemonSetPod | GibbousError:
    """The DaemonSet's pod template as node sizing reads it, or why it cannot be read (a
    quantity the API server would have refused)."""
    meta = metadata(daemonset)
    name = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    template = as_map(spec(daemonset).get("template"))
    pod = {"metadata": as_map(template.get("metadata")), "spec": as_map(template.get("spec"))}
    try:
        requests = pod_requests(pod)
    except GibbousError as error:
        return GibbousError(f"DaemonSet {name}: {error}")
    return DaemonSetPod(name, requests, pod_node_affinity(pod), tuple(tolerations(pod)))


def daemonset_overhead(
    labels: Mapping[str, str],
    taints: Iterable[Mapping[str, Any]],
    daemonsets: Iterable[DaemonSetPod],
) -> Resources:
    """What the DaemonSets whose pods would run on a node with these labels and taints
    request there, together."""
    node_taints = list(taints)
    return total(d.requests for d in daemonsets if d.runs_on(labels, node_taints))
