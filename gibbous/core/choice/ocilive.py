"""OCI's own catalog APIs, as catalog rows: a pure reading of their responses.

Two sources, each read page by page (the shell follows them):

* Compute `ListShapes` for the compartment (SDK model `oci.core.models.Shape`, paged with the
  `opc-next-page` header): `shape`, `ocpus`, `memoryInGBs`, `gpus`, `gpuDescription`,
  `processorDescription`, `isFlexible`, `ocpuOptions.{min,max}` and
  `memoryOptions.{minInGBs,maxInGBs,minPerOcpuInGBs,maxPerOcpuInGBs}`.
* Oracle's public price list (`https://apexapps.oracle.com/pls/apex/cetools/api/v1/products/`,
  the cost estimator's API): `items[]` with `partNumber`, `displayName`, `metricName` and
  `currencyCodeLocalizations[].prices[].{model,value}`; the `PAY_AS_YOU_GO` USD price.

A shape is priced from parts, as Oracle bills it: a standard shape (Flex VM or bare metal)
by its series' OCPU and memory parts, a GPU shape by its GPU part times its GPUs (the CPU
and memory are in the GPU price). `PRICE_PARTS` says which part prices what; where the
part number is not confirmed by a public source it is marked a guess in
docs/clouds/oke.md. A shape no part prices is left out (no price is invented).

Flex shapes become sized rows, as the built-in catalog names them:
`VM.Standard.E4.Flex-<ocpus>-<GB>` at FLEX_OCPUS x FLEX_GB_PER_OCPU, within the shape's
OCPU and memory ranges. vCPUs: 2 per OCPU on x86, 1 on Ampere (OCI's "OCPU" definition).
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
SOURCE = "oci-api"
FLEX_OCPUS = (1, 2, 4, 8, 16, 32)  # scripts/generate-catalogs.py's sizes
FLEX_GB_PER_OCPU = (8, 16)
DEFAULT_PRICE_LIST_URL = (
    "https://apexapps.oracle.com/pls/apex/cetools/api/v1/products/?currencyCode=USD"
)
# partNumber -> (series, what it prices: ocpu | memory | gpu, the metricName it must have).
# Series: the standard shapes' processor generation, or a GPU model. docs/clouds/oke.md
# says which numbers a source confirms and which are guesses.
PRICE_PARTS: dict[str, tuple[str, str, str]] = {
    "B93113": ("E4", "ocpu", "OCPU Per Hour"),
    "B93114": ("E4", "memory", "Gigabyte Per Hour"),
    "B97384": ("E5", "ocpu", "OCPU Per Hour"),
    "B97385": ("E5", "memory", "Gigabyte Per Hour"),
    "B94176": ("Standard3", "ocpu", "OCPU Per Hour"),
    "B94177": ("Standard3", "memory", "Gigabyte Per Hour"),
    "B93311": ("Optimized3", "ocpu", "OCPU Per Hour"),
    "B93312": ("Optimized3", "memory", "Gigabyte Per Hour"),
    # Ampere A1's parts are listed at $0 (the Always Free tier): no price is read from a
    # $0 value, so the A1 shapes keep their built-in prices.
    "B93297": ("A1", "ocpu", "OCPU Per Hour"),
    "B93298": ("A1", "memory", "Gigabyte Per Hour"),
    "B109529": ("A2", "ocpu", "OCPU Per Hour"),
    "B109530": ("A2", "memory", "Gigabyte Per Hour"),
    "B95909": ("A10", "gpu", "GPU Per Hour"),
    "B95907": ("A100-v2", "gpu", "GPU Per Hour"),
    "B88517": ("V100", "gpu", "GPU Per Hour"),
    "B88518": ("A100", "gpu", "GPU Per Hour"),
    "B89734": ("P100", "gpu", "GPU Per Hour"),
}
# The standard series of a shape name, VM (Flex) or bare metal: VM.Standard.E4.Flex,
# BM.Standard.E4.128 -> E4; VM.Standard3.Flex, BM.Standard3.64 -> Standard3.
_STANDARD = tuple(
    (re.compile(pattern), series)
    for pattern, series in (
        (r"(?:VM|BM)\.Standard\.E4\.(?:Flex|\d+)", "E4"),
        (r"(?:VM|BM)\.Standard\.E5\.(?:Flex|\d+)", "E5"),
        (r"(?:VM|BM)\.Standard3\.(?:Flex|\d+)", "Standard3"),
        (r"(?:VM|BM)\.Optimized3\.(?:Flex|\d+)", "Optimized3"),
        (r"(?:VM|BM)\.Standard\.A1\.(?:Flex|\d+)", "A1"),
        (r"(?:VM|BM)\.Standard\.A2\.(?:Flex|\d+)", "A2"),
    )
)
# The GPU series of a shape and the memory of one of its GPUs (OCI's "Compute Shapes", GPU
# shapes; NVIDIA's data sheets): VM.GPU3.1, BM.GPU3.8 -> V100 16 GB; VM.GPU.A10.1 -> A10
# 24 GB; BM.GPU4.8 -> A100 40 GB; BM.GPU.A100-v2.8 -> A100 80 GB; VM.GPU2.1 -> P100 16 GB.
# ListShapes does not give GPU memory.
_GPU_SERIES = (
    (re.compile(r"(?:VM|BM)\.GPU3\.\d+"), "V100", 16),
    (re.compile(r"(?:VM|BM)\.GPU\.A10\.\d+"), "A10", 24),
    (re.compile(r"BM\.GPU4\.8"), "A100", 40),
    (re.compile(r"BM\.GPU\.A100-v2\.8"), "A100-v2", 80),
    (re.compile(r"(?:VM|BM)\.GPU2\.\d+"), "P100", 16),
)


@dataclass(frozen=True, slots=True)
class ShapeSpec:
    """One `Shape` of ListShapes, what the catalog needs of it."""

    name: str
    ocpus: float
    memory_gb: float
    arch: str  # amd64 or arm64
    gpus: int
    gpu_sku: str
    flexible: bool
    ocpu_range: tuple[float, float]  # Flex only
    memory_range: tuple[float, float]
    per_ocpu_range: tuple[float, float]


def gpu_sku(description: str) -> str:
    """ListShapes' `gpuDescription` as the catalog's SKU: `NVIDIA® Tesla® V100` -> V100,
    `NVIDIA® A10` -> A10."""
    words = re.sub(r"[®™]", " ", description).split()
    words = [w for w in words if w.upper() not in ("NVIDIA", "TESLA")]
    return words[-1].upper() if words else ""


def parse_shapes(pages: Iterable[Any]) -> dict[str, ShapeSpec]:
    """ListShapes' pages (each a list of Shape documents) as specs by name; a shape listed
    once per availability domain is one spec."""
    specs: dict[str, ShapeSpec] = {}
    for page in pages:
        if not isinstance(page, list):
            raise CatalogError(SOURCE, 0, "a ListShapes page is not a list")
        for shape in page:
            spec = _shape(shape) if isinstance(shape, Mapping) else None
            if spec is not None:
                specs[spec.name] = spec
    return specs


def _number(value: Any) -> float:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return 0.0
    return found if math.isfinite(found) and found > 0 else 0.0


def _shape(shape: Mapping[str, Any]) -> ShapeSpec | None:
    name = str(shape.get("shape") or "")
    ocpus, memory = _number(shape.get("ocpus")), _number(shape.get("memoryInGBs"))
    if not name or ocpus <= 0 or memory <= 0:
        return None
    processor = str(shape.get("processorDescription") or "")
    ocpu_options = shape.get("ocpuOptions") or {}
    memory_options = shape.get("memoryOptions") or {}
    gpus = int(_number(shape.get("gpus")))
    return ShapeSpec(
        name=name,
        ocpus=ocpus,
        memory_gb=memory,
        arch="arm64" if "ampere" in processor.lower() else "amd64",
        gpus=gpus,
        gpu_sku=gpu_sku(str(shape.get("gpuDescription") or "")) if gpus else "",
        flexible=bool(shape.get("isFlexible")),
        ocpu_range=(_number(ocpu_options.get("min")), _number(ocpu_options.get("max"))),
        memory_range=(
            _number(memory_options.get("minInGBs")),
            _number(memory_options.get("maxInGBs")),
        ),
        per_ocpu_range=(
            _number(memory_options.get("minPerOcpuInGBs")),
            _number(memory_options.get("maxPerOcpuInGBs")),
        ),
    )


def parse_price_list(pages: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """The price list's pages: the pay-as-you-go USD price of each (series, dimension) a
    part in PRICE_PARTS prices, when the part's metric is the expected one."""
    prices: dict[tuple[str, str], float] = {}
    for page in pages:
        items = page.get("items") or []
        if not isinstance(items, list):
            raise CatalogError("oci-price-list", 0, "items is not a list")
        for item in items:
            if not isinstance(item, Mapping):
                continue
            part = PRICE_PARTS.get(str(item.get("partNumber") or ""))
            if part is None or item.get("metricName") != part[2]:
                continue
            price = _usd(item.get("currencyCodeLocalizations") or [])
            if price is not None:
                prices[(part[0], part[1])] = price
    return prices


def _usd(localizations: Any) -> float | None:
    for local in localizations if isinstance(localizations, list) else []:
        if not isinstance(local, Mapping) or local.get("currencyCode") != "USD":
            continue
        for price in local.get("prices") or []:
            if not isinstance(price, Mapping):
                continue
            if price.get("model", "PAY_AS_YOU_GO") != "PAY_AS_YOU_GO":
                continue
            value = _number(price.get("value"))
            if value > 0:
                return value
    return None


def standard_series(shape: str) -> str:
    """The standard series (E4, E5, Standard3, Optimized3, A1, A2) Gibbous prices a shape
    by; "" otherwise."""
    return next((series for pattern, series in _STANDARD if pattern.fullmatch(shape)), "")


def gpu_series(shape: str) -> tuple[str, int]:
    """(GPU series, GB of one GPU) of a GPU shape Gibbous prices; ("", 0) otherwise."""
    return next(
        ((series, gib) for pattern, series, gib in _GPU_SERIES if pattern.fullmatch(shape)),
        ("", 0),
    )


def flex_sizes(spec: ShapeSpec) -> list[tuple[int, int]]:
    """The (OCPUs, GB) sizes of a Flex shape the catalog lists, within its ranges."""
    low, high = spec.ocpu_range
    memory_low, memory_high = spec.memory_range
    per_low, per_high = spec.per_ocpu_range
    sizes = []
    for ocpus in FLEX_OCPUS:
        if (low and ocpus < low) or (high and ocpus > high):
            continue
        for per in FLEX_GB_PER_OCPU:
            gb = ocpus * per
            if (per_low and per < per_low) or (per_high and per > per_high):
                continue
            if (memory_low and gb < memory_low) or (memory_high and gb > memory_high):
                continue
            sizes.append((ocpus, gb))
    return sizes


def live_catalog(
    region: str,
    *,
    specs: Mapping[str, ShapeSpec],
    prices: Mapping[tuple[str, str], float],
    builtin: Iterable[InstanceType],
    date: str,
) -> list[InstanceType]:
    """The region's catalog from ListShapes and the price list. The built-in row of a name,
    when there is one, gives what the APIs do not (zones, max pods, GPU memory); a listed
    shape the price list does not price keeps its built-in rows."""
    known = {t.name: t for t in builtin if t.cloud == "oci" and t.region == region}
    rows: list[InstanceType] = []

    def add(name: str, ocpus: float, gb: float, spec: ShapeSpec, price: float) -> None:
        old = known.get(name)
        per_ocpu = 1 if spec.arch == "arm64" else 2
        gpu_memory = gpu_series(spec.name)[1] * spec.gpus * GIB
        rows.append(
            InstanceType(
                cloud="oci",
                region=region,
                name=name,
                family=family_of("oci", name),
                vcpu=float(ocpus * per_ocpu),
                memory_bytes=int(gb * GIB),
                gpu_count=spec.gpus,
                gpu_sku=spec.gpu_sku,
                gpu_memory_bytes=gpu_memory or (old.gpu_memory_bytes if old else 0),
                arch=spec.arch,
                on_demand_price=round(price, 6),
                spot_price=old.spot_price if old is not None else None,
                zones=old.zones if old is not None else (),
                max_pods=old.max_pods if old is not None else None,
                price_date=date,
            )
        )

    for name in sorted(specs):
        spec = specs[name]
        gpu, _ = gpu_series(name)
        if spec.gpus and gpu:
            if (gpu, "gpu") in prices:
                add(name, spec.ocpus, spec.memory_gb, spec, spec.gpus * prices[(gpu, "gpu")])
            continue
        series = standard_series(name)
        ocpu_price, gb_price = prices.get((series, "ocpu")), prices.get((series, "memory"))
        if spec.gpus or not series or ocpu_price is None or gb_price is None:
            continue
        if not spec.flexible:
            add(
                name,
                spec.ocpus,
                spec.memory_gb,
                spec,
                spec.ocpus * ocpu_price + spec.memory_gb * gb_price,
            )
            continue
        for ocpus, gb in flex_sizes(spec):
            add(f"{name}-{ocpus}-{gb}", ocpus, gb, spec, ocpus * ocpu_price + gb * gb_price)
    # A shape ListShapes lists but no known part prices (a part number Gibbous does not know,
    # or a price missing from the list) keeps its built-in rows, with their own date: it is
    # sold here, and the built-in price is the best one known.
    priced = {r.name for r in rows}
    for name in sorted(known):
        if base_shape(name) in specs and name not in priced:
            rows.append(known[name])
    return rows


def base_shape(name: str) -> str:
    """`VM.Standard.E4.Flex-4-32` -> `VM.Standard.E4.Flex`; other names as they are."""
    return re.sub(r"-\d+(\.\d+)?-\d+$", "", name) if ".Flex-" in name else name


def read_catalog_document(text: str, region: str) -> tuple[float, list[InstanceType]]:
    """A kept OCI catalog (`keptcatalog.read_kept_catalog`)."""
    return read_kept_catalog(text, "oci", region)
