"""The catalog APIs of the AKS emulator: Resource SKUs (ARM's
`GET /subscriptions/{id}/providers/Microsoft.Compute/skus`) and the public Retail Prices
API (`GET /api/retail/prices`), answered from the built-in catalog in the shapes Azure
answers (docs/clouds/aks.md cites each):

* Resource SKUs: `value[]` of `ResourceSku` records (`resourceType`, `name`, `tier`,
  `size`, `family`, `locations`, `locationInfo[].{location, zones, zoneDetails}`,
  `capabilities[].{name, value}` with string values, `restrictions[]`), pages of
  `sku_page` with an absolute `nextLink`; `$filter=location eq '...'` narrows to a
  location. A disk SKU is among them, as the real list mixes resource types.
* Retail Prices: `Items[]` (`currencyCode`, `retailPrice`, `unitPrice`, `armRegionName`,
  `location`, `meterName`, `productName`, `skuName`, `serviceName`, `unitOfMeasure`,
  `type`, `armSkuName`, ...) with `BillingCurrency`, `CustomerEntityId`,
  `CustomerEntityType`, `Count` and an absolute `NextPageLink` (`$skip`); each size has a
  Linux meter, a Spot meter, a Low Priority meter and a Windows one, as Azure lists them.
  `$filter` is an OData conjunction of `field eq 'value'` terms.

`set_price` changes what the Retail Prices API answers; `restrict` marks a size (or some
of its zones) NotAvailableForSubscription.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.choice.catalog import InstanceType

RETAIL_PRICES_PATH = "/api/retail/prices"
_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$")
_SIZE = re.compile(r"^Standard_([A-Z]+)(\d+)(.*)$")
# Azure's series names the meters after (`Virtual Machines DSv3 Series`), from the size:
# the letters and the suffix's version, e.g. Standard_D2s_v3 -> DSv3. A **guess** of the
# naming rule; the parser reads armSkuName, not the product name.
SPOT_RATIO = 0.3  # a **guess**: Azure's Spot discounts run 60-90%


class CatalogApiError(ValueError):
    """A request the real API refuses (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def odata_terms(expression: str) -> dict[str, str]:
    """`a eq 'x' and b eq 'y'` as {a: x, b: y}; anything else is refused."""
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", expression.strip(), flags=re.I) if expression else []:
        found = _TERM.match(part)
        if not found:
            raise CatalogApiError("InvalidFilter", f"Invalid $filter term: {part!r}")
        terms[found.group(1)] = found.group(2)
    return terms


def _series(size: str) -> str:
    found = _SIZE.match(size)
    if not found:
        return size
    letters, _, rest = found.groups()
    version = rest.rsplit("_", 1)[-1] if "_v" in rest else ""
    return f"{letters}{version}".replace("_", "")


def _meter(size: str) -> str:
    """`Standard_D2s_v3` -> `D2s v3`, as Azure names the size's meters."""
    return size.removeprefix("Standard_").replace("_", " ")


def _capability(name: str, value: object) -> dict[str, str]:
    return {"name": name, "value": str(value)}


@dataclass
class AzureCatalogApis:
    subscription: str
    location: str
    rows: Iterable[InstanceType]
    sku_page: int = 1000  # a **guess**: Azure answers the whole list in one page
    price_page: int = 1000  # the Retail Prices API's page size, as remembered (not re-checked)
    on_demand: dict[str, float] = field(default_factory=dict)
    spot: dict[str, float] = field(default_factory=dict)
    restricted: dict[str, tuple[str, ...]] = field(default_factory=dict)  # () : whole location

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.types = {t.name: t for t in self.rows if t.region == self.location}
        for t in self.types.values():
            self.on_demand.setdefault(t.name, t.on_demand_price)
            spot = t.spot_price if t.spot_price is not None else t.on_demand_price * SPOT_RATIO
            self.spot.setdefault(t.name, round(spot, 4))

    def set_price(self, size: str, usd: float, *, spot: bool = False) -> None:
        with self.lock:
            (self.spot if spot else self.on_demand)[size] = usd

    def restrict(self, size: str, zones: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.restricted[size] = zones

    # --- Resource SKUs -------------------------------------------------------------------

    def _sku(self, t: InstanceType) -> dict[str, Any]:
        zones = sorted(z.rsplit("-", 1)[-1] for z in t.zones)
        capabilities = [
            _capability("MaxResourceVolumeMB", int(t.vcpu) * 16384),  # a **guess**
            _capability("vCPUs", int(t.vcpu)),
            _capability("vCPUsAvailable", int(t.vcpu)),
            _capability("MemoryGB", f"{t.memory_bytes / 1024**3:g}"),
            _capability("HyperVGenerations", "V1,V2"),
            _capability("CpuArchitectureType", "Arm64" if t.arch == "arm64" else "x64"),
            _capability("LowPriorityCapable", "True" if t.spot_offered else "False"),
        ]
        if t.gpu_count:
            capabilities.append(_capability("GPUs", t.gpu_count))
        restrictions = []
        if t.name in self.restricted:
            restricted = self.restricted[t.name]
            restrictions.append(
                {
                    "type": "Zone" if restricted else "Location",
                    "values": [self.location],
                    "restrictionInfo": {
                        "locations": [self.location],
                        **({"zones": list(restricted)} if restricted else {}),
                    },
                    "reasonCode": "NotAvailableForSubscription",
                }
            )
        return {
            "resourceType": "virtualMachines",
            "name": t.name,
            "tier": "Standard",
            "size": t.name.removeprefix("Standard_"),
            "family": f"standard{_series(t.name)}Family",
            "locations": [self.location],
            "locationInfo": [{"location": self.location, "zones": zones, "zoneDetails": []}],
            "capabilities": capabilities,
            "restrictions": restrictions,
        }

    def resource_skus(self, query: Mapping[str, list[str]], base: str) -> dict[str, Any]:
        """One page of `Microsoft.Compute/skus`."""
        terms = odata_terms((query.get("$filter") or [""])[0])
        if set(terms) - {"location"}:
            raise CatalogApiError("InvalidFilter", "Only location filters are supported.")
        with self.lock:
            records = [self._sku(self.types[n]) for n in sorted(self.types)]
        disk = {
            "resourceType": "disks",
            "name": "Premium_LRS",
            "tier": "Premium",
            "size": "P1",
            "family": "PremiumSSD",
            "locations": [self.location],
            "locationInfo": [{"location": self.location, "zones": [], "zoneDetails": []}],
            "capabilities": [_capability("MaxSizeGiB", 4)],
            "restrictions": [],
        }
        records.insert(0, disk)
        wanted = terms.get("location", "").lower()
        if wanted and wanted != self.location:
            records = []
        start = _offset(query, "$skiptoken")
        page = records[start : start + self.sku_page]
        reply: dict[str, Any] = {"value": page}
        if start + self.sku_page < len(records):
            where = f"{base}/subscriptions/{self.subscription}/providers/Microsoft.Compute/skus"
            reply["nextLink"] = _link(where, query, "$skiptoken", start + self.sku_page)
        return reply

    # --- Retail Prices -------------------------------------------------------------------

    def _items(self, t: InstanceType, on_demand: float, spot: float) -> list[dict[str, Any]]:
        meter, series = _meter(t.name), _series(t.name)
        product = f"Virtual Machines {series} Series"
        common = {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "armRegionName": self.location,
            "location": self.location,
            "effectiveStartDate": "2025-03-01T00:00:00Z",
            "serviceName": "Virtual Machines",
            "serviceId": "DZH313Z7MMC8",
            "serviceFamily": "Compute",
            "unitOfMeasure": "1 Hour",
            "type": "Consumption",
            "isPrimaryMeterRegion": True,
            "armSkuName": t.name,
        }
        kinds = (
            (product, meter, on_demand),
            (product, f"{meter} Spot", spot),
            (product, f"{meter} Low Priority", round(on_demand * 0.2, 4)),
            (f"{product} Windows", meter, round(on_demand * 1.5, 4)),
        )
        items = []
        for index, (product_name, sku_name, price) in enumerate(kinds):
            items.append(
                {
                    **common,
                    "retailPrice": price,
                    "unitPrice": price,
                    "meterId": f"{_crc(f'{t.name}/{index}') % 10**12:012d}",
                    "meterName": sku_name,
                    "productId": f"DZH318Z0{_crc(product_name) % 10**4:04d}",
                    "skuId": f"DZH318Z0{_crc(t.name) % 10**4:04d}/{index:04d}",
                    "productName": product_name,
                    "skuName": sku_name,
                }
            )
        return items

    def retail_prices(self, query: Mapping[str, list[str]], base: str) -> dict[str, Any]:
        """One page of the Retail Prices API."""
        terms = odata_terms((query.get("$filter") or [""])[0])
        with self.lock:
            items = [
                item
                for name in sorted(self.types)
                for item in self._items(self.types[name], self.on_demand[name], self.spot[name])
            ]
        # The filter's `priceType` is the items' `type` (the Retail Prices docs' filters).
        wanted = {("type" if k == "priceType" else k): v for k, v in terms.items()}
        items = [i for i in items if all(str(i.get(k)) == v for k, v in wanted.items())]
        start = _offset(query, "$skip")
        page = items[start : start + self.price_page]
        more = start + self.price_page < len(items)
        return {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": page,
            "NextPageLink": _link(
                f"{base}{RETAIL_PRICES_PATH}", query, "$skip", start + self.price_page
            )
            if more
            else None,
            "Count": len(page),
        }


def _offset(query: Mapping[str, list[str]], key: str) -> int:
    raw = (query.get(key) or ["0"])[0]
    if not raw.isdigit():
        raise CatalogApiError("InvalidParameter", f"{key} {raw!r} is not a page of this list")
    return int(raw)


def _link(where: str, query: Mapping[str, list[str]], key: str, offset: int) -> str:
    """The next page's absolute address: the same query, `key` moved on."""
    kept = {k: v[0] for k, v in query.items() if k != key and v}
    kept[key] = str(offset)
    return f"{where}?{urllib.parse.urlencode(kept, quote_via=urllib.parse.quote)}"


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())
