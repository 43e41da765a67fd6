"""The emulated project's catalog APIs, answered from the built-in catalog of its region:
Compute Engine's `machineTypes.aggregatedList` and `acceleratorTypes.aggregatedList`, and
the Cloud Billing Catalog API's `services/6F81-5844-456A/skus` (docs/clouds/gke.md cites
each shape), paged with `maxResults`/`pageSize` and a page token as Google pages them.

The built-in catalog has a price per machine type; Compute Engine bills per vCPU and per
GiB by family, plus each GPU. The SKUs here are those rates fitted to the built-in rows:
a family's core and RAM rates by least squares over its GPU-less rows; a family whose
rows cannot separate the two (one memory-per-vCPU ratio, or every row with a bundled GPU)
takes N1's core-to-RAM ratio (A2 and N1 share their rates on Google's price list);
each GPU's rate is what its rows cost beyond their machine. Spot SKUs are SPOT_RATIO of
on-demand (a guess: Google says spot is 60-91% off). `set_rate` changes a rate.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.machinelabels import gke_accelerator

MIB = 1024 * 1024
GIB = 1024**3
COMPUTE_SERVICE = "6F81-5844-456A"
SPOT_RATIO = 0.3
N1_CORE_PER_GIB = 0.031611 / 0.004237  # N1's list rates in us-central1 (pricing page)
SHARED_CORE = {"e2-micro", "e2-small", "e2-medium"}
# SKU descriptions: "<FAMILY> Instance Core running in Americas" with these exceptions
# (the words Google's SKUs use).
_MACHINE_WORDS = {
    "n1": "N1 Predefined Instance",
    "n2d": "N2D AMD Instance",
    "c2d": "C2D AMD Instance",
    "t2a": "T2A Arm Instance",
    "t2d": "T2D AMD Instance",
    "c2": "Compute optimized",
}
_GPU_WORDS = {
    "nvidia-tesla-t4": "Nvidia Tesla T4",
    "nvidia-tesla-v100": "Nvidia Tesla V100",
    "nvidia-tesla-p100": "Nvidia Tesla P100",
    "nvidia-tesla-p4": "Nvidia Tesla P4",
    "nvidia-tesla-k80": "Nvidia Tesla K80",
    "nvidia-l4": "Nvidia L4",
    "nvidia-tesla-a100": "Nvidia Tesla A100",
    "nvidia-a100-80gb": "Nvidia Tesla A100 80GB",
    "nvidia-h100-80gb": "Nvidia H100 80GB",
    "nvidia-h100-mega-80gb": "Nvidia H100 80GB Mega",
    "nvidia-h200-141gb": "Nvidia H200",
    "nvidia-b200": "Nvidia B200",
}
_GEOGRAPHY = {"us": "Americas", "northamerica": "Americas", "southamerica": "Americas"}
_FILTER = re.compile(r'^\s*zone\s+eq\s+"?([^"]+)"?\s*$')


class CatalogApiError(ValueError):
    """A request Google refuses: HTTP code, status and message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Machine:
    name: str
    vcpu: int
    memory_mb: int
    arch: str
    accelerator: str
    accelerator_count: int
    zones: tuple[str, ...]


def _fit(rows: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """Least squares y = a x1 + b x2 (None when the rows cannot tell a from b)."""
    s11 = sum(x1 * x1 for x1, _, _ in rows)
    s12 = sum(x1 * x2 for x1, x2, _ in rows)
    s22 = sum(x2 * x2 for _, x2, _ in rows)
    t1 = sum(x1 * y for x1, _, y in rows)
    t2 = sum(x2 * y for _, x2, y in rows)
    det = s11 * s22 - s12 * s12
    if abs(det) <= 1e-9 * max(s11 * s22, 1e-12):
        return None
    a, b = (t1 * s22 - t2 * s12) / det, (s11 * t2 - s12 * t1) / det
    return (a, b) if a > 0 and b > 0 else None


def fitted_rates(
    catalog: Iterable[InstanceType],
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(core by family, RAM by family, GPU by accelerator type) fitted to the rows."""
    rows = list(catalog)
    core: dict[str, float] = {}
    ram: dict[str, float] = {}
    families = sorted({t.family for t in rows})
    for family in families:
        plain = [t for t in rows if t.family == family and not t.gpu_count]
        if not plain:
            continue
        gib = [(t.vcpu, t.memory_bytes / GIB, t.on_demand_price) for t in plain]
        fit = _fit(gib)
        if fit is None:  # one ratio: N1's core-to-RAM proportion
            per_gib = sum(p for _, _, p in gib) / sum(N1_CORE_PER_GIB * v + m for v, m, _ in gib)
            fit = (N1_CORE_PER_GIB * per_gib, per_gib)
        core[family], ram[family] = fit
    gpu: dict[str, list[float]] = {}
    bundled = [f for f in families if f not in core]
    for t in rows:
        if t.gpu_count and t.family in core:
            rest = t.on_demand_price - _machine_cost(t, core[t.family], ram[t.family])
            gpu.setdefault(gke_accelerator(t), []).append(rest / t.gpu_count)
    for family in bundled:
        members = [t for t in rows if t.family == family]
        # price = RAM rate x (K vCPU + GiB) + GPU rate x GPUs, K as N1's
        fit = _fit(
            [
                (N1_CORE_PER_GIB * t.vcpu + t.memory_bytes / GIB, t.gpu_count, t.on_demand_price)
                for t in members
            ]
        )
        per_gib = fit[0] if fit else ram.get("n1", 0.004237)
        core[family], ram[family] = N1_CORE_PER_GIB * per_gib, per_gib
        for t in members:
            rest = t.on_demand_price - _machine_cost(t, core[family], per_gib)
            if t.gpu_count:
                gpu.setdefault(gke_accelerator(t), []).append(max(rest, 0.0) / t.gpu_count)
    return core, ram, {name: sum(v) / len(v) for name, v in gpu.items() if name}


def _machine_cost(t: InstanceType, core: float, ram: float) -> float:
    return t.vcpu * core + t.memory_bytes / GIB * ram


def machines_of(catalog: Iterable[InstanceType]) -> tuple[list[Machine], dict[str, dict[str, int]]]:
    """The machine types and, for N1, the attachable GPUs (zone -> most cards) the rows
    show."""
    machines: dict[str, Machine] = {}
    attachable: dict[str, dict[str, int]] = {}
    for t in catalog:
        attached = "+" in t.name
        accelerator = gke_accelerator(t) if t.gpu_count else ""
        machines.setdefault(
            t.machine_type,
            Machine(
                name=t.machine_type,
                vcpu=round(t.vcpu),
                memory_mb=t.memory_bytes // MIB,
                arch="ARM64" if t.arch == "arm64" else "X86_64",
                accelerator="" if attached else accelerator,
                accelerator_count=0 if attached else t.gpu_count,
                zones=t.zones,
            ),
        )
        if attached and accelerator:
            for zone in t.zones:
                by_zone = attachable.setdefault(accelerator, {})
                by_zone[zone] = max(by_zone.get(zone, 0), t.gpu_count)
    return sorted(machines.values(), key=lambda m: m.name), attachable


def _page(items: list[Any], token: str, size: int) -> tuple[list[Any], str]:
    try:
        start = int(token) if token else 0
    except ValueError:
        raise CatalogApiError(400, "INVALID_ARGUMENT", "Invalid value for pageToken.") from None
    if not 0 <= start <= len(items):
        raise CatalogApiError(400, "INVALID_ARGUMENT", "Invalid value for pageToken.")
    end = start + size
    return items[start:end], str(end) if end < len(items) else ""


def _money(usd: float) -> dict[str, Any]:
    units = int(usd)
    return {"currencyCode": "USD", "units": str(units), "nanos": round((usd - units) * 1e9)}


@dataclass
class CatalogApis:
    project: str
    region: str
    catalog: list[InstanceType]
    rates: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, name) -> $/hr

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.machines, self.attachable = machines_of(self.catalog)
        core, ram, gpu = fitted_rates(self.catalog)
        for kinds, table in (("core", core), ("ram", ram), ("gpu", gpu)):
            for name, usd in table.items():
                self.rates.setdefault((kinds, name), usd)

    def set_rate(self, kind: str, name: str, usd: float) -> None:
        """The on-demand rate of a family's `core` or `ram` (per vCPU / GiB hour) or of an
        accelerator type's `gpu` from now on (spot: SPOT_RATIO of it)."""
        if kind not in ("core", "ram", "gpu") or not usd >= 0:
            raise CatalogApiError(400, "INVALID_ARGUMENT", f"no rate {kind} {name} = {usd}")
        with self.lock:
            self.rates[(kind, name)] = usd

    def machine_types(self, query: dict[str, list[str]]) -> dict[str, Any]:
        zone_pattern = _zone_filter(query)
        items = [
            (zone, machine)
            for machine in self.machines
            for zone in machine.zones
            if zone_pattern is None or zone_pattern.fullmatch(zone)
        ]
        page, following = _page(items, _one(query, "pageToken"), _size(query, "maxResults", 500))
        scoped: dict[str, Any] = {}
        for zone, machine in page:
            scoped.setdefault(f"zones/{zone}", {"machineTypes": []})["machineTypes"].append(
                self._machine_json(machine, zone)
            )
        base = f"https://www.googleapis.com/compute/v1/projects/{self.project}"
        reply: dict[str, Any] = {
            "kind": "compute#machineTypeAggregatedList",
            "id": f"projects/{self.project}/aggregated/machineTypes",
            "items": scoped,
            "selfLink": f"{base}/aggregated/machineTypes",
        }
        if following:
            reply["nextPageToken"] = following
        return reply

    def _machine_json(self, machine: Machine, zone: str) -> dict[str, Any]:
        base = f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{zone}"
        body: dict[str, Any] = {
            "kind": "compute#machineType",
            "id": str(int(hashlib.sha256(machine.name.encode()).hexdigest()[:12], 16)),
            "name": machine.name,
            "description": f"{machine.vcpu} vCPUs, {machine.memory_mb / 1024:g} GB RAM",
            "guestCpus": machine.vcpu,
            "memoryMb": machine.memory_mb,
            "maximumPersistentDisks": 128,
            "maximumPersistentDisksSizeGb": "263168",
            "zone": zone,
            "selfLink": f"{base}/machineTypes/{machine.name}",
            "isSharedCpu": machine.name in SHARED_CORE,
            "architecture": machine.arch,
        }
        if machine.accelerator:
            body["accelerators"] = [
                {
                    "guestAcceleratorType": machine.accelerator,
                    "guestAcceleratorCount": machine.accelerator_count,
                }
            ]
        return body

    def accelerator_types(self, query: dict[str, list[str]]) -> dict[str, Any]:
        items = [
            (zone, name, cards)
            for name in sorted(self.attachable)
            for zone, cards in sorted(self.attachable[name].items())
        ]
        page, following = _page(items, _one(query, "pageToken"), _size(query, "maxResults", 500))
        base = f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones"
        scoped: dict[str, Any] = {}
        for zone, name, cards in page:
            scoped.setdefault(f"zones/{zone}", {"acceleratorTypes": []})["acceleratorTypes"].append(
                {
                    "kind": "compute#acceleratorType",
                    "name": name,
                    "description": _GPU_WORDS.get(name, name),
                    "zone": f"{base}/{zone}",
                    "selfLink": f"{base}/{zone}/acceleratorTypes/{name}",
                    "maximumCardsPerInstance": cards,
                }
            )
        reply: dict[str, Any] = {"kind": "compute#acceleratorTypeAggregatedList", "items": scoped}
        if following:
            reply["nextPageToken"] = following
        return reply

    def skus(self, service: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if service != COMPUTE_SERVICE:
            return {"skus": []}
        if _one(query, "currencyCode") not in ("", "USD"):
            raise CatalogApiError(400, "INVALID_ARGUMENT", "only USD is emulated")
        with self.lock:
            rates = sorted(self.rates.items())
        skus = [
            self._sku(kind, name, usd * (SPOT_RATIO if spot else 1.0), spot)
            for (kind, name), usd in rates
            for spot in (False, True)
        ]
        page, following = _page(skus, _one(query, "pageToken"), _size(query, "pageSize", 5000))
        return {"skus": page, "nextPageToken": following}  # "" on the last page, as Google

    def _sku(self, kind: str, name: str, usd: float, spot: bool) -> dict[str, Any]:
        where = _GEOGRAPHY.get(self.region.split("-", 1)[0], "EMEA")
        if kind == "gpu":
            what, group, unit = f"{_GPU_WORDS.get(name, name)} GPU", "GPU", "h"
        else:
            words = _MACHINE_WORDS.get(name, f"{name.upper()} Instance")
            what = f"{words} {'Core' if kind == 'core' else 'Ram'}"
            group = ("N1Standard" if name == "n1" else "CPU") if kind == "core" else "RAM"
            group = "N1Standard" if name == "n1" else group
            unit = "h" if kind == "core" else "GiBy.h"
        description = f"{'Spot Preemptible ' if spot else ''}{what} running in {where}"
        sku_id = hashlib.sha256(f"{self.region}/{description}".encode()).hexdigest()[:12].upper()
        sku_id = f"{sku_id[:4]}-{sku_id[4:8]}-{sku_id[8:]}"
        return {
            "name": f"services/{COMPUTE_SERVICE}/skus/{sku_id}",
            "skuId": sku_id,
            "description": description,
            "category": {
                "serviceDisplayName": "Compute Engine",
                "resourceFamily": "Compute",
                "resourceGroup": group,
                "usageType": "Preemptible" if spot else "OnDemand",
            },
            "serviceRegions": [self.region],
            "pricingInfo": [
                {
                    "summary": "",
                    "pricingExpression": {
                        "usageUnit": unit,
                        "displayQuantity": 1,
                        "tieredRates": [{"startUsageAmount": 0, "unitPrice": _money(usd)}],
                        "usageUnitDescription": "hour" if unit == "h" else "gibibyte hour",
                        "baseUnit": "s" if unit == "h" else "By.s",
                        "baseUnitConversionFactor": 3600 if unit == "h" else 3865470566400,
                    },
                    "currencyConversionRate": 1,
                    "effectiveTime": "2026-01-01T00:00:00Z",
                }
            ],
            "serviceProviderName": "Google",
        }


def _one(query: dict[str, list[str]], key: str) -> str:
    return (query.get(key) or [""])[0]


def _size(query: dict[str, list[str]], key: str, largest: int) -> int:
    raw = _one(query, key)
    try:
        size = int(raw) if raw else largest
    except ValueError:
        raise CatalogApiError(400, "INVALID_ARGUMENT", f"Invalid value for {key}: {raw}") from None
    if not 0 < size <= largest:
        raise CatalogApiError(400, "INVALID_ARGUMENT", f"{key} must be 1 to {largest}")
    return size


def _zone_filter(query: dict[str, list[str]]) -> re.Pattern[str] | None:
    raw = _one(query, "filter")
    if not raw:
        return None
    match = _FILTER.match(raw)
    if match is None:
        raise CatalogApiError(400, "INVALID_ARGUMENT", f"filter {raw!r} is not emulated")
    try:
        return re.compile(match.group(1))
    except re.error:
        raise CatalogApiError(400, "INVALID_ARGUMENT", f"Invalid filter: {raw}") from None
