"""From a Pod object to what the planner needs: requests, class, constraints."""

from __future__ import annotations

from gibbous.core.affinity import pod_node_affinity
from gibbous.core.classify import Classification, Placement, classify
from gibbous.core.config import Config
from gibbous.core.constraints import PriceCategory, parse_constraints
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


def pod_offerings(pod: Pod, placement: Placement, config: Config) -> frozenset[PriceCategory]:
    """Price categories a pod may run on: its annotation, else the class default
    (bin-pack pods follow binPackingNodePricing, others defaultInstanceOfferings)."""
    constraints = parse_constraints(annotations_of(pod))
    if constraints.offerings is not None:
        return constraints.offerings
    return (
        config.bin_pack_node_pricing
        if placement is Placement.BIN_PACK
        else config.default_offerings
    )


def describe_pod(pod: Pod, config: Config) -> tuple[PendingPod, Classification]:
    """Raise GibbousError (InvalidQuantityError, InvalidAnnotationsError) on bad input."""
    requests = pod_requests(pod)
    pod_annotations = annotations_of(pod)
    constraints = parse_constraints(pod_annotations)
    classification = classify(requests, pod_annotations, config)
    if constraints.offerings is not None:
        offerings = constraints.offerings
    elif classification.placement is Placement.BIN_PACK:
        offerings = config.bin_pack_node_pricing
    else:
        offerings = config.default_offerings
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
