"""GCP's built-in catalog: every public region (scripts/generate-catalogs.py calls `generate`).

us-central1 keeps the rows it had (libcloud rates and Elotl post prices: many tests and the
README's example depend on them); types it lacked and every other region come from:

  prices  cloudpilot-ai/karpenter-provider-gcp `initial-prices.json` (Apache-2.0), its
          scheduled refresh of 2026-08-03: per region, the on-demand $/hour of each machine
          type, GPUs included for A2/A3/G2 (built from Cloud Billing Catalog SKUs by
          gcloud-compute.com). A type is listed in a region only where it is priced there.
  zones   Cyclenerd/google-cloud-pricing-cost-calculator `tools/*.csv` (gcloud
          `compute machine-types list` / `accelerator-types list` / `zones list`, 2026-08-17):
          which zones offer each machine type and GPU, and each type's vCPUs and memory.
  N1+GPU  outside us-central1 no source gives the GPU's regional price: derived as the
          us-central1 GPU rate x (the region's n1-standard-8 price / us-central1's), marked
          `derived` in the row.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from catalogs.rows import row, source_file, write_gz

from gibbous.core.choice.n1gpus import n1_gpu_fits

PRICES_URL = (
    "https://raw.githubusercontent.com/cloudpilot-ai/karpenter-provider-gcp/"
    "417f047b117521aba6d3ab120dac538a92161bf4/pkg/providers/pricing/initial-prices.json"
)
PRICES_SOURCE = "karpenter-provider-gcp initial-prices.json (Cloud Billing Catalog)"
PRICES_DATE = "2026-08-03"
GCLOUD_URL = (
    "https://raw.githubusercontent.com/Cyclenerd/google-cloud-pricing-cost-calculator/"
    "dac31281f2a4575f0a8bff20ac04fc71a5ff2190/tools/{}.csv"
)
GCLOUD_DATE = "2026-08-17"
# Machine families built in (the rest of Compute Engine's families are left to the live catalog).
FAMILIES = (
    "c3d",
    "n4",
    "c4a",
    "e2",
    "n1",
    "n2",
    "n2d",
    "c2",
    "c2d",
    "c3",
    "t2a",
    "t2d",
    "m1",
    "m2",
    "m3",
    "a2",
    "a3",
    "g2",
)
# GiB per vCPU by shape, for the families the zone listing used predates (Compute Engine
# "General-purpose machine family": C3, C3D, N4 and C4A (Arm) standard 4, highmem 8, highcpu 2);
# their specs come from the name.
BY_NAME = ("c3", "c3d", "n4", "c4a")
NAME_GIB = {"standard": 4, "highmem": 8, "highcpu": 2}
# A3 (Compute Engine "Accelerator-optimized machine family", A3 High and A3 Mega):
# vCPUs and GiB by GPU count, 26 vCPUs and 234 GB per H100 80GB.
A3 = {
    "a3-highgpu-1g": 1,
    "a3-highgpu-2g": 2,
    "a3-highgpu-4g": 4,
    "a3-highgpu-8g": 8,
    "a3-megagpu-8g": 8,
}
# GPUs of the accelerator-optimized names (same page): SKU and GiB per GPU.
_GPU_NAMES = (
    (re.compile(r"a2-(?:highgpu|megagpu)-(\d+)g"), "A100", 40),
    (re.compile(r"a2-ultragpu-(\d+)g"), "A100", 80),
    (re.compile(r"a3-(?:highgpu|megagpu)-(\d+)g"), "H100", 80),
)
# G2: L4s by machine size (Compute Engine "G2 machine series").
G2 = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
# Accelerator-types listing names of the N1 GPUs.
N1_ACCELERATORS = {
    "T4": "nvidia-tesla-t4",
    "P4": "nvidia-tesla-p4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
}
US_CENTRAL1 = "us-central1"
# Regions the zone listing used has no zones for (opened to its project later): their zones
# from Compute Engine's "Regions and zones" table, a, b and c in each.
DOC_ZONES = {
    region: [f"{region}-{letter}" for letter in "abc"]
    for region in (
        "africa-south1",
        "asia-southeast3",
        "europe-north2",
        "europe-west10",
        "me-central2",
        "northamerica-south1",
    )
}


def _gcloud(name: str) -> list[dict[str, str]]:
    path = source_file(f"gcloud-{name}.csv", GCLOUD_URL.format(name))
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def _number(text: str) -> float:
    """A listing's number, whole ones as int (the CSV writes 4, not 4.0)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _gpus(name: str) -> tuple[int, str, int]:
    """(count, SKU, GiB per GPU) of a machine type's built-in GPUs."""
    for pattern, sku, gib in _GPU_NAMES:
        match = pattern.fullmatch(name)
        if match:
            return int(match.group(1)), sku, gib
    if name.startswith("g2-standard-"):
        return G2[int(name.rsplit("-", 1)[1])], "L4", 24
    return 0, "", 0


def _spec(name: str, listed: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    if name in listed:
        return listed[name]
    if name in A3:
        return 26 * A3[name], 234 * A3[name]
    match = re.fullmatch(r"([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)", name)  # not -metal
    if match and match.group(1) in BY_NAME:
        vcpus = int(match.group(3))
        return vcpus, vcpus * NAME_GIB[match.group(2)]
    return None


def _wanted(name: str) -> bool:
    family = name.split("-", 1)[0]
    if family not in FAMILIES or "lssd" in name or name in ("e2-micro", "e2-small"):
        return False
    return family != "n1" or not re.search(r"megamem|ultramem", name)


def all_regions(
    us_central1: list[dict[str, object]], n1_gpu_rates: dict[str, Any]
) -> list[dict[str, object]]:
    """Every public region's rows; `us_central1` are that region's existing rows, kept as
    they are."""
    prices = json.loads(source_file("gcp-initial-prices.json", PRICES_URL).read_text())["prices"]
    region_zones: dict[str, list[str]] = {}
    for zone in _gcloud("zones"):
        region_zones.setdefault(zone["REGION"], []).append(zone["NAME"])
    listed: dict[str, tuple[float, float]] = {}
    type_zones: dict[str, set[str]] = {}
    for entry in _gcloud("machinetypezone"):
        listed[entry["NAME"]] = (_number(entry["CPUS"]), _number(entry["MEMORY_GB"]))
        type_zones.setdefault(entry["NAME"], set()).add(entry["ZONE"])
    gpu_zones: dict[str, set[str]] = {}
    for entry in _gcloud("acceleratortypezone"):
        gpu_zones.setdefault(entry["NAME"], set()).add(entry["ZONE"])
    rows = list(us_central1)
    kept = {str(r["instance_type"]) for r in us_central1}
    base_n1 = prices[US_CENTRAL1]["on_demand"]["n1-standard-8"]
    for region in sorted(prices):
        zones = sorted(region_zones.get(region) or DOC_ZONES.get(region, []))
        on_demand: dict[str, float] = prices[region]["on_demand"]
        for name, price in sorted(on_demand.items()):
            if not _wanted(name) or (region == US_CENTRAL1 and name in kept):
                continue
            spec = _spec(name, listed)
            if spec is None or not price:
                continue
            offered = sorted(z for z in type_zones.get(name, ()) if z in zones)
            source = f"{PRICES_SOURCE}; zones gcloud {GCLOUD_DATE}"
            if not offered:
                offered = zones
                source += " (type not in the zone listing: every zone of the region)"
            count, sku, gib = _gpus(name)
            rows.append(
                row(
                    "gcp",
                    region,
                    name,
                    spec[0],
                    spec[1],
                    price,
                    source,
                    PRICES_DATE,
                    gpus=count,
                    sku=sku,
                    arch="arm64" if name.startswith(("t2a-", "c4a-")) else "amd64",
                    zones=";".join(offered),
                    gpu_mem=count * gib if count else "",
                )
            )
        if region != US_CENTRAL1 and "n1-standard-8" in on_demand:
            rows += _n1_gpu_rows(
                region,
                on_demand,
                on_demand["n1-standard-8"] / base_n1,
                n1_gpu_rates,
                type_zones,
                gpu_zones,
            )
    return rows


def _n1_gpu_rows(
    region: str,
    on_demand: dict[str, float],
    ratio: float,
    n1_gpu_rates: dict[str, Any],
    type_zones: dict[str, set[str]],
    gpu_zones: dict[str, set[str]],
) -> list[dict[str, object]]:
    """N1 + GPU rows (as us-central1's: `n1-standard-32+t4x2`) where the region's zones offer
    the GPU; the GPU's price derived from us-central1's by the region's N1 price ratio."""
    rows = []
    for sku, (gpu_price, gpu_mem, counts) in n1_gpu_rates.items():
        for kind, gib in (("standard", 3.75), ("highmem", 6.5)):
            for size in (4, 8, 16, 32, 64, 96):
                machine = f"n1-{kind}-{size}"
                zones = sorted(
                    z
                    for z in gpu_zones.get(N1_ACCELERATORS[sku], ())
                    if z.startswith(f"{region}-") and z in type_zones.get(machine, ())
                )
                if machine not in on_demand or not zones:
                    continue
                for count in counts:
                    if not n1_gpu_fits(sku, count, size, size * gib) or (size < 8 and count > 2):
                        continue
                    rows.append(
                        row(
                            "gcp",
                            region,
                            f"{machine}+{sku.lower()}x{count}",
                            size,
                            size * gib,
                            on_demand[machine] + count * gpu_price * ratio,
                            f"{PRICES_SOURCE} (N1) + derived (GPU: us-central1 list-2025 rate x "
                            f"the region's n1-standard-8 price ratio {ratio:.4f}); zones gcloud {GCLOUD_DATE}",
                            PRICES_DATE,
                            gpus=count,
                            sku=sku,
                            zones=";".join(zones),
                            gpu_mem=gpu_mem * count,
                        )
                    )
    return rows


def generate(out: Path, us_central1: list[dict[str, object]], n1_gpu_rates: dict[str, Any]) -> None:
    write_gz(out / "gcp.csv.gz", all_regions(us_central1, n1_gpu_rates))
