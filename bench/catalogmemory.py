"""What the catalogs add to the autoscaler at each cloud's largest region (issue #30: at most
50 MB), measured by `python -m bench.scale --catalogs-only` (and at the end of a full run).

Per cloud, in a fresh process: the built-in catalog of its largest region (the region with
the most built-in rows), loaded as the autoscaler loads it; then the cloud's catalog APIs at
their real size, read page by page as the autoscaler's feed reads them (each page decoded
from its JSON text when it is read, as off the wire, and dropped after), parsed by the live
parsers (`gibbous/core/choice/{aws,gcp,azure,oci}live.py`), the live catalog built and kept
as the feed keeps it (the list, and its JSON document written once, `keptcatalog`).

The pages have the shapes the dev cluster's emulators answer (the recorded shapes, from the
SDK models: docs/clouds/*.md), fed the largest built-in region's rows; to reach the real
size each item is cloned under new names (a type's clones in every API that names it) up to
REAL_SIZE. The pages are made before the measurement starts: what is measured is what the
autoscaler holds, not the bench's generator.

Two numbers per cloud: resident memory added (RSS after / before, no tracing) and, in a
second fresh process, tracemalloc's retained and peak bytes (Python objects only).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gibbous.autoscaler.cloud.awscatalog import PRICE_FILTERS, PRODUCT_QUERIES
from gibbous.catalogs import builtin_catalog, builtin_regions, load_catalog
from gibbous.core.choice import awslive, azurelive, gcplive, ocilive
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.keptcatalog import catalog_document
from gibbous.devcluster.aws.catalogapis import CatalogApis as AwsCatalogApis
from gibbous.devcluster.azure.catalogapis import AzureCatalogApis
from gibbous.devcluster.gcp.catalogapis import CatalogApis as GcpCatalogApis
from gibbous.devcluster.oci.catalogapis import OciCatalogApis

CLOUDS = ("aws", "gcp", "azure", "oci")
# The APIs' sizes at each cloud's largest region, as far as public figures go (approximations,
# rounded up): AWS us-east-1 offers about 900 instance types over 6 zones (one Price List
# product each); a GCP region about 700 machine types a zone over 4 zones, and the Billing
# Catalog's Compute Engine service lists every region's SKUs at once (tens of thousands:
# 50,000 taken); Azure East US about 1,100 VM sizes with 4 meters each (Linux, Spot, Low
# Priority, Windows); OCI about 120 shapes and 800 price-list parts.
REAL_SIZE = {
    "aws": {"types": 900},
    "gcp": {"types": 700, "skus": 50_000},
    "azure": {"types": 1_100},
    "oci": {"types": 120, "parts": 800},
}
LIMIT_MB = 50.0


def largest_region(cloud: str) -> str:
    sizes = {region: len(builtin_catalog(cloud, region)) for region in builtin_regions(cloud)}
    return max(sorted(sizes), key=lambda region: sizes[region])


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """`value` with every string that is a key of `names` replaced (JSON strings inside
    strings too: the AWS Price List's items)."""
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str):
        if value in names:
            return names[value]
        if value.startswith("{"):
            return json.dumps(_renamed(json.loads(value), names))
    return value


def _cloned(items: list[Any], type_names: list[str], copies: int) -> list[Any]:
    """`items` and `copies - 1` clones of them, each clone's type names suffixed `-cN`."""
    out = list(items)
    for n in range(1, copies):
        names = {name: f"{name}-c{n}" for name in type_names}
        out += [_renamed(item, names) for item in items]
    return out


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _texts(pages: list[Any]) -> list[str]:
    return [json.dumps(page) for page in pages]


def _decoded(texts: list[str]) -> Iterator[Any]:
    for text in texts:
        yield json.loads(text)


def _copies(cloud: str, names: list[str]) -> int:
    return max(1, math.ceil(REAL_SIZE[cloud]["types"] / max(1, len(names))))


def aws_inputs(
    region: str, rows: list[InstanceType]
) -> Callable[[list[InstanceType]], list[InstanceType]]:

    api = AwsCatalogApis(region, rows)
    names = [t.name for t in rows]
    copies = _copies("aws", names)
    types = _cloned(
        [api.describe_instance_types([n], None, 100)["InstanceTypes"][0] for n in names],
        names,
        copies,
    )
    offers: list[Any] = []
    token: str | None = None
    while True:
        page = api.describe_instance_type_offerings("availability-zone", token, 1000)
        offers += page["InstanceTypeOfferings"]
        token = page.get("NextToken")
        if not token:
            break
    offers = _cloned(offers, names, copies)
    price_texts = []
    for query in PRODUCT_QUERIES:
        filters = [
            {"Type": "TERM_MATCH", "Field": name, "Value": value or region}
            for name, value in (*PRICE_FILTERS, *query)
        ]
        items: list[Any] = []
        token = None
        while True:
            request = {"ServiceCode": "AmazonEC2", "Filters": filters, "MaxResults": 100}
            if token:
                request["NextToken"] = token
            page = api.get_products(request)
            items += page["PriceList"]
            token = page.get("NextToken")
            if not token:
                break
        items = _cloned(items, names, copies)
        price_texts.append(
            _texts([{"FormatVersion": "aws_v1", "PriceList": c} for c in _chunks(items, 100)])
        )
    type_texts = _texts([{"InstanceTypes": c} for c in _chunks(types, 100)])
    offer_texts = _texts([{"InstanceTypeOfferings": c} for c in _chunks(offers, 1000)])

    def fetch(builtin: list[InstanceType]) -> list[InstanceType]:
        specs = awslive.parse_instance_types(_decoded(type_texts))
        zones = awslive.parse_offerings(_decoded(offer_texts))
        prices: dict[str, float] = {}
        for texts in price_texts:
            found = awslive.parse_price_list(_decoded(texts))
            prices.update({k: v for k, v in found.items() if k not in prices})
        return awslive.live_catalog(
            region, specs=specs, zones=zones, prices=prices, builtin=builtin, date="2026-12-06"
        )

    return fetch


def gcp_inputs(
    region: str, rows: list[InstanceType]
) -> Callable[[list[InstanceType]], list[InstanceType]]:

    api = GcpCatalogApis("bench", region, rows)
    names = sorted({t.machine_type for t in rows})
    copies = _copies("gcp", names)
    by_zone: dict[str, list[Any]] = {}
    token = ""
    while True:
        page = api.machine_types({"maxResults": ["500"], "pageToken": [token]})
        for zone, scoped in page["items"].items():
            by_zone.setdefault(zone, []).extend(scoped["machineTypes"])
        token = page.get("nextPageToken", "")
        if not token:
            break
    machine_pages = [
        {"kind": "compute#machineTypeAggregatedList", "items": {zone: {"machineTypes": chunk}}}
        for zone, machines in by_zone.items()
        for chunk in _chunks(_cloned(machines, names, copies), 500)
    ]
    accelerator_texts = _texts([api.accelerator_types({})])
    skus = api.skus("6F81-5844-456A", {"pageSize": ["5000"]})["skus"]
    # The Billing Catalog lists every region's SKUs: the others are this region's under
    # other region names, read and discarded by the parser.
    others = [f"bench-region{n}" for n in range(math.ceil(REAL_SIZE["gcp"]["skus"] / len(skus)))]
    all_skus = list(skus)
    for other in others[1:]:
        all_skus += [_renamed(sku, {region: other}) for sku in skus]
    machine_texts = _texts(machine_pages)
    sku_texts = _texts([{"skus": c} for c in _chunks(all_skus, 5000)])

    def fetch(builtin: list[InstanceType]) -> list[InstanceType]:
        machines = gcplive.parse_machine_types(_decoded(machine_texts), region)
        accelerators = gcplive.parse_accelerator_types(_decoded(accelerator_texts), region)
        rates = gcplive.parse_skus(_decoded(sku_texts), region)
        return gcplive.live_catalog(
            region, machines=machines, accelerators=accelerators, rates=rates, date="2026-12-06"
        )

    return fetch


def azure_inputs(
    region: str, rows: list[InstanceType]
) -> Callable[[list[InstanceType]], list[InstanceType]]:

    api = AzureCatalogApis("bench", region, rows, sku_page=100_000, price_page=100_000)
    names = [t.name for t in rows]
    copies = _copies("azure", names)
    location = {"$filter": [f"location eq '{region}'"]}
    skus = _cloned(api.resource_skus(location, "https://bench")["value"], names, copies)
    items = _cloned(api.retail_prices(location, "https://bench")["Items"], names, copies)
    sku_texts = _texts([{"value": skus}])  # Resource SKUs answer in one page
    price_texts = _texts([{"Items": c, "Count": len(c)} for c in _chunks(items, 1000)])

    def fetch(builtin: list[InstanceType]) -> list[InstanceType]:
        specs = azurelive.parse_resource_skus(_decoded(sku_texts), region)
        on_demand, spot = azurelive.parse_retail_prices(_decoded(price_texts), region)
        return azurelive.live_catalog(
            region, specs=specs, on_demand=on_demand, spot=spot, builtin=builtin, date="2026-12-06"
        )

    return fetch


def oci_inputs(
    region: str, rows: list[InstanceType]
) -> Callable[[list[InstanceType]], list[InstanceType]]:

    api = OciCatalogApis(rows)
    shapes, _ = api.list_shapes({"compartmentId": ["bench"], "limit": ["1000"]})
    names = [str(s["shape"]) for s in shapes]
    shapes = _cloned(shapes, names, _copies("oci", names))
    items = api.price_list({})["items"]
    parts = [str(i["partNumber"]) for i in items]
    items = _cloned(items, parts, math.ceil(REAL_SIZE["oci"]["parts"] / len(items)))
    shape_texts = _texts(_chunks(shapes, 100))
    price_texts = _texts([{"items": items, "hasMore": False}])

    def fetch(builtin: list[InstanceType]) -> list[InstanceType]:
        specs = ocilive.parse_shapes(_decoded(shape_texts))
        prices = ocilive.parse_price_list(_decoded(price_texts))
        return ocilive.live_catalog(
            region, specs=specs, prices=prices, builtin=builtin, date="2026-12-06"
        )

    return fetch


INPUTS = {"aws": aws_inputs, "gcp": gcp_inputs, "azure": azure_inputs, "oci": oci_inputs}


def rss_bytes() -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_here(cloud: str, trace: bool) -> dict[str, Any]:
    """In this process: what loading and keeping the catalogs of `cloud` adds."""
    region = largest_region(cloud)
    fetch = INPUTS[cloud](region, builtin_catalog(cloud, region))
    gc.collect()
    if trace:
        tracemalloc.start()
    before = rss_bytes()
    started = time.perf_counter()
    builtin = load_catalog(None, cloud, region)
    live = fetch(builtin)
    document = catalog_document(live, region, time.time())  # the kept file, written once
    document_bytes = len(document)
    del document
    gc.collect()
    out: dict[str, Any] = {
        "cloud": cloud,
        "region": region,
        "builtin_types": len(builtin),
        "live_types": len(live),
        "kept_document_mb": document_bytes / 2**20,
        "seconds": time.perf_counter() - started,
    }
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        out |= {"traced_mb": current / 2**20, "traced_peak_mb": peak / 2**20}
    else:
        out["rss_added_mb"] = (rss_bytes() - before) / 2**20
    return out


def measure_all() -> list[dict[str, Any]]:
    """Each cloud in two fresh processes (RSS, then tracemalloc)."""
    results = []
    for cloud in CLOUDS:
        merged: dict[str, Any] = {}
        for mode in ("rss", "trace"):
            answer = subprocess.run(
                [sys.executable, "-m", "bench.catalogmemory", "--cloud", cloud, "--mode", mode],
                capture_output=True,
                text=True,
                check=True,
            )
            merged |= json.loads(answer.stdout.strip().splitlines()[-1])
        results.append(merged)
    return results


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'cloud':>6} {'region':>15} {'built-in':>9} {'live':>6} {'RSS MB':>7} "
        f"{'traced MB':>10} {'peak MB':>8} {'kept MB':>8}"
    )
    for r in results:
        print(
            f"{r['cloud']:>6} {r['region']:>15} {r['builtin_types']:>9} {r['live_types']:>6} "
            f"{r['rss_added_mb']:>7.1f} {r['traced_mb']:>10.1f} {r['traced_peak_mb']:>8.1f} "
            f"{r['kept_document_mb']:>8.2f}"
        )
    worst = max(max(r["rss_added_mb"], r["traced_peak_mb"]) for r in results)
    print(
        f"largest: {worst:.1f} MB (limit {LIMIT_MB:.0f} MB): {'met' if worst <= LIMIT_MB else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cloud", choices=CLOUDS)
    parser.add_argument("--mode", choices=("rss", "trace"), default="rss")
    args = parser.parse_args()
    if args.cloud:
        print(json.dumps(measure_here(args.cloud, args.mode == "trace")))
        return
    report(measure_all())


if __name__ == "__main__":
    main()
