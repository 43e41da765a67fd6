"""The emulated account's catalog APIs, answered from the built-in catalog of its region:
`ec2:DescribeInstanceTypes`, `ec2:DescribeInstanceTypeOfferings` and the Price List API's
`pricing:GetProducts` (docs/clouds/aws.md cites each shape).

moto answers the two EC2 calls from its own recording of AWS (every type, offerings of its
own, no paging); here they answer the types the built-in catalog sells in the region, in
pages of `MaxResults` with a `NextToken` as EC2 pages them. Each type's record starts from
moto's recording of `DescribeInstanceTypes` (AWS's own answer, network and storage
included) with the catalog's size, GPUs, architecture and usage classes written over it.
moto has no Price List API: `get_products` answers its JSON shape, a `PriceList` of JSON
strings, with the catalog's on-demand price, changed by `set_on_demand_price`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.ec2.models.instance_types import INSTANCE_TYPES

from gibbous.core.choice.catalog import InstanceType

MIB = 1024 * 1024
# DescribeInstanceTypes' GpuDeviceInfo.Name where it is not the catalog's upper-case SKU.
_GPU_NAMES = {"T4G": "T4g"}
_ARCH = {"amd64": "x86_64", "arm64": "arm64"}
DEFAULT_PAGE = {"DescribeInstanceTypes": 100, "DescribeInstanceTypeOfferings": 1000}
PRICE_PAGE = 100


class CatalogApiError(ValueError):
    """A request AWS refuses (bad token, bad page size): code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def instance_type_info(instance_type: InstanceType) -> dict[str, Any]:
    """The `InstanceTypeInfo` of a catalog row."""
    info: dict[str, Any] = copy.deepcopy(INSTANCE_TYPES.get(instance_type.name) or {})
    info.update(
        {
            "InstanceType": instance_type.name,
            "VCpuInfo": {
                **(info.get("VCpuInfo") or {}),
                "DefaultVCpus": round(instance_type.vcpu),
            },
            "MemoryInfo": {"SizeInMiB": instance_type.memory_bytes // MIB},
            "ProcessorInfo": {
                **(info.get("ProcessorInfo") or {}),
                "SupportedArchitectures": [_ARCH[instance_type.arch]],
            },
            "SupportedUsageClasses": ["on-demand", "spot"]
            if instance_type.spot_offered
            else ["on-demand"],
            "BareMetal": _metal(instance_type) or bool(info.get("BareMetal")),
        }
    )
    if instance_type.gpu_count:
        total = instance_type.gpu_memory_bytes // MIB
        sku = instance_type.gpu_sku
        info["GpuInfo"] = {
            "Gpus": [
                {
                    "Name": _GPU_NAMES.get(sku, sku),
                    "Manufacturer": "NVIDIA",
                    "Count": instance_type.gpu_count,
                    "MemoryInfo": {"SizeInMiB": total // instance_type.gpu_count},
                }
            ],
            "TotalGpuMemoryInMiB": total,
        }
    else:
        info.pop("GpuInfo", None)
    return info


def _metal(instance_type: InstanceType) -> bool:
    return instance_type.name.split(".", 1)[-1].startswith("metal")


def _family(instance_type: InstanceType) -> str:
    """The Price List files bare metal apart (Karpenter's pricing.go asks for it so)."""
    return "Compute Instance (bare metal)" if _metal(instance_type) else "Compute Instance"


def _tenancy(instance_type: InstanceType) -> str:
    return "Dedicated" if _metal(instance_type) else "Shared"


def price_item(instance_type: InstanceType, usd: float, region: str) -> str:
    """One GetProducts `PriceList` entry (a JSON string): the product and its on-demand
    term, as the Price List API's aws_v1 format has them."""
    sku = hashlib.sha256(f"{region}/{instance_type.name}".encode()).hexdigest()[:16].upper()
    offer = f"{sku}.JRTCKXETXF"
    return json.dumps(
        {
            "product": {
                "productFamily": _family(instance_type),
                "attributes": {
                    "servicecode": "AmazonEC2",
                    "regionCode": region,
                    "instanceType": instance_type.name,
                    "vcpu": str(round(instance_type.vcpu)),
                    "operatingSystem": "Linux",
                    "tenancy": _tenancy(instance_type),
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                    "marketoption": "OnDemand",
                    "licenseModel": "No License required",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    offer: {
                        "offerTermCode": "JRTCKXETXF",
                        "sku": sku,
                        "priceDimensions": {
                            f"{offer}.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": f"{usd:.10f}"},
                                "description": f"${usd} per On Demand Linux "
                                f"{instance_type.name} Instance Hour",
                            }
                        },
                    }
                }
            },
            "version": "emulated",
            "publicationDate": "emulated",
        }
    )


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    try:
        start = int(token) if token else 0
    except ValueError:
        raise CatalogApiError("InvalidNextToken", "The token is not valid.") from None
    if start < 0 or start > len(items):
        raise CatalogApiError("InvalidNextToken", "The token is not valid.")
    end = start + size
    return items[start:end], str(end) if end < len(items) else None


@dataclass
class CatalogApis:
    region: str
    catalog: list[InstanceType]
    on_demand: dict[str, float] = field(default_factory=dict)  # type -> $/hr

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        for instance_type in self.catalog:
            self.on_demand.setdefault(instance_type.name, instance_type.on_demand_price)

    def set_on_demand_price(self, name: str, usd: float) -> None:
        with self.lock:
            self.on_demand[name] = usd

    def describe_instance_types(
        self, names: list[str], token: str | None, size: int | None
    ) -> dict[str, Any]:
        chosen = [t for t in self.catalog if not names or t.name in names]
        page, following = _page(chosen, token, self._size("DescribeInstanceTypes", size, 5, 100))
        reply: dict[str, Any] = {"InstanceTypes": [instance_type_info(t) for t in page]}
        if following:
            reply["NextToken"] = following
        return reply

    def describe_instance_type_offerings(
        self, location_type: str, token: str | None, size: int | None
    ) -> dict[str, Any]:
        if location_type not in ("", "region", "availability-zone"):
            raise CatalogApiError(
                "InvalidParameterValue", f"LocationType {location_type} is not emulated"
            )
        offerings = [
            {"InstanceType": t.name, "LocationType": "availability-zone", "Location": zone}
            for t in self.catalog
            for zone in t.zones
        ]
        if location_type in ("", "region"):
            offerings = [
                {"InstanceType": t.name, "LocationType": "region", "Location": self.region}
                for t in self.catalog
            ]
        page, following = _page(
            offerings, token, self._size("DescribeInstanceTypeOfferings", size, 5, 1000)
        )
        reply: dict[str, Any] = {"InstanceTypeOfferings": page}
        if following:
            reply["NextToken"] = following
        return reply

    def get_products(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("ServiceCode") != "AmazonEC2":
            return {"FormatVersion": "aws_v1", "PriceList": []}
        wanted = {
            str(f.get("Field")): str(f.get("Value"))
            for f in request.get("Filters") or []
            if f.get("Type", "TERM_MATCH") == "TERM_MATCH"
        }
        with self.lock:
            priced = [
                (t, self.on_demand[t.name])
                for t in self.catalog
                if all(self._attributes(t).get(k, v) == v for k, v in wanted.items())
            ]
        size = int(request.get("MaxResults") or PRICE_PAGE)
        if not 1 <= size <= PRICE_PAGE:
            raise CatalogApiError("InvalidParameterException", f"MaxResults {size}: 1 to 100")
        page, following = _page(priced, request.get("NextToken"), size)
        reply: dict[str, Any] = {
            "FormatVersion": "aws_v1",
            "PriceList": [price_item(t, usd, self.region) for t, usd in page],
        }
        if following:
            reply["NextToken"] = following
        return reply

    def _attributes(self, instance_type: InstanceType) -> dict[str, str]:
        """The product attributes a filter may name (others match everything)."""
        return {
            "regionCode": self.region,
            "instanceType": instance_type.name,
            "operatingSystem": "Linux",
            "tenancy": _tenancy(instance_type),
            "productFamily": _family(instance_type),
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "marketoption": "OnDemand",
            "servicecode": "AmazonEC2",
        }

    @staticmethod
    def _size(action: str, size: int | None, low: int, high: int) -> int:
        if size is None:
            return DEFAULT_PAGE[action]
        if not low <= size <= high:
            raise CatalogApiError(
                "InvalidParameterValue", f"MaxResults {size} must be between {low} and {high}"
            )
        return size
