"""From a Pod object to what the planner needs: requests, class, constraints."""

from __future__ import annotations

from gibbous.core.choice.classify import Classification, classify, offerings_for
from gibbous.core.choice.selection import PodRequirement
from gibbous.core.errors import ManifestError
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.podmodel.affinity import pod_node_affinity
from gibbous.core.podmodel.constraints import parse_constraints
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    key_of,
    pod_requests,
    priority_of,
    spec,
    tolerations,
    uid_of,
)
from gibbous.core.podmodel.podschema import pod_spec_problems
from gibbous.core.podmodel.podtopology import pod_topology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

# Resources and requests the catalogs cannot supply yet, with what to tell the user.
_UNSUPPORTED_RESOURCES = (
    ("amd.com/gpu", "AMD GPUs: no AMD GPU instance type is in Gibbous's catalogs yet"),
    ("google.com/tpu", "TPUs: GKE TPU slices are not supported yet"),
    ("aws.amazon.com/neuron", "AWS Inferentia/Trainium: Neuron devices are not supported yet"),
)
KAI_GPU_FRACTION = "gpu-fraction"


def unsupported_need(pod: Pod, requests: Resources) -> str:
    """Why no node Gibbous can buy would run `pod`, for needs it recognises but cannot
    supply yet, or ""."""
    for name, _ in requests.extended:
        for resource, why in _UNSUPPORTED_RESOURCES:
            if name == resource:
                return f"requests {name}; {why}"
        if name.startswith("nvidia.com/mig-"):
            return (
                f"requests the MIG profile {name}; MIG partitions are not supported yet "
                "(request whole nvidia.com/gpu, or share GPUs with nvidiaGPUTimeSlices)"
            )
    if spec(pod).get("resourceClaims"):
        return (
            "uses Dynamic Resource Allocation (spec.resourceClaims); devices requested "
            "through DRA are not supported yet"
        )
    if KAI_GPU_FRACTION in annotations_of(pod):
        return (
            f"asks for a GPU fraction with KAI's {KAI_GPU_FRACTION} annotation, which "
            "Gibbous does not read; share GPUs with nvidiaGPUTimeSlices instead"
        )
    return ""


def describe_pod(pod: Pod, config: Config) -> tuple[PendingPod, Classification]:
    """Raise GibbousError (InvalidQuantityError, InvalidAnnotationsError, ManifestError)
    on bad input, including a field the API server would refuse (a list where it wants an
    object): reading such a field as absent would plan for a pod that cannot exist."""
    structure = pod_spec_problems(spec(pod))
    if structure:
        raise ManifestError("; ".join(structure) + " (the API server refuses this structure)")
    requests = pod_requests(pod)
    pod_annotations = annotations_of(pod)
    constraints = parse_constraints(pod_annotations)
    classification = classify(requests, pod_annotations, config)
    affinity = pod_node_affinity(pod)
    offerings = offerings_for(constraints.offerings, classification.placement, config, affinity)
    requirement = PodRequirement(
        requests=requests,
        constraints=constraints,
        offerings=offerings,
        affinity=affinity,
    )
    pending = PendingPod(
        key=key_of(pod),
        uid=uid_of(pod) or key_of(pod),
        requirement=requirement,
        placement=classification.placement,
        priority=priority_of(pod),
        tolerations=tuple(tolerations(pod)),
        topology=pod_topology(pod),
        unsupported=unsupported_need(pod, requests),
    )
    return pending, classification
