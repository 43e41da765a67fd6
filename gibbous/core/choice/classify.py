"""Bin-pack or bin-select, Luna's two placement classes.

A pod is bin-select (it gets a node of its own, right-sized and cheapest) when
  * bin-packing is disabled, or
  * it requests at least `binSelectPodCpuThreshold` CPU, or at least
    `binSelectPodMemoryThreshold` memory, or at least `binSelectPodGPUThreshold`
    GPUs (slices) -- a threshold of 0 turns that test off, or
  * it carries a node-constraint annotation (`node.elotl.co/instance-*`).
Every other pod is bin-pack: packed with others onto nodes of the configured
bin-pack shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gibbous.core import keys
from gibbous.core.choice.machinelabels import selected_categories
from gibbous.core.grammar.quantity import format_bytes, format_cpu
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.constraints import PriceCategory, has_node_constraint_annotations
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config


class Placement(StrEnum):
    BIN_PACK = keys.PLACEMENT_BIN_PACK
    BIN_SELECT = keys.PLACEMENT_BIN_SELECT


@dataclass(frozen=True, slots=True)
class Classification:
    placement: Placement
    reason: str


def offerings_for(
    declared: frozenset[PriceCategory] | None,
    placement: Placement | None,
    config: Config,
    affinity: NodeAffinity | None = None,
) -> frozenset[PriceCategory]:
    """The price categories a pod may run on: its instance-offerings annotation, else the
    categories its node selector or affinity picks with a capacity label (GKE's
    `cloud.google.com/gke-spot`, Karpenter's `karpenter.sh/capacity-type`, ...), else the
    default of its class (bin-pack pods follow binPackingNodePricing, since they share the
    bin-pack nodes; other pods defaultInstanceOfferings)."""
    if declared is not None:
        return declared
    selected = selected_categories(affinity, config.cloud) if affinity is not None else None
    if selected is not None:
        return selected
    return (
        config.bin_pack_node_pricing
        if placement is Placement.BIN_PACK
        else config.default_offerings
    )


def classify(requests: Resources, annotations: Mapping[str, str], config: Config) -> Classification:
    if not config.bin_packing_enabled:
        return Classification(Placement.BIN_SELECT, "bin-packing is disabled")
    cpu = config.bin_select_cpu_millis
    if cpu and requests.cpu_millis >= cpu:
        return Classification(
            Placement.BIN_SELECT,
            f"cpu request {format_cpu(requests.cpu_millis)} >= binSelectPodCpuThreshold {format_cpu(cpu)}",
        )
    memory = config.bin_select_memory_bytes
    if memory and requests.memory_bytes >= memory:
        return Classification(
            Placement.BIN_SELECT,
            f"memory request {format_bytes(requests.memory_bytes)} >= "
            f"binSelectPodMemoryThreshold {format_bytes(memory)}",
        )
    gpus = config.bin_select_gpus
    if gpus and requests.gpus >= gpus:
        return Classification(
            Placement.BIN_SELECT,
            f"nvidia.com/gpu request {requests.gpus} >= binSelectPodGPUThreshold {gpus}",
        )
    if has_node_constraint_annotations(annotations):
        present = next(k for k in keys.NODE_CONSTRAINT_ANNOTATIONS if k in annotations)
        return Classification(Placement.BIN_SELECT, f"node-constraint annotation {present}")
    return _BELOW_THRESHOLDS


_BELOW_THRESHOLDS = Classification(Placement.BIN_PACK, "below every bin-select threshold")
