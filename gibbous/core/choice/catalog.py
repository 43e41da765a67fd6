"""Instance catalog: what each cloud sells, with its price, as plain data.

A catalog is a CSV (see `parse_catalog_csv`). Built-in catalogs ship in
`gibbous/catalogs/`; users replace them with `--catalog FILE`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gibbous.core.choice.nodedisk import largest_ephemeral
from gibbous.core.errors import CatalogError
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config
from gibbous.core.settings.options.core import CLOUDS
from gibbous.core.settings.options.overhead import NodeOverheadConfig

REQUIRED_COLUMNS = (
    "cloud",
    "region",
    "instance_type",
    "vcpu",
    "memory_gib",
    "gpu_count",
    "gpu_sku",
    "arch",
    "on_demand_usd_per_hour",
    "spot_usd_per_hour",
)
OPTIONAL_COLUMNS = ("zones", "family", "gpu_memory_gib", "max_pods", "price_date", "source")

_AZURE_SIZE = re.compile(r"^(?:Standard_|Basic_)?([A-Za-z]+)(\d+)(-\d+)?(.*)$")


@dataclass(frozen=True, slots=True)
class InstanceType:
    cloud: str
    region: str
    name: str
    family: str
    vcpu: float
    memory_bytes: int
    gpu_count: int
    gpu_sku: str  # upper-case, "" without GPUs
    gpu_memory_bytes: int
    arch: str
    on_demand_price: float
    spot_price: float | None  # None: estimated with spotPriceRatioEstimate
    zones: tuple[str, ...] = ()
    max_pods: int | None = None
    price_date: str = ""
    spot_offered: bool = True  # False: never launched as spot (e.g. spot advisor limits)

    def price(self, category: PriceCategory, spot_ratio: float) -> float:
        if category is PriceCategory.ON_DEMAND:
            return self.on_demand_price
        if self.spot_price is not None:
            return self.spot_price
        return round(self.on_demand_price * spot_ratio, 6)

    @property
    def machine_type(self) -> str:
        """What the cloud calls the machine: GCP's `n1-standard-4+t4x1` is machine type
        `n1-standard-4` with one T4 attached (the node's instance-type label says that)."""
        return self.name.split("+", 1)[0]

    @property
    def label_value(self) -> str:
        """The name as a label value (no `+` there): `n1-standard-4--t4x1`."""
        return label_value(self.name)

    @property
    def capacity(self) -> Resources:
        return Resources(
            cpu_millis=round(self.vcpu * 1000),
            memory_bytes=self.memory_bytes,
            gpus=self.gpu_count,
            pods=self.max_pods or 0,
        )


def label_value(name: str) -> str:
    return name.replace("+", "--")


def name_from_label(value: str) -> str:
    """The catalog name a `gibbous.dev/instance-type` label value stands for."""
    return value.replace("--", "+")


def family_of(cloud: str, instance_type: str) -> str:
    """The family users name in inclusion/exclusion lists (lower-case).

    aws `g4dn.xlarge` -> `g4dn`; gcp `n1-standard-4+t4x1` -> `n1`;
    azure `Standard_NC4as_T4_v3` -> `ncas_t4_v3`; oci `VM.GPU2.1` -> `vm.gpu2`.
    """
    name = instance_type.strip()
    if cloud == "aws":
        return name.split(".")[0].lower()
    if cloud == "gcp":
        return name.split("-")[0].lower()
    if cloud == "azure":
        match = _AZURE_SIZE.match(name)
        if match:
            return (match.group(1) + match.group(4)).lower()
        return name.lower()
    if cloud == "oci":
        return name.rsplit(".", 1)[0].lower() if "." in name else name.lower()
    return name.lower()


def _number(
    row: dict[str, str], column: str, source: str, line: int, *, optional: bool = False
) -> float | None:
    raw = (row.get(column) or "").strip()
    if not raw:
        if optional:
            return None
        raise CatalogError(source, line, f"column {column} is empty")
    try:
        value = float(raw)
    except ValueError:
        raise CatalogError(source, line, f"column {column}: {raw!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise CatalogError(source, line, f"column {column}: {raw!r} must be a finite number >= 0")
    return value


def parse_catalog_csv(text: str, source: str) -> list[InstanceType]:
    """Parse a catalog CSV. Bad rows raise CatalogError naming `source:line` and the reason."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogError(
            source,
            1,
            f"missing column(s) {', '.join(missing)}; header must include {','.join(REQUIRED_COLUMNS)}",
        )
    unknown = [c for c in header if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS]
    if unknown:
        raise CatalogError(source, 1, f"unknown column(s) {', '.join(unknown)}")
    out: list[InstanceType] = []
    seen: set[tuple[str, str, str]] = set()
    for row in reader:
        line = reader.line_num
        if None in row:
            raise CatalogError(source, line, "more fields than the header has columns")
        cloud = (row["cloud"] or "").strip().lower()
        if cloud not in CLOUDS:
            raise CatalogError(
                source, line, f"cloud {row['cloud']!r} is not one of {', '.join(CLOUDS)}"
            )
        region = (row["region"] or "").strip()
        name = (row["instance_type"] or "").strip()
        if not region or not name:
            raise CatalogError(source, line, "region and instance_type must not be empty")
        if (cloud, region, name) in seen:
            raise CatalogError(source, line, f"duplicate instance type {name} in {cloud}/{region}")
        seen.add((cloud, region, name))
        vcpu = _number(row, "vcpu", source, line) or 0.0
        memory_gib = _number(row, "memory_gib", source, line) or 0.0
        if vcpu <= 0 or memory_gib <= 0:
            raise CatalogError(source, line, "vcpu and memory_gib must be > 0")
        gpu_count = _number(row, "gpu_count", source, line, optional=True) or 0.0
        if gpu_count != int(gpu_count):
            raise CatalogError(source, line, f"gpu_count {gpu_count} is not a whole number")
        gpu_sku = (row["gpu_sku"] or "").strip().upper()
        if gpu_count and not gpu_sku:
            raise CatalogError(source, line, "gpu_sku is empty but gpu_count > 0")
        arch = (row["arch"] or "").strip().lower()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
        if arch not in ("amd64", "arm64"):
            raise CatalogError(source, line, f"arch {row['arch']!r} is not amd64 or arm64")
        on_demand = _number(row, "on_demand_usd_per_hour", source, line) or 0.0
        if on_demand <= 0:
            raise CatalogError(source, line, "on_demand_usd_per_hour must be > 0")
        spot = _number(row, "spot_usd_per_hour", source, line, optional=True)
        gpu_memory = _number(row, "gpu_memory_gib", source, line, optional=True) or 0.0
        max_pods = _number(row, "max_pods", source, line, optional=True)
        zones = tuple(z.strip() for z in (row.get("zones") or "").split(";") if z.strip())
        family = (row.get("family") or "").strip().lower() or family_of(cloud, name)
        out.append(
            InstanceType(
                cloud=cloud,
                region=region,
                name=name,
                family=family,
                vcpu=vcpu,
                memory_bytes=round(memory_gib * 2**30),
                gpu_count=int(gpu_count),
                gpu_sku=gpu_sku if gpu_count else "",
                gpu_memory_bytes=round(gpu_memory * 2**30),
                arch=arch,
                on_demand_price=on_demand,
                spot_price=spot,
                zones=zones,
                max_pods=int(max_pods) if max_pods else None,
                price_date=(row.get("price_date") or "").strip(),
            )
        )
    if not out:
        raise CatalogError(source, 2, "catalog has no instance types")
    return out


def select_region(types: Iterable[InstanceType], cloud: str, region: str) -> list[InstanceType]:
    return [t for t in types if t.cloud == cloud and t.region == region]


# --- allocatable ------------------------------------------------------------------

_GIB = 2**30
_MIB = 2**20


def _tiered_cpu_reservation(cores: float) -> int:
    """GKE/AKS kube-reserved CPU: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% above 4."""
    millis = 0.0
    for size, share in ((1, 0.06), (1, 0.01), (2, 0.005), (float("inf"), 0.0025)):
        used = min(cores, size)
        millis += used * 1000 * share
        cores -= used
        if cores <= 0:
            break
    return round(millis)


def _tiered_memory_reservation(memory: int) -> int:
    """GKE kube-reserved memory: 255Mi below 1Gi; else 25% of the first 4Gi, 20% of the next 4Gi,
    10% of the next 8Gi, 6% of the next 112Gi, 2% above 128Gi."""
    if memory < _GIB:
        return 255 * _MIB
    reserved = 0.0
    remaining = float(memory)
    for size, share in (
        (4 * _GIB, 0.25),
        (4 * _GIB, 0.20),
        (8 * _GIB, 0.10),
        (112 * _GIB, 0.06),
        (float("inf"), 0.02),
    ):
        used = min(remaining, size)
        reserved += used * share
        remaining -= used
        if remaining <= 0:
            break
    return round(reserved)


def allocatable(
    instance: InstanceType,
    overhead: NodeOverheadConfig,
    time_slices: int,
    daemonsets: Resources | None = None,
) -> Resources:
    """What pods can request on a node of this type: capacity minus reservations, the
    eviction threshold and what the DaemonSet pods on it request: `daemonsets` (what the
    cluster's DaemonSets run on such a node, `daemonsets.daemonset_overhead`), or when
    they are not known the configured `nodeOverhead.daemonSetCpu`/`Memory`. GPUs count
    in slices."""
    if daemonsets is None:
        daemonsets = Resources(
            cpu_millis=overhead.daemonset_cpu_millis,
            memory_bytes=overhead.daemonset_memory_bytes,
        )
    cpu = round(instance.vcpu * 1000)
    memory = instance.memory_bytes
    reserved_cpu = overhead.cpu_millis + daemonsets.cpu_millis
    reserved_memory = overhead.memory_bytes + overhead.eviction_memory_bytes
    reserved_memory += daemonsets.memory_bytes
    if overhead.reservation == "tiered":
        reserved_cpu += _tiered_cpu_reservation(instance.vcpu)
        reserved_memory += _tiered_memory_reservation(memory)
    return Resources(
        cpu_millis=max(0, cpu - reserved_cpu),
        memory_bytes=max(0, memory - reserved_memory),
        gpus=max(0, instance.gpu_count * time_slices - daemonsets.gpus),
        pods=max(0, (instance.max_pods or overhead.max_pods) - daemonsets.pods),
        # At the cloud's largest disk: a new node's disk is sized from its pods (nodedisk).
        ephemeral_bytes=max(0, largest_ephemeral(instance.cloud) - daemonsets.ephemeral_bytes),
    )


def node_allocatable(instance: InstanceType, config: Config) -> Resources:
    return allocatable(instance, config.node_overhead, config.nvidia_gpu_time_slices)
