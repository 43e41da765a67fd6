"""From a Pod object to what the planner needs: requests, class, constraints."""

from __future__ import annotations

from gibbous.core.affinity import pod_node_affinity
from gibbous.core.classify import Classification, classify, offerings_for
from gibbous.core.config import Config
from gibbous.core.constraints import parse_constraints
from gibbous.core.packing import PendingPod
from gibbous.core.pods import (
    Pod,
    annotations_of,
    key_of,
    pod_requests,
    priority_of,
    tolerations,
    uid_of,
)
from gibbous.core.selection import PodRequirement


def describe_pod(pod: Pod, config: Config) -> tuple[PendingPod, Classification]:
    """Raise GibbousError (InvalidQuantityError, InvalidAnnotationsError) on bad input."""
    requests = pod_requests(pod)
    pod_annotations = annotations_of(pod)
    constraints = parse_constraints(pod_annotations)
    classification = classify(requests, pod_annotations, config)
    offerings = offerings_for(constraints.offerings, classification.placement, config)
    requirement = PodRequirement(
        requests=requests,
        constraints=constraints,
        offerings=offerings,
        affinity=pod_node_affinity(pod),
    )
    pending = PendingPod(
        key=key_of(pod),
        uid=uid_of(pod) or key_of(pod),
        requirement=requirement,
        placement=classification.placement,
        priority=priority_of(pod),
        tolerations=tuple(tolerations(pod)),
    )
    return pending, classification
