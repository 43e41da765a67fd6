"""AWS's own catalog APIs, as catalog rows: a pure reading of their responses.

Three sources, each read page by page (the shell follows `NextToken`):

* `ec2:DescribeInstanceTypes` (botocore `ec2/2016-11-15/service-2.json`, shape
  `InstanceTypeInfo`): `VCpuInfo.DefaultVCpus`, `MemoryInfo.SizeInMiB`,
  `ProcessorInfo.SupportedArchitectures`, `SupportedUsageClasses`, `BareMetal`,
  `GpuInfo.Gpus[].{Name, Manufacturer, Count, MemoryInfo.SizeInMiB}`,
  `NetworkInfo.{MaximumNetworkInterfaces, Ipv4AddressesPerInterface}`.
* `ec2:DescribeInstanceTypeOfferings` with `LocationType=availability-zone` (shape
  `InstanceTypeOffering`: `InstanceType`, `Location`): which zones sell each type.
* `pricing:GetProducts` (botocore `pricing/2017-10-15/service-2.json`): `PriceList` is a
  list of JSON documents (strings), each a product with `product.attributes.instanceType`
  and `terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD` per `Hrs`.

A type is offered when it has a size, a Linux architecture Gibbous runs (x86_64 or arm64;
the mac types need dedicated hosts), at least one zone and an on-demand price. Spot prices
are not here: the provider prices spot from `DescribeSpotPriceHistory` or the advisor, as
with the built-in catalog.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.choice.catalog import InstanceType, family_of
from gibbous.core.choice.keptcatalog import read_kept_catalog
from gibbous.core.errors import CatalogError

MIB = 1024 * 1024
_ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
# What DescribeInstanceTypes calls a GPU, where the last word is not already the SKU the
# catalog and GPU feature discovery use (`nvidia.com/gpu.product` NVIDIA-A10G -> A10G).
_GPU_NAMES = {"RADEON PRO V520": "V520", "GAUDI HL-205": "HL-205"}
SOURCE = "aws-api"
MAX_PODS = 250


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """One `InstanceTypeInfo`, what the catalog needs of it."""

    name: str
    vcpu: int
    memory_mib: int
    arch: str  # amd64 or arm64
    gpu_count: int
    gpu_sku: str
    gpu_memory_mib: int  # all GPUs together, as the catalog's gpu_memory_gib
    spot: bool  # "spot" in SupportedUsageClasses
    on_demand: bool
    bare_metal: bool
    max_pods: int | None


def gpu_sku(name: str) -> str:
    """DescribeInstanceTypes' GPU name as the catalog's SKU: `A10G`, `L4`, `T4g` -> `T4G`,
    `H100`, `Radeon Pro V520` -> `V520`."""
    text = " ".join(name.upper().split())
    for prefix in ("NVIDIA ", "TESLA "):
        text = text.removeprefix(prefix)
    return _GPU_NAMES.get(text, text.split(" ")[-1] if text else "")


def eni_max_pods(interfaces: int, addresses: int) -> int:
    """Pods the VPC CNI gives a node without prefix delegation: one IP per pod on every
    interface but the interface's own, plus the two host-network pods (aws-node and
    kube-proxy): `ENIs x (IPv4 per ENI - 1) + 2`, amazon-eks-ami's eni-max-pods.txt, at
    most MAX_PODS, the built-in catalog's ceiling (docs/clouds/aws.md)."""
    return min(interfaces * (addresses - 1) + 2, MAX_PODS)


def parse_instance_types(pages: Iterable[Mapping[str, Any]]) -> dict[str, TypeSpec]:
    """DescribeInstanceTypes' pages as specs by name (types Gibbous cannot run left out)."""
    specs: dict[str, TypeSpec] = {}
    for page in pages:
        for info in _list(page, "InstanceTypes"):
            spec = _spec(info)
            if spec is not None:
                specs[spec.name] = spec
    return specs


def _spec(info: Mapping[str, Any]) -> TypeSpec | None:
    name = str(info.get("InstanceType") or "")
    vcpu = int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0)
    memory = int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0)
    arches = (info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
    arch = next((_ARCHES[a] for a in ("x86_64", "arm64") if a in arches), "")
    if not name or vcpu <= 0 or memory <= 0 or not arch:
        return None
    gpus = [g for g in (info.get("GpuInfo") or {}).get("Gpus") or [] if g.get("Count")]
    first = gpus[0] if gpus else {}
    network = info.get("NetworkInfo") or {}
    interfaces = int(network.get("MaximumNetworkInterfaces") or 0)
    addresses = int(network.get("Ipv4AddressesPerInterface") or 0)
    classes = info.get("SupportedUsageClasses") or []
    return TypeSpec(
        name=name,
        vcpu=vcpu,
        memory_mib=memory,
        arch=arch,
        gpu_count=sum(int(g["Count"]) for g in gpus),
        gpu_sku=gpu_sku(str(first.get("Name") or "")) if first else "",
        gpu_memory_mib=int(
            (info.get("GpuInfo") or {}).get("TotalGpuMemoryInMiB")
            or sum(
                int(g["Count"]) * int((g.get("MemoryInfo") or {}).get("SizeInMiB") or 0)
                for g in gpus
            )
        ),
        spot="spot" in classes,
        on_demand="on-demand" in classes,
        bare_metal=bool(info.get("BareMetal")),
        max_pods=eni_max_pods(interfaces, addresses) if interfaces and addresses else None,
    )


def parse_offerings(pages: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """DescribeInstanceTypeOfferings' pages (LocationType availability-zone): the zones
    selling each type, sorted."""
    zones: dict[str, set[str]] = {}
    for page in pages:
        for offering in _list(page, "InstanceTypeOfferings"):
            if offering.get("LocationType", "availability-zone") != "availability-zone":
                continue
            name, zone = (
                str(offering.get("InstanceType") or ""),
                str(offering.get("Location") or ""),
            )
            if name and zone:
                zones.setdefault(name, set()).add(zone)
    return {name: tuple(sorted(found)) for name, found in zones.items()}


def parse_price_list(pages: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """GetProducts' pages: the on-demand $/hr of each type (the lowest when a type has more
    than one product left by the filters)."""
    prices: dict[str, float] = {}
    for page in pages:
        for item in _list(page, "PriceList"):
            try:
                product = json.loads(item) if isinstance(item, str) else item
            except ValueError:
                raise CatalogError(
                    "pricing:GetProducts", 0, "a PriceList item is not JSON"
                ) from None
            if not isinstance(product, dict):
                continue
            attributes = (product.get("product") or {}).get("attributes") or {}
            name = str(attributes.get("instanceType") or "")
            price = _hourly(product.get("terms") or {})
            if name and price is not None and (name not in prices or price < prices[name]):
                prices[name] = price
    return prices


def _hourly(terms: Mapping[str, Any]) -> float | None:
    for offer in (terms.get("OnDemand") or {}).values():
        for dimension in (offer.get("priceDimensions") or {}).values():
            if dimension.get("unit") not in (None, "Hrs"):
                continue
            try:
                usd = float(str((dimension.get("pricePerUnit") or {}).get("USD")))
            except (TypeError, ValueError):
                continue
            if math.isfinite(usd) and usd > 0:
                return usd
    return None


def live_catalog(
    region: str,
    *,
    specs: Mapping[str, TypeSpec],
    zones: Mapping[str, tuple[str, ...]],
    prices: Mapping[str, float],
    builtin: Iterable[InstanceType],
    date: str,
) -> list[InstanceType]:
    """The region's catalog from the three APIs. The built-in row of a type, when there is
    one, gives what the APIs do not (its spot price, its max pods when the network info is
    missing); everything the APIs say wins."""
    known = {t.name: t for t in builtin if t.cloud == "aws" and t.region == region}
    rows = []
    for name in sorted(specs):
        spec = specs[name]
        if not spec.on_demand or name not in prices or not zones.get(name):
            continue
        old = known.get(name)
        rows.append(
            InstanceType(
                cloud="aws",
                region=region,
                name=name,
                family=family_of("aws", name),
                vcpu=float(spec.vcpu),
                memory_bytes=spec.memory_mib * MIB,
                gpu_count=spec.gpu_count,
                gpu_sku=spec.gpu_sku,
                gpu_memory_bytes=spec.gpu_memory_mib * MIB,
                arch=spec.arch,
                on_demand_price=prices[name],
                spot_price=old.spot_price if old is not None and spec.spot else None,
                zones=zones[name],
                max_pods=spec.max_pods or (old.max_pods if old is not None else None),
                price_date=date,
                spot_offered=spec.spot,
            )
        )
    return rows


def _list(page: Mapping[str, Any], key: str) -> list[Any]:
    found = page.get(key) or []
    if not isinstance(found, list):
        raise CatalogError(SOURCE, 0, f"{key} is not a list")
    return found


def read_catalog_document(text: str, region: str) -> tuple[float, list[InstanceType]]:
    """A kept AWS catalog (`keptcatalog.read_kept_catalog`)."""
    return read_kept_catalog(text, "aws", region)
