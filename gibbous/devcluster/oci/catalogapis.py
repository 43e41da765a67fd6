"""The emulated tenancy's catalog APIs, answered from the built-in OCI catalog: Compute
`ListShapes` (`GET /20160918/shapes`) and Oracle's public price list (`GET
/cetools/api/v1/products/`); docs/clouds/oke.md cites each shape.

ListShapes answers `oci.core.models.Shape` documents in pages of `limit` with the
`opc-next-page` header: one Flex shape per `<shape>-<ocpus>-<GB>` family of the catalog
(with OCI's published OCPU and memory ranges), each fixed shape (bare metal, GPU) as the
catalog has it. The price list answers the cost estimator API's items (`partNumber`,
`displayName`, `metricName`, `serviceCategory`, `currencyCodeLocalizations`), the prices
read back from the catalog's rows (a Flex shape's OCPU and GB prices from two of its
sizes, a GPU shape's per-GPU price), in pages with ORDS's `hasMore` and `links` when asked
for a `limit`; `set_price` changes a part's price.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from gibbous.core.choice.catalog import InstanceType

GIB = 1024**3
SHAPES_PATH = "/20160918/shapes"
PRICE_PATH = "/cetools/api/v1/products/"
PRICES_PATH = "/emulator/prices"  # POST {"B93113": 0.01}: the parts' prices from now on
# The price list is public (no signature); the price-changing endpoint is the emulator's own.
UNSIGNED_PATHS = (PRICE_PATH, PRICES_PATH)
_FLEX = re.compile(r"(.+\.Flex)-(\d+)-(\d+)")
# OCI's "Compute Shapes" page, Flex shapes: (max OCPUs, max GB, max GB per OCPU).
FLEX_RANGES = {
    "VM.Standard.E4.Flex": (64, 1024, 64),
    "VM.Standard.E5.Flex": (94, 1049, 64),
    "VM.Standard3.Flex": (32, 512, 64),
    "VM.Standard.A1.Flex": (80, 512, 64),
}
PROCESSORS = {
    "VM.Standard.E4.Flex": "2.55 GHz AMD EPYC™ 7J13 (Milan)",
    "BM.Standard.E4.128": "2.55 GHz AMD EPYC™ 7J13 (Milan)",
    "VM.Standard.E5.Flex": "2.4 GHz AMD EPYC™ 9J14 (Genoa)",
    "BM.Standard.E5.192": "2.4 GHz AMD EPYC™ 9J14 (Genoa)",
    "VM.Standard3.Flex": "2.6 GHz Intel® Xeon® Platinum 8358 (Ice Lake)",
    "BM.Standard3.64": "2.6 GHz Intel® Xeon® Platinum 8358 (Ice Lake)",
    "VM.Standard.A1.Flex": "3.0 GHz Ampere® Altra™",
}
# The price list's parts for the shapes the built-in catalog sells: (part number, display
# name, metric, service category, where the price is read: a Flex family's OCPU or memory
# price, or a GPU shape's price per GPU). Part numbers as in docs/clouds/oke.md.
PARTS = (
    ("B93113", "Compute - Standard - E4 - OCPU", "OCPU Per Hour", "VM.Standard.E4.Flex", "ocpu"),
    (
        "B93114",
        "Compute - Standard - E4 - Memory",
        "Gigabyte Per Hour",
        "VM.Standard.E4.Flex",
        "gb",
    ),
    ("B97384", "Compute - Standard - E5 - OCPU", "OCPU Per Hour", "VM.Standard.E5.Flex", "ocpu"),
    (
        "B97385",
        "Compute - Standard - E5 - Memory",
        "Gigabyte Per Hour",
        "VM.Standard.E5.Flex",
        "gb",
    ),
    ("B94176", "Compute - Standard - X9 - OCPU", "OCPU Per Hour", "VM.Standard3.Flex", "ocpu"),
    ("B94177", "Compute - Standard - X9 - Memory", "Gigabyte Per Hour", "VM.Standard3.Flex", "gb"),
    ("B93297", "Compute - Ampere A1 - OCPU", "OCPU Per Hour", "VM.Standard.A1.Flex", "ocpu"),
    ("B93298", "Compute - Ampere A1 - Memory", "Gigabyte Per Hour", "VM.Standard.A1.Flex", "gb"),
    ("B88517", "Compute - GPU Standard - V100", "GPU Per Hour", "VM.GPU3.1", "gpu"),
    ("B95909", "Compute - GPU - A10", "GPU Per Hour", "VM.GPU.A10.1", "gpu"),
    ("B88518", "Compute - GPU Standard - A100", "GPU Per Hour", "BM.GPU4.8", "gpu"),
    ("B89734", "Compute - GPU Standard - P100", "GPU Per Hour", "VM.GPU2.1", "gpu"),
)


class CatalogApiError(ValueError):
    """A request OCI refuses: status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _gpu_description(sku: str) -> str:
    return f"NVIDIA® Tesla® {sku}" if sku in ("V100", "P100") else f"NVIDIA® {sku}"


class OciCatalogApis:
    def __init__(self, rows: list[InstanceType]) -> None:
        self.lock = threading.Lock()
        self.shapes = self._shapes(rows)
        self.prices = self._prices(rows)

    @staticmethod
    def _shapes(rows: list[InstanceType]) -> list[dict[str, Any]]:
        shapes: dict[str, dict[str, Any]] = {}
        for row in rows:
            flex = _FLEX.fullmatch(row.name)
            name = flex.group(1) if flex else row.name
            per_ocpu = 1 if row.arch == "arm64" else 2
            shape: dict[str, Any] = {
                "shape": name,
                "processorDescription": PROCESSORS.get(
                    name, "2.0 GHz Intel® Xeon® Platinum 8167M (Skylake)"
                ),
                "ocpus": 1.0 if flex else row.vcpu / per_ocpu,
                "memoryInGBs": 16.0 if flex else row.memory_bytes / GIB,
                "gpus": row.gpu_count,
                "isFlexible": bool(flex),
                "isLiveMigrationSupported": not row.name.startswith("BM."),
                "billingType": "PAID",
            }
            if row.gpu_count:
                shape["gpuDescription"] = _gpu_description(row.gpu_sku)
            if flex:
                most, most_gb, per_gb = FLEX_RANGES.get(name, (64, 1024, 64))
                shape["ocpuOptions"] = {"min": 1.0, "max": float(most)}
                shape["memoryOptions"] = {
                    "minInGBs": 1.0,
                    "maxInGBs": float(most_gb),
                    "defaultPerOcpuInGBs": 16.0,
                    "minPerOcpuInGBs": 1.0,
                    "maxPerOcpuInGBs": float(per_gb),
                }
            shapes[name] = shape
        return [shapes[n] for n in sorted(shapes)]

    @staticmethod
    def _prices(rows: list[InstanceType]) -> dict[str, float]:
        by_name = {r.name: r for r in rows}
        prices: dict[str, float] = {}
        for part, _, _, shape, what in PARTS:
            if what == "gpu":
                row = by_name.get(shape)
                if row is not None and row.gpu_count:
                    prices[part] = round(row.on_demand_price / row.gpu_count, 6)
                continue
            # Two sizes of one OCPU: 8 and 16 GB; their difference is 8 GB's price.
            small, large = by_name.get(f"{shape}-1-8"), by_name.get(f"{shape}-1-16")
            if small is None or large is None:
                continue
            gb = (large.on_demand_price - small.on_demand_price) / 8
            prices[part] = round(gb if what == "gb" else small.on_demand_price - 8 * gb, 6)
        return prices

    def answer(
        self, method: str, path: str, query: Mapping[str, list[str]], raw: bytes
    ) -> tuple[int, Any, dict[str, str]] | None:
        """The answer to a request for these APIs; None for any other request."""
        if method == "GET" and path == PRICE_PATH:
            return 200, self.price_list(query), {}
        if method == "GET" and path == SHAPES_PATH:
            return (200, *self.list_shapes(query))
        if method == "POST" and path == PRICES_PATH:
            try:
                changes = {str(k): float(v) for k, v in json.loads(raw or b"{}").items()}
            except (ValueError, TypeError, AttributeError) as error:
                raise CatalogApiError(400, "InvalidParameter", f"{{part: usd}}: {error}") from None
            for part, usd in changes.items():
                self.set_price(part, usd)
            return 200, {"prices": len(changes)}, {}
        return None

    def set_price(self, part: str, usd: float) -> None:
        """What the price list answers for `part` from now on."""
        with self.lock:
            self.prices[part] = usd

    def list_shapes(self, query: Mapping[str, list[str]]) -> tuple[list[Any], dict[str, str]]:
        if not (query.get("compartmentId") or [""])[0]:
            raise CatalogApiError(400, "MissingParameter", "compartmentId is required.")
        start, limit = self._page(query.get("page"), query.get("limit"), 1000)
        shown = self.shapes[start : start + limit]
        more = start + limit < len(self.shapes)
        return shown, {"opc-next-page": str(start + limit)} if more else {}

    def price_list(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        currency = (query.get("currencyCode") or ["USD"])[0]
        with self.lock:
            items = [
                {
                    "partNumber": part,
                    "displayName": display,
                    "metricName": metric,
                    "serviceCategory": "Compute - Virtual Machine"
                    if shape.startswith("VM.")
                    else "Compute - Bare Metal",
                    "currencyCodeLocalizations": [
                        {
                            "currencyCode": currency,
                            "prices": [{"model": "PAY_AS_YOU_GO", "value": self.prices[part]}],
                        }
                    ],
                }
                for part, display, metric, shape, _ in PARTS
                if part in self.prices and currency == "USD"
            ]
        if not query.get("limit"):
            return {"items": items}
        start, limit = self._page(query.get("offset"), query.get("limit"), 10000)
        more = start + limit < len(items)
        page: dict[str, Any] = {
            "items": items[start : start + limit],
            "hasMore": more,
            "limit": limit,
            "offset": start,
            "count": len(items[start : start + limit]),
        }
        if more:
            page["links"] = [
                {
                    "rel": "next",
                    "href": f"{PRICE_PATH}?currencyCode={currency}&limit={limit}"
                    f"&offset={start + limit}",
                }
            ]
        return page

    @staticmethod
    def _page(start: list[str] | None, limit: list[str] | None, most: int) -> tuple[int, int]:
        try:
            first = int((start or ["0"])[0])
            size = int((limit or [str(most)])[0])
        except ValueError:
            raise CatalogApiError(400, "InvalidParameter", "page and limit are numbers.") from None
        if first < 0 or not 1 <= size <= most:
            raise CatalogApiError(400, "InvalidParameter", f"limit is 1 to {most}.")
        return first, size
