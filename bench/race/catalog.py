"""One catalog, two formats: Gibbous's built-in catalog as Gibbous's kwok provider loads it,
and the same types, zones and prices as Karpenter's KWOK provider reads them
(`INSTANCE_TYPES_FILE_PATH`: the format of `kwok/cloudprovider/instance_types.json`, parsed
by `ConstructInstanceTypes` in `kwok/cloudprovider/helpers.go` of sigs.k8s.io/karpenter).

Allocatable is made equal on both: Karpenter's KWOK provider subtracts a fixed kube-reserved
of 100m CPU and 10Mi memory from the `resources` it reads (`newInstanceType`), so the file
gives Gibbous's allocatable plus exactly that. A pod then fits a node of a type on one side
if and only if it fits on the other; packing differences are the autoscalers' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gibbous.catalogs import load_catalog
from gibbous.core.choice.catalog import InstanceType, node_allocatable
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config

# What newInstanceType (kwok/cloudprovider/helpers.go, v1.15.0) reserves on every type.
KARPENTER_KWOK_RESERVED_CPU_MILLIS = 100
KARPENTER_KWOK_RESERVED_MEMORY_BYTES = 10 * 1024 * 1024
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
ZONE_KEY = "topology.kubernetes.io/zone"
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
KWOK_DEFAULT_ZONE = "kwok-zone-a"


@dataclass(frozen=True)
class RaceCatalog:
    config: Config  # Gibbous's configuration as `gibbous dev-cluster up` runs it
    types: tuple[InstanceType, ...]

    def zones(self, instance: InstanceType) -> tuple[str, ...]:
        """Where a type is offered; a type the catalog gives no zone is launched by
        Gibbous's kwok provider in `kwok-zone-a` (gibbous/autoscaler/cloud/kwok.py)."""
        allowed = self.config.zones
        zones = instance.zones or (KWOK_DEFAULT_ZONE,)
        return tuple(z for z in zones if not allowed or z in allowed)

    def price(self, instance_type: str, capacity_type: str) -> float:
        """$/hour of a node by its instance-type and capacity-type labels."""
        by_name = {t.machine_type: t for t in self.types}
        instance = by_name.get(instance_type)
        if instance is None:
            raise KeyError(f"instance type {instance_type!r} is not in the race's catalog")
        category = PriceCategory(capacity_type)
        return instance.price(category, self.config.spot_price_ratio)

    def price_table(self) -> dict[tuple[str, str], float]:
        return {
            (t.machine_type, str(category)): t.price(category, self.config.spot_price_ratio)
            for t in self.types
            for category in self.categories(t)
        }

    def categories(self, instance: InstanceType) -> tuple[PriceCategory, ...]:
        if instance.spot_offered:
            return (PriceCategory.SPOT, PriceCategory.ON_DEMAND)
        return (PriceCategory.ON_DEMAND,)

    def gpu_families(self) -> list[str]:
        return sorted({karpenter_family(t.machine_type) for t in self.types if t.gpu_count})


def race_catalog(overrides: list[str] | None = None) -> RaceCatalog:
    """The built-in catalog of Gibbous's default cloud and region (the kwok provider's)."""
    config = build_config(overrides=overrides or [])
    types = load_catalog(None, config.cloud, config.effective_region)
    return RaceCatalog(config, tuple(types))


def karpenter_family(name: str) -> str:
    """The family Karpenter's KWOK provider derives (parseFamilyFromType): the name up to
    its first `.` or `-`, else its first character."""
    for index, char in enumerate(name):
        if char in ".-":
            return name[:index] if index else name[:1]
    return name[:1]


def karpenter_instance_types(catalog: RaceCatalog) -> list[dict[str, Any]]:
    """The catalog as Karpenter's KWOK provider's instance-types JSON."""
    out = []
    for instance in catalog.types:
        allocatable = node_allocatable(instance, catalog.config)
        resources = {
            "cpu": f"{allocatable.cpu_millis + KARPENTER_KWOK_RESERVED_CPU_MILLIS}m",
            "memory": str(allocatable.memory_bytes + KARPENTER_KWOK_RESERVED_MEMORY_BYTES),
            "pods": str(allocatable.pods),
        }
        if allocatable.gpus:
            resources["nvidia.com/gpu"] = str(allocatable.gpus)
        offerings = [
            {
                "Price": instance.price(category, catalog.config.spot_price_ratio),
                "Available": True,
                "Requirements": [
                    {"key": CAPACITY_TYPE_KEY, "operator": "In", "values": [str(category)]},
                    {"key": ZONE_KEY, "operator": "In", "values": [zone]},
                ],
            }
            for zone in catalog.zones(instance)
            for category in catalog.categories(instance)
        ]
        out.append(
            {
                "name": instance.machine_type,
                "offerings": offerings,
                "architecture": instance.arch,
                "operatingSystems": ["linux"],
                "resources": resources,
            }
        )
    return out
