"""What the validating webhook refuses: managed pods whose Gibbous/Luna
annotations or requests cannot be understood, and pods that ask for something
that can never be satisfied. Messages name the annotation, the value and the
accepted form, because `kubectl` shows them to a person as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gibbous.core import keys
from gibbous.core.admission.mutation import is_managed
from gibbous.core.errors import GibbousError, InvalidAnnotationsError, as_json
from gibbous.core.podmodel.affinity import NodeAffinity, pod_node_affinity
from gibbous.core.podmodel.constraints import PriceCategory, parse_constraints
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    metadata,
    pod_requests,
    quantity_problems,
    spec,
)
from gibbous.core.podmodel.podschema import pod_spec_problems
from gibbous.core.settings.config import Config

# Labels a node of each price category carries (ours and other provisioners').
_CAPACITY_KEYS = (
    keys.CAPACITY_TYPE,
    keys.KARPENTER_CAPACITY_TYPE,
    keys.EKS_CAPACITY_TYPE,
    keys.GKE_SPOT,
    keys.AKS_SCALESET_PRIORITY,
)
_CAPACITY_LABELS = {
    PriceCategory.SPOT: {
        keys.CAPACITY_TYPE: "spot",
        keys.KARPENTER_CAPACITY_TYPE: "spot",
        keys.EKS_CAPACITY_TYPE: "SPOT",
        keys.GKE_SPOT: "true",
        keys.AKS_SCALESET_PRIORITY: "spot",
    },
    PriceCategory.ON_DEMAND: {
        keys.CAPACITY_TYPE: "on-demand",
        keys.KARPENTER_CAPACITY_TYPE: "on-demand",
        keys.EKS_CAPACITY_TYPE: "ON_DEMAND",
    },
}


def _capacity_affinity(affinity: NodeAffinity) -> NodeAffinity:
    """Only the requirements about price category (other keys are judged elsewhere)."""
    return NodeAffinity(
        tuple(tuple(r for r in term if r.key in _CAPACITY_KEYS) for term in affinity.terms)
    )


# A denial lists this many problems, then counts the rest: kubectl shows the message to a
# person, and a pod with a thousand bad quantities must not make a megabyte of it.
MAX_LISTED_PROBLEMS = 10


def denial_message(problems: list[str]) -> str:
    """One message naming every problem, up to MAX_LISTED_PROBLEMS of them."""
    listed = problems[:MAX_LISTED_PROBLEMS]
    rest = len(problems) - len(listed)
    more = f"; and {rest} more problem{'s' if rest > 1 else ''}" if rest else ""
    return "gibbous: " + "; ".join(listed) + more


def validate_pod(pod: Pod, *, namespace: str, config: Config) -> list[str]:
    """Problems with a managed pod; empty when it is acceptable (or not ours)."""
    managed, _ = is_managed(pod, namespace, config)
    if not managed:
        return []
    problems: list[str] = pod_spec_problems(spec(pod))
    constraints = None
    try:
        constraints = parse_constraints(annotations_of(pod))
    except InvalidAnnotationsError as error:
        problems.extend(str(p) for p in error.problems)
    requests = None
    unreadable = quantity_problems(pod)
    problems.extend(str(p) for p in unreadable)
    if not unreadable:
        try:
            requests = pod_requests(pod)
        except GibbousError as error:
            problems.append(str(error))

    if constraints is not None and constraints.offerings is not None:
        capacity = _capacity_affinity(pod_node_affinity(pod))
        if capacity.terms and not any(
            capacity.matches(_CAPACITY_LABELS[c]) for c in constraints.offerings
        ):
            wanted = ",".join(sorted(constraints.offerings))
            problems.append(
                f"annotation {keys.INSTANCE_OFFERINGS}={as_json(wanted)} contradicts the pod's node selector or "
                f"required node affinity, which admits no {wanted} node; remove one of them"
            )
    if constraints is not None and constraints.max_gpus is not None and requests is not None:
        physical_needed = -(-requests.gpus // config.nvidia_gpu_time_slices)
        if physical_needed > constraints.max_gpus:
            problems.append(
                f"annotation {keys.INSTANCE_MAX_GPUS}={constraints.max_gpus} is below the "
                f"{requests.gpus} nvidia.com/gpu the pod requests"
            )
    problems.extend(_gke_time_sharing_problems(pod))
    return problems


_CHECKED_KEYS = (*keys.NODE_CONSTRAINT_ANNOTATIONS, keys.DO_NOT_EVICT)


def validate_update(
    pod: Pod, old_annotations: Mapping[str, Any], *, namespace: str, config: Config
) -> list[str]:
    """Problems an UPDATE causes: only the Gibbous/Luna annotations it changes are judged.
    A pod admitted with a bad annotation while the webhook was down (failurePolicy
    Ignore) can still be labelled, released from its gate or updated otherwise; what was
    already there is not this update's doing."""
    annotations = annotations_of(pod)
    changed = [k for k in _CHECKED_KEYS if annotations.get(k) != old_annotations.get(k)]
    if not changed:
        return []
    unchanged = frozenset(_CHECKED_KEYS) - frozenset(changed)
    judged = {k: v for k, v in annotations.items() if k not in unchanged}
    view = {**pod, "metadata": {**metadata(pod), "annotations": judged}}
    return validate_pod(view, namespace=namespace, config=config)


def _gke_time_sharing_problems(pod: Pod) -> list[str]:
    selector = spec(pod).get("nodeSelector")
    if (
        not isinstance(selector, Mapping)
        or selector.get(keys.GKE_GPU_SHARING_STRATEGY) != "time-sharing"
    ):
        return []
    out = []
    containers: list[Any] = list(spec(pod).get("containers") or []) + list(
        spec(pod).get("initContainers") or []
    )
    for container in containers:
        if not isinstance(container, Mapping):
            continue
        resources = (
            container.get("resources") if isinstance(container.get("resources"), Mapping) else {}
        )
        for section in ("limits", "requests"):
            values = resources.get(section) if isinstance(resources, Mapping) else None
            if isinstance(values, Mapping) and str(values.get(keys.NVIDIA_GPU, "0")) not in (
                "0",
                "1",
            ):
                out.append(
                    f"container {as_json(container.get('name', '?'))} asks for "
                    f"{as_json(values.get(keys.NVIDIA_GPU))} nvidia.com/gpu "
                    f"on a GKE time-shared GPU node ({keys.GKE_GPU_SHARING_STRATEGY}=time-sharing); "
                    "time-shared GPUs allow at most 1 per container"
                )
                break
    return out
