"""GCP's own catalog APIs, as catalog rows: a pure reading of their responses.

Three sources, each read page by page (the shell follows `nextPageToken`), in the REST
shapes (camelCase, as `compute_v1`'s messages print to JSON):

* Compute `machineTypes.aggregatedList` (`MachineTypeAggregatedList`): `items` by
  `zones/<zone>`, each a `machineTypes` list of `MachineType` with `name`, `guestCpus`,
  `memoryMb`, `isSharedCpu`, `architecture`, `deprecated.state` and `accelerators[]`
  (`guestAcceleratorType`, `guestAcceleratorCount`: the A2/A3/G2 machines' bundled GPUs).
* Compute `acceleratorTypes.aggregatedList` (`AcceleratorTypeAggregatedList`): the GPUs
  each zone attaches to N1 machines, `maximumCardsPerInstance` of each.
* The Cloud Billing Catalog API's `services/6F81-5844-456A/skus` (Compute Engine):
  `Sku.category.{resourceFamily, resourceGroup, usageType}`, `serviceRegions`,
  `description` and `pricingInfo[].pricingExpression.tieredRates[].unitPrice.{units,
  nanos}`.

A machine type's hourly price is composed as Compute Engine bills it and as
cluster-autoscaler's GCE price model computes it (`gce_price_model.go` `getBasePrice` +
`getAdditionalPrice`): vCPUs x the family's `Instance Core` SKU + GiB of memory x its
`Instance Ram` SKU + GPUs x the GPU's own SKU. Usage type `OnDemand` gives the on-demand
price, `Preemptible` (the `Spot Preemptible ...` SKUs) the spot price. A type is offered
when it is not deprecated, has a size, a zone of the region and a priced core and RAM.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.choice.catalog import InstanceType, family_of
from gibbous.core.choice.n1gpus import n1_gpu_fits
from gibbous.core.errors import CatalogError

SOURCE = "gcp-api"
GIB_MIB = 1024
GIB = 1024**3
# `accelerators[].guestAcceleratorType` / `acceleratorTypes` name -> the catalog's SKU and
# one GPU's memory in GiB (NVIDIA's data sheets). GKE's `gke-accelerator` label values.
ACCELERATORS: dict[str, tuple[str, int]] = {
    "nvidia-tesla-t4": ("T4", 16),
    "nvidia-l4": ("L4", 24),
    "nvidia-tesla-v100": ("V100", 16),
    "nvidia-tesla-p100": ("P100", 16),
    "nvidia-tesla-p4": ("P4", 8),
    "nvidia-tesla-k80": ("K80", 12),
    "nvidia-tesla-a100": ("A100", 40),
    "nvidia-a100-80gb": ("A100", 80),
    "nvidia-h100-80gb": ("H100", 80),
    "nvidia-h100-mega-80gb": ("H100", 80),
    "nvidia-h200-141gb": ("H200", 141),
    "nvidia-b200": ("B200", 180),
}
# The GPUs N1 machines attach (Compute Engine's "GPU machine types": N1 with T4, P4, V100,
# P100; K80 is end of life, offered only while `acceleratorTypes` still lists it). The
# others in `acceleratorTypes` come bundled in A2/A3/G2 types.
N1_ACCELERATORS = frozenset(
    {
        "nvidia-tesla-t4",
        "nvidia-tesla-p4",
        "nvidia-tesla-v100",
        "nvidia-tesla-p100",
        "nvidia-tesla-k80",
    }
)
# GPU SKU descriptions ("Nvidia Tesla A100 80GB GPU running in Americas") whose words are
# not the accelerator type's name (a guess from the SKUs' naming; docs/clouds/gke.md).
_GPU_DESCRIPTIONS = {
    "nvidia-tesla-a100-80gb": "nvidia-a100-80gb",
    "nvidia-h100-80gb-mega": "nvidia-h100-mega-80gb",
    "nvidia-h100-mega-80gb": "nvidia-h100-mega-80gb",
    "nvidia-h200": "nvidia-h200-141gb",
}
# Core and RAM SKUs: "N1 Predefined Instance Core running in Americas", "N2D AMD Instance
# Ram running in ...", "T2A Arm Instance Core ...", "Compute optimized Core ..." (C2).
_MACHINE_SKU = re.compile(
    r"^(?:spot preemptible |preemptible )?(?P<family>[a-z0-9]+|compute optimized|"
    r"memory-optimized)(?: predefined| amd| arm| intel)?(?: instance)? (?P<part>core|ram)"
    r" running in "
)
_FAMILY_ALIASES = {"compute optimized": "c2", "memory-optimized": "m1"}
_GPU_SKU = re.compile(
    r"^(?:spot preemptible |preemptible )?(?P<gpu>nvidia [a-z0-9 ]+?) gpu running in "
)
# Shared-core E2 machines bill a fraction of their vCPUs (Compute Engine pricing page,
# "E2 shared-core machine types": e2-micro 0.25, e2-small 0.5, e2-medium 1 vCPU).
SHARED_CORE_VCPUS = {"e2-micro": 0.25, "e2-small": 0.5, "e2-medium": 1.0}
_ARCHES = {"X86_64": "amd64", "ARM64": "arm64", "": "amd64"}
_ARM_FAMILIES = ("t2a", "c4a", "n4a")


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One `MachineType`, what the catalog needs of it, with the zones listing it."""

    name: str
    vcpu: int
    memory_mib: int
    arch: str
    accelerator: str  # bundled GPU's accelerator type ("" none)
    accelerator_count: int
    shared_cpu: bool
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rates:
    """$/hr rates of one usage type: per vCPU and per GiB by family, per GPU by type."""

    core: Mapping[str, float]
    ram: Mapping[str, float]
    gpu: Mapping[str, float]


def _in_region(zone: str, region: str) -> bool:
    return zone.rsplit("-", 1)[0] == region


def _zone_of(key: str, item: Mapping[str, Any]) -> str:
    zone = str(item.get("zone") or key)
    return zone.rstrip("/").rsplit("/", 1)[-1]


def parse_machine_types(pages: Iterable[Mapping[str, Any]], region: str) -> dict[str, MachineSpec]:
    """`machineTypes.aggregatedList` pages: the region's machine types by name (deprecated
    and sizeless ones left out), each with the zones listing it."""
    found: dict[str, MachineSpec] = {}
    zones: dict[str, set[str]] = {}
    for page in pages:
        for key, scoped in _items(page).items():
            for machine in _list(scoped, "machineTypes"):
                zone = _zone_of(str(key), machine)
                spec = _machine(machine, zone)
                if spec is None or not _in_region(zone, region):
                    continue
                found.setdefault(spec.name, spec)
                zones.setdefault(spec.name, set()).add(zone)
    return {
        name: MachineSpec(**{**_fields(spec), "zones": tuple(sorted(zones[name]))})
        for name, spec in found.items()
    }


def _fields(spec: MachineSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in MachineSpec.__slots__}


def _machine(machine: Mapping[str, Any], zone: str) -> MachineSpec | None:
    name = str(machine.get("name") or "")
    vcpu = int(machine.get("guestCpus") or 0)
    memory = int(machine.get("memoryMb") or 0)
    state = str((machine.get("deprecated") or {}).get("state") or "ACTIVE")
    if not name or vcpu <= 0 or memory <= 0 or state != "ACTIVE":
        return None
    accelerators = [a for a in machine.get("accelerators") or [] if a.get("guestAcceleratorCount")]
    first = accelerators[0] if accelerators else {}
    arch = _ARCHES.get(str(machine.get("architecture") or ""), "")
    if name.split("-", 1)[0] in _ARM_FAMILIES:
        arch = "arm64"
    if not arch:
        return None
    return MachineSpec(
        name=name,
        vcpu=vcpu,
        memory_mib=memory,
        arch=arch,
        accelerator=str(first.get("guestAcceleratorType") or ""),
        accelerator_count=int(first.get("guestAcceleratorCount") or 0),
        shared_cpu=bool(machine.get("isSharedCpu")),
        zones=(zone,),
    )


def parse_accelerator_types(
    pages: Iterable[Mapping[str, Any]], region: str
) -> dict[str, dict[str, int]]:
    """`acceleratorTypes.aggregatedList` pages: for each attachable GPU (not a bundled
    one), the region's zones offering it and `maximumCardsPerInstance` there."""
    found: dict[str, dict[str, int]] = {}
    for page in pages:
        for key, scoped in _items(page).items():
            for accelerator in _list(scoped, "acceleratorTypes"):
                name = str(accelerator.get("name") or "")
                zone = _zone_of(str(key), accelerator)
                cards = int(accelerator.get("maximumCardsPerInstance") or 0)
                state = str((accelerator.get("deprecated") or {}).get("state") or "ACTIVE")
                if name and cards > 0 and state == "ACTIVE" and _in_region(zone, region):
                    found.setdefault(name, {})[zone] = cards
    return found


def unit_price(sku: Mapping[str, Any]) -> float | None:
    """The SKU's $ per unit: its first pricing's highest tier (the rate past any free
    tier), `units` + `nanos` / 1e9."""
    for pricing in sku.get("pricingInfo") or []:
        rates = (pricing.get("pricingExpression") or {}).get("tieredRates") or []
        if not rates:
            continue
        price = rates[-1].get("unitPrice") or {}
        if str(price.get("currencyCode") or "USD") != "USD":
            return None
        try:
            usd = int(price.get("units") or 0) + int(price.get("nanos") or 0) / 1e9
        except (TypeError, ValueError):
            return None
        return usd if math.isfinite(usd) and usd >= 0 else None
    return None


def parse_skus(pages: Iterable[Mapping[str, Any]], region: str) -> dict[str, Rates]:
    """The Billing Catalog's Compute Engine SKUs of `region`: rates by usage type
    (`OnDemand`, `Preemptible`). Commitments, custom, sole-tenant, extended-memory and
    workstation SKUs are left out."""
    rates: dict[str, tuple[dict[str, float], dict[str, float], dict[str, float]]] = {}
    for page in pages:
        for sku in _list(page, "skus"):
            category = sku.get("category") or {}
            usage = str(category.get("usageType") or "")
            if usage not in ("OnDemand", "Preemptible"):
                continue
            if region not in (sku.get("serviceRegions") or []):
                continue
            if category.get("resourceFamily") != "Compute":
                continue
            description = " ".join(str(sku.get("description") or "").lower().split())
            if any(
                w in description
                for w in ("custom", "sole tenancy", "extended", "workstation", "commitment")
            ):
                continue
            price = unit_price(sku)
            if price is None:
                continue
            core, ram, gpu = rates.setdefault(usage, ({}, {}, {}))
            machine = _MACHINE_SKU.match(description)
            if machine is not None:
                family = _FAMILY_ALIASES.get(machine["family"], machine["family"])
                (core if machine["part"] == "core" else ram).setdefault(family, price)
                continue
            card = _GPU_SKU.match(description)
            if card is not None:
                name = card["gpu"].replace(" ", "-")
                gpu.setdefault(_GPU_DESCRIPTIONS.get(name, name), price)
    return {usage: Rates(*found) for usage, found in rates.items()}


def machine_price(spec: MachineSpec, rates: Rates | None) -> float | None:
    """vCPUs x core + GiB x RAM (+ bundled GPUs x the GPU's rate), None when unpriced."""
    if rates is None:
        return None
    family = spec.name.split("-", 1)[0]
    core, ram = rates.core.get(family), rates.ram.get(family)
    if core is None or ram is None:
        return None
    vcpus = SHARED_CORE_VCPUS.get(spec.name, float(spec.vcpu)) if spec.shared_cpu else spec.vcpu
    if spec.shared_cpu and spec.name not in SHARED_CORE_VCPUS:
        return None  # f1-micro and g1-small are billed by SKUs of their own
    price = vcpus * core + spec.memory_mib / GIB_MIB * ram
    if spec.accelerator:
        per_gpu = rates.gpu.get(spec.accelerator)
        if per_gpu is None:
            return None
        price += spec.accelerator_count * per_gpu
    return price


def gpu_counts(max_cards: int) -> list[int]:
    """The counts an N1 machine attaches: 1, 2, 4, 8 up to the zone's maximum (Compute
    Engine's GPU docs: N1 GPUs attach in these counts)."""
    return [n for n in (1, 2, 4, 8) if n <= max_cards]


def live_catalog(
    region: str,
    *,
    machines: Mapping[str, MachineSpec],
    accelerators: Mapping[str, Mapping[str, int]],
    rates: Mapping[str, Rates],
    date: str,
) -> list[InstanceType]:
    """The region's catalog: every priced machine type, and every N1 machine with each
    GPU its zones attach, in the counts its size allows (Compute Engine's limits per GPU
    count, n1gpus.py), named `n1-standard-4+t4x1` as the built-in catalog names them."""
    on_demand, spot = rates.get("OnDemand"), rates.get("Preemptible")
    rows = []
    for name in sorted(machines):
        spec = machines[name]
        price = machine_price(spec, on_demand)
        if (
            price is None
            or price <= 0
            or (spec.accelerator and spec.accelerator not in ACCELERATORS)
        ):
            continue
        spot_price = machine_price(spec, spot)
        rows.append(
            _row(
                region,
                spec=spec,
                accelerator=spec.accelerator,
                count=spec.accelerator_count,
                price=price,
                spot_price=spot_price,
                zones=spec.zones,
                date=date,
            )
        )
        if not name.startswith("n1-") or spec.shared_cpu:
            continue
        for accelerator in sorted(accelerators):
            if accelerator not in N1_ACCELERATORS:
                continue
            per_gpu = on_demand.gpu.get(accelerator) if on_demand else None
            if per_gpu is None:
                continue
            spot_gpu = spot.gpu.get(accelerator) if spot else None
            by_zone = accelerators[accelerator]
            sku = ACCELERATORS[accelerator][0]
            gib = spec.memory_mib / GIB_MIB
            for count in gpu_counts(max(by_zone.values(), default=0)):
                # Zones attaching this many, where the machine is within Compute Engine's
                # vCPU and memory limits for them (n1gpus.py).
                zones = tuple(
                    z
                    for z in spec.zones
                    if by_zone.get(z, 0) >= count and n1_gpu_fits(sku, count, spec.vcpu, gib, z)
                )
                if not zones:
                    continue
                rows.append(
                    _row(
                        region,
                        spec=spec,
                        accelerator=accelerator,
                        count=count,
                        price=price + count * per_gpu,
                        spot_price=None
                        if spot_price is None or spot_gpu is None
                        else spot_price + count * spot_gpu,
                        zones=zones,
                        date=date,
                    )
                )
    return rows


def _row(
    region: str,
    *,
    spec: MachineSpec,
    accelerator: str,
    count: int,
    price: float,
    spot_price: float | None,
    zones: tuple[str, ...],
    date: str,
) -> InstanceType:
    sku, gib = ACCELERATORS.get(accelerator, ("", 0))
    attached = bool(accelerator) and not spec.accelerator
    name = f"{spec.name}+{sku.lower()}x{count}" if attached else spec.name
    return InstanceType(
        cloud="gcp",
        region=region,
        name=name,
        family=family_of("gcp", name),
        vcpu=float(spec.vcpu),
        memory_bytes=spec.memory_mib * GIB // GIB_MIB,
        gpu_count=count if accelerator else 0,
        gpu_sku=sku,
        gpu_memory_bytes=count * gib * GIB if accelerator else 0,
        arch=spec.arch,
        on_demand_price=round(price, 6),
        spot_price=None if spot_price is None else round(spot_price, 6),
        zones=zones,
        max_pods=None,
        price_date=date,
        spot_offered=spot_price is not None,
    )


def _items(page: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(page, Mapping):
        raise CatalogError(SOURCE, 0, "a page is not an object")
    found = page.get("items") or {}
    if not isinstance(found, Mapping):
        raise CatalogError(SOURCE, 0, "items is not a map of zones")
    return found


def _list(page: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The page's `key` list, its entries that are objects (a stray value is skipped)."""
    if not isinstance(page, Mapping):
        raise CatalogError(SOURCE, 0, "a page or scope is not an object")
    found = page.get(key) or []
    if not isinstance(found, list):
        raise CatalogError(SOURCE, 0, f"{key} is not a list")
    return [entry for entry in found if isinstance(entry, Mapping)]
