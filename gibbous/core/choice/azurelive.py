"""Azure's own catalog APIs, as catalog rows: a pure reading of their responses.

Two sources, each read page by page (the shell follows the page links):

* Resource SKUs, `GET /subscriptions/{id}/providers/Microsoft.Compute/skus` with
  `$filter=location eq '<region>'` (ARM's `ResourceSku` model, azure-mgmt-compute's
  `resource_skus.list`): records of `resourceType` `virtualMachines` with `name`,
  `locationInfo[].{location, zones}`, `capabilities[].{name, value}` (`vCPUs`,
  `MemoryGB`, `GPUs`, `CpuArchitectureType` `x64`/`Arm64`, `LowPriorityCapable`) and
  `restrictions[].{type: Location|Zone, reasonCode: NotAvailableForSubscription,
  restrictionInfo.{locations, zones}}`; pages of `value` with `nextLink`.
* The public Azure Retail Prices API, `GET https://prices.azure.com/api/retail/prices`
  with `$filter=serviceName eq 'Virtual Machines' and armRegionName eq '<region>' and
  priceType eq 'Consumption'`: `Items[]` with `armSkuName`, `retailPrice`,
  `unitOfMeasure` (`1 Hour`), `skuName`/`meterName` (`... Spot`, `... Low Priority`),
  `productName` (`... Windows` for Windows meters); pages with `NextPageLink`. Windows and
  Low Priority (Azure Batch's) meters are left out and `... Spot` is the spot price, as
  Karpenter's Azure provider reads them (Azure/karpenter-provider-azure
  `pkg/providers/pricing/pricing.go`).

A size is offered when it is a VM size with vCPUs and memory, runs Linux on x64 or Arm64,
is not restricted for the subscription in the region, and has a pay-as-you-go price.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.choice.catalog import InstanceType, family_of
from gibbous.core.choice.keptcatalog import read_kept_catalog
from gibbous.core.errors import CatalogError

GIB = 1024**3
SOURCE = "azure-api"
_ARCHES = {"x64": "amd64", "arm64": "arm64"}
NOT_AVAILABLE = "NotAvailableForSubscription"
# The GPU of a size, from its name: Resource SKUs give the count (`GPUs`) but not the
# model. Azure's size names carry it (NC*as_T4_v3, NC*ads_A100_v4, ND*isr_H100_v5,
# NV*ads_A10_v5: learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated);
# the older families do not, so they are listed (NCv3 and NDv2: V100; NDasr_v4: A100).
_GPU_IN_NAME = re.compile(r"_(T4|A10|A100|H100|H200|V100|L4|L40S|MI300X|MI25|B200)_v\d+$", re.I)
_GPU_FAMILIES = (
    (re.compile(r"^Standard_NC\d+r?s_v3$", re.I), "V100"),
    (re.compile(r"^Standard_ND\d+r?s_v2$", re.I), "V100"),
    (re.compile(r"^Standard_ND\d+asr_v4$", re.I), "A100"),
    (re.compile(r"^Standard_ND\d+is?r?_MI300X_v5$", re.I), "MI300X"),
)
# GiB of one GPU of each model, for the catalog's gpu_memory (Resource SKUs do not say):
# the size series' pages on learn.microsoft.com (NCasT4_v3 16, NC_A100_v4 80, NDasrA100_v4
# 40, NDH100_v5 80, NDH200_v5 141, NVadsA10_v5 24, NCv3 16, NDMI300X_v5 192).
GPU_MEMORY_GIB = {
    "T4": 16,
    "A10": 24,
    "A100": 80,
    "H100": 80,
    "H200": 141,
    "V100": 16,
    "MI300X": 192,
    "L4": 24,
    "L40S": 48,
}
_A100_40 = re.compile(r"^Standard_ND\d+asr_v4$", re.I)


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """One `virtualMachines` Resource SKU, what the catalog needs of it."""

    name: str
    vcpu: int
    memory_gib: float
    arch: str  # amd64 or arm64
    gpu_count: int
    gpu_sku: str
    zones: tuple[str, ...]  # Azure's zone numbers, restricted ones left out
    spot: bool  # LowPriorityCapable: the size may run as Spot


def gpu_sku(size: str) -> str:
    """The catalog's GPU SKU of a VM size, from its name ("" when it names none)."""
    found = _GPU_IN_NAME.search(size)
    if found:
        return found.group(1).upper()
    return next((sku for pattern, sku in _GPU_FAMILIES if pattern.match(size)), "")


def gpu_memory_gib(size: str, sku: str, count: int) -> float:
    """All the GPUs' memory of a size (the 40 GB A100s of NDasrA100_v4 named apart)."""
    each = 40 if sku == "A100" and _A100_40.match(size) else GPU_MEMORY_GIB.get(sku, 0)
    return float(each * count)


def parse_resource_skus(pages: Iterable[Mapping[str, Any]], region: str) -> dict[str, SizeSpec]:
    """Resource SKUs' pages as the region's VM sizes by name (sizes Gibbous cannot run,
    or the subscription may not use there, left out)."""
    specs: dict[str, SizeSpec] = {}
    for page in pages:
        for record in _list(page, "value"):
            if not isinstance(record, Mapping):
                continue
            spec = _spec(record, region)
            if spec is not None:
                specs[spec.name] = spec
    return specs


def _capabilities(record: Mapping[str, Any]) -> dict[str, str]:
    found = record.get("capabilities") or []
    return {
        str(c.get("name")): str(c.get("value"))
        for c in found
        if isinstance(c, Mapping) and c.get("name") is not None
    }


def _number(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _spec(record: Mapping[str, Any], region: str) -> SizeSpec | None:
    name = str(record.get("name") or "")
    if record.get("resourceType") != "virtualMachines" or not name:
        return None
    locations = [str(x).lower() for x in record.get("locations") or []]
    if locations and region.lower() not in locations:
        return None
    capabilities = _capabilities(record)
    vcpu = int(_number(capabilities.get("vCPUs")))
    memory = _number(capabilities.get("MemoryGB"))
    arch = _ARCHES.get(capabilities.get("CpuArchitectureType", "x64").lower(), "")
    if vcpu <= 0 or memory <= 0 or not arch:
        return None
    zones: set[str] = set()
    for info in record.get("locationInfo") or []:
        if isinstance(info, Mapping) and str(info.get("location") or "").lower() == region.lower():
            zones.update(str(z) for z in info.get("zones") or [])
    for restriction in record.get("restrictions") or []:
        if not isinstance(restriction, Mapping):
            continue
        if restriction.get("reasonCode") != NOT_AVAILABLE:
            continue  # QuotaId: an offer type's limit, not this subscription's
        kind = restriction.get("type")
        info = restriction.get("restrictionInfo") or {}
        if kind == "Location":
            return None
        if kind == "Zone":
            zones -= {str(z) for z in info.get("zones") or []}
            if not zones:
                return None
    count = int(_number(capabilities.get("GPUs")))
    sku = gpu_sku(name) if count else ""
    return SizeSpec(
        name=name,
        vcpu=vcpu,
        memory_gib=memory,
        arch=arch,
        gpu_count=count,
        gpu_sku=sku,
        zones=tuple(sorted(zones)),
        spot=capabilities.get("LowPriorityCapable", "True").lower() == "true",
    )


def parse_retail_prices(
    pages: Iterable[Mapping[str, Any]], region: str
) -> tuple[dict[str, float], dict[str, float]]:
    """The Retail Prices API's pages: (pay-as-you-go, spot) $/hr of each Linux VM size in
    the region, the lowest when a size has more than one meter left by the filters."""
    on_demand: dict[str, float] = {}
    spot: dict[str, float] = {}
    for page in pages:
        for item in _list(page, "Items"):
            if not isinstance(item, Mapping) or not _linux_hourly(item, region):
                continue
            name = str(item.get("armSkuName") or "")
            price = _number(str(item.get("retailPrice")))
            if not name or price <= 0:
                continue
            sku_name = str(item.get("skuName") or "")
            into = spot if sku_name.endswith(" Spot") else on_demand
            if name not in into or price < into[name]:
                into[name] = price
    return on_demand, spot


def _linux_hourly(item: Mapping[str, Any], region: str) -> bool:
    meter, product = str(item.get("meterName") or ""), str(item.get("productName") or "")
    sku_name = str(item.get("skuName") or "")
    return (
        item.get("unitOfMeasure") == "1 Hour"
        and str(item.get("armRegionName") or "").lower() == region.lower()
        and item.get("type", "Consumption") == "Consumption"
        and not product.endswith(" Windows")
        and not meter.endswith(" Low Priority")
        and not sku_name.endswith(" Low Priority")
        and str(item.get("currencyCode") or "USD") == "USD"
    )


def live_catalog(
    region: str,
    *,
    specs: Mapping[str, SizeSpec],
    on_demand: Mapping[str, float],
    spot: Mapping[str, float],
    builtin: Iterable[InstanceType],
    date: str,
) -> list[InstanceType]:
    """The region's catalog from the two APIs. The built-in row of a size, when there is
    one, gives what the APIs do not (its GPU memory); everything the APIs say wins."""
    known = {t.name: t for t in builtin if t.cloud == "azure" and t.region == region}
    rows = []
    for name in sorted(specs):
        spec = specs[name]
        if name not in on_demand:
            continue
        old = known.get(name)
        gpu_memory = gpu_memory_gib(name, spec.gpu_sku, spec.gpu_count) * GIB
        if old is not None and old.gpu_memory_bytes and old.gpu_count == spec.gpu_count:
            gpu_memory = old.gpu_memory_bytes
        rows.append(
            InstanceType(
                cloud="azure",
                region=region,
                name=name,
                family=family_of("azure", name),
                vcpu=float(spec.vcpu),
                memory_bytes=round(spec.memory_gib * GIB),
                gpu_count=spec.gpu_count,
                gpu_sku=spec.gpu_sku,
                gpu_memory_bytes=int(gpu_memory),
                arch=spec.arch,
                on_demand_price=on_demand[name],
                spot_price=spot.get(name) if spec.spot else None,
                zones=tuple(f"{region}-{z}" for z in spec.zones),
                max_pods=old.max_pods if old is not None else None,
                price_date=date,
                spot_offered=spec.spot,
            )
        )
    return rows


def read_azure_catalog_document(text: str, region: str) -> tuple[float, list[InstanceType]]:
    """A kept Azure catalog (`keptcatalog.read_kept_catalog`)."""
    return read_kept_catalog(text, "azure", region)


def _list(page: Mapping[str, Any], key: str) -> list[Any]:
    found = page.get(key) or []
    if not isinstance(found, list):
        raise CatalogError(SOURCE, 0, f"{key} is not a list")
    return found
