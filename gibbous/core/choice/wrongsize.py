"""Wrong-size answers: the cheapest type that fits a node's pods is far larger than they
are, in a dimension they did not ask for (a GPU machine for pods that ask no GPU, bare
metal for a small pod). Gibbous still launches it, since it is the cheapest the catalog
knows, but says so: the usual cause is a catalog without a fitting shape.

Far larger, with the pods' requests summed over the node against the type's catalog size:

- GPUs: the type has GPUs and no pod asks for one; or the pods ask for GPUs and the type
  has at least `FAR_FACTOR` times as many.
- vCPU, memory (only when no pod asks for a GPU: a GPU machine's vCPU and memory come
  with its GPU count): the type has at least `FAR_FACTOR` times the pods' total there,
  and at least `SURPLUS_VCPU` vCPU / `SURPLUS_MEMORY_BYTES` more than it. The surplus floor
  keeps quiet the ordinary effect of fixed shapes (a 250m pod on a 2-vCPU machine is 8x
  in vCPU and costs cents) and fires on the machines whose unused part is itself a large
  machine.

Pods that name their type themselves (an instance-type pattern, GPU SKUs or families in
their annotations, node affinity on the type, family or GPU labels) asked for it: no
warning. Bare metal is said in the warning (see `is_bare_metal`). The thresholds and why
are in docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.selection import PodRequirement
from gibbous.core.grammar.quantity import format_cpu, format_gib

FAR_FACTOR = 4
SURPLUS_VCPU = 32
SURPLUS_MEMORY_BYTES = 256 * 2**30

# Node labels whose requirement names the type (or its GPUs) a pod wants.
TYPE_NAMING_KEYS = (
    keys.INSTANCE_TYPE,
    keys.INSTANCE_TYPE_BETA,
    keys.CATALOG_TYPE,
    keys.INSTANCE_FAMILY,
    keys.GPU_SKU,
    keys.GPU_COUNT,
)


@dataclass(frozen=True)
class Excess:
    """One dimension in which a type is far larger than its pods."""

    resource: str  # "nvidia.com/gpu" | "cpu" | "memory"
    capacity: float  # GPUs, vCPU, or bytes
    requested: float  # the pods' total in the same unit

    def describe(self, instance: InstanceType) -> str:
        if self.resource == keys.NVIDIA_GPU:
            sku = f" {instance.gpu_sku}" if instance.gpu_sku else ""
            gpus = f"{self.capacity:g}{sku} GPU(s)"
            if not self.requested:
                return f"{gpus} though no pod asks for a GPU"
            return f"{gpus} for {self.requested:g} requested"
        if self.resource == "cpu":
            asked = format_cpu(round(self.requested * 1000))
            return f"{self.capacity:g} vCPU for {asked} CPU requested"
        have, asked = format_gib(int(self.capacity)), format_gib(int(self.requested))
        return f"{have} memory for {asked} requested"


@dataclass(frozen=True)
class WrongSize:
    """What is far larger on a node than its pods ask for."""

    instance: InstanceType
    bare_metal: bool
    excess: tuple[Excess, ...]

    def describe(self) -> str:
        """`BM.GPU4.8 (bare metal) is far larger than its pods ask: 8 A100 GPU(s) though
        no pod asks for a GPU; 128 vCPU for 4 CPU requested`"""
        kind = " (bare metal)" if self.bare_metal else ""
        parts = "; ".join(excess.describe(self.instance) for excess in self.excess)
        return f"{self.instance.name}{kind} is far larger than its pods ask: {parts}"


def is_bare_metal(instance: InstanceType) -> bool:
    """Bare metal by the clouds' own naming: OCI shapes `BM.*`, AWS sizes `metal` and
    `metal-<n>xl` (`m5.metal`, `m7i.metal-24xl`), GCP machine types ending `-metal`
    (`c3-standard-192-metal`). Azure sells no bare-metal VM sizes."""
    name = instance.machine_type
    if instance.cloud == "oci":
        return name.startswith("BM.")
    if instance.cloud == "aws":
        return name.partition(".")[2].startswith("metal")
    if instance.cloud == "gcp":
        return name.endswith("-metal")
    return False


def _named_type(requirement: PodRequirement) -> bool:
    constraints = requirement.constraints
    if (
        constraints.type_pattern is not None
        or constraints.gpu_skus is not None
        or constraints.families_included is not None
    ):
        return True
    return any(requirement.affinity.allowed_values(key) is not None for key in TYPE_NAMING_KEYS)


def wrong_size(instance: InstanceType, pods: Iterable[PodRequirement]) -> WrongSize | None:
    """How `instance` is far larger than the `pods` planned onto it ask, or None."""
    requirements = list(pods)
    if any(_named_type(requirement) for requirement in requirements):
        return None
    gpus = sum(r.requests.gpus for r in requirements)
    excess: list[Excess] = []
    if gpus == 0:
        if instance.gpu_count > 0:
            excess.append(Excess(keys.NVIDIA_GPU, instance.gpu_count, 0))
        vcpu = sum(r.requests.cpu_millis for r in requirements) / 1000
        if _far(instance.vcpu, vcpu, SURPLUS_VCPU):
            excess.append(Excess("cpu", instance.vcpu, vcpu))
        memory = sum(r.requests.memory_bytes for r in requirements)
        if _far(instance.memory_bytes, memory, SURPLUS_MEMORY_BYTES):
            excess.append(Excess("memory", instance.memory_bytes, memory))
    elif instance.gpu_count >= FAR_FACTOR * gpus:
        excess.append(Excess(keys.NVIDIA_GPU, instance.gpu_count, gpus))
    if not excess:
        return None
    return WrongSize(instance, is_bare_metal(instance), tuple(excess))


def _far(capacity: float, requested: float, surplus: float) -> bool:
    return capacity >= FAR_FACTOR * requested and capacity - requested >= surplus
