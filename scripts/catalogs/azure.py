"""Azure rows of the built-in catalog: every public region with a published price.

Sources (vendored in data/ by `azure.py --vendor ASPIRE_CS KARPENTER_GO LOCATIONS_JSON`, so the
generation runs offline; every row names its own in `source`):
  aspire-2026-06-23    microsoft/aspire src/Aspire.Hosting.Azure.Kubernetes/
                       AksNodeVmSizes.Generated.cs: every AKS-compatible size of the public cloud
                       with its Resource SKU capabilities vCPUs, MemoryGB and GPUs (MIT licence)
  karpenter-azure-2026-06-18
                       Azure/karpenter-provider-azure pkg/providers/pricing/zz_generated.pricing.go:
                       pay-as-you-go Linux prices per region from the Retail Prices API (Apache-2.0)
  zones                the same repository's pkg/fake/locations.json (an ARM Locations response):
                       which regions have availability zones (AKS labels a node `<region>-<n>`)
  post-PNN, list-2025, libcloud-2025-03-02
                       the eastus rows of the earlier catalog, kept as they were (see SOURCES.md)

Left out: sizes with constrained vCPUs (`M128-32ms`), confidential (DC/EC/NCC), HPC (H*),
storage (L*), FPGA (NP), AMD and fractional GPUs (NV*as_v4, MI300X, V710, NV6/12/18ads_A10_v5,
NC*ads_A10_v4, RTX PRO 6000 `_xl`), promotional sizes, GPU sizes whose GPU model is not known
here, and any price the Retail table lists above its series' per-vCPU rate (see `_linear_ok`).
Sovereign clouds (Azure Government, Azure China) are out: separate clouds, accounts and prices.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = HERE / "data" / "azure-aks-sizes.json"
PRICES = HERE / "data" / "azure-prices.json.gz"
ZONES = HERE / "data" / "azure-zones.json"
OLD_EASTUS = HERE / "data" / "azure-eastus-2025.csv"
SIZES_SOURCE = "aspire-2026-06-23"
PRICE_SOURCE, PRICE_DATE = "karpenter-azure-2026-06-18", "2026-06-18"

EXCLUDED = re.compile(
    r"^Standard_(DC|EC|NCC|H|L|NP|NG|NV\d+as_v4|NV(6|12|18)ads_A10_v5|NC\d+ads_A10_v4)"
    r"|-|Promo|MI300X|V710|_xl_|^Basic_"
)
# GPU model and GiB of GPU memory per GPU, by the size's name (Azure's GPU size pages).
GPU_MODELS = [
    (re.compile(r"_T4_v3$"), "T4", 16),
    (re.compile(r"^Standard_NV(36|72)ad(m)?s_A10_v5$"), "A10", 24),
    (re.compile(r"^Standard_NC\d+ads_A100_v4$"), "A100", 80),
    (re.compile(r"^Standard_ND96amsr_A100_v4$"), "A100", 80),
    (re.compile(r"^Standard_ND96asr_v4$"), "A100", 40),
    (re.compile(r"^Standard_NC\d+adi?s_H100_v5$"), "H100", 94),
    (re.compile(r"^Standard_ND96isr_H100_v5$"), "H100", 80),
    (re.compile(r"^Standard_ND96isr_H200_v5$"), "H200", 141),
    (re.compile(r"^Standard_NC\d+r?s_v3$"), "V100", 16),
    (re.compile(r"^Standard_ND40rs_v2$"), "V100", 32),
]
# Azure's naming convention: a `p` among the additive features marks an Arm (Ampere/Cobalt) size.
ARM = re.compile(r"^Standard_[A-Z]+\d+[a-z]*p[a-z]*_")
# Series whose price is a fixed rate per vCPU (general purpose, compute and memory v3 to v6).
LINEAR = re.compile(r"^Standard_[DEF]\d+[a-z]*_v[3-6]$")
# The AKS node's max pods: Azure CNI's default per node, as the earlier catalog had.
MAX_PODS = 250


def gpu_model(name: str) -> tuple[str, int] | None:
    for pattern, model, memory in GPU_MODELS:
        if pattern.search(name):
            return model, memory
    return None


def _series(name: str) -> str:
    return re.sub(r"^(Standard_[A-Z]+)\d+", r"\1#", name)


def _linear_ok(prices: dict[str, float], sizes: dict[str, list[float]]) -> set[str]:
    """Sizes of linear series whose price is within 2% of their series' lowest $/vCPU in the
    region. The Retail table behind Karpenter's list carries some sizes at a Windows meter's
    price (eastus E4as_v5 $0.41 where E2as_v5 is $0.113 and E16as_v5 $0.904); those are left out.
    """
    rates: dict[str, float] = {}
    for name, price in prices.items():
        if LINEAR.match(name) and name in sizes:
            rate = price / sizes[name][0]
            rates[_series(name)] = min(rate, rates.get(_series(name), rate))
    return {
        name
        for name, price in prices.items()
        if LINEAR.match(name)
        and name in sizes
        and price <= rates[_series(name)] * sizes[name][0] * 1.02
    }


def _old_eastus() -> dict[str, dict[str, str]]:
    with OLD_EASTUS.open(newline="") as handle:
        return {row["instance_type"]: row for row in csv.DictReader(handle)}


def _kept(row: dict[str, str], spec: list[float], zones: str) -> dict[str, object]:
    """An earlier eastus row as it was, but with the Resource SKU's memory where the earlier
    hand-entered figure was wrong (D64ps_v5 and E32ps_v5 have 208 GiB, not 256)."""
    kept: dict[str, object] = {**row, "zones": zones}
    if float(row["memory_gib"]) != spec[1]:
        kept["memory_gib"] = spec[1]
    return kept


def rows() -> list[dict[str, object]]:
    sizes: dict[str, list[float]] = json.loads(SIZES.read_text())["sizes"]
    with gzip.open(PRICES, "rt") as handle:
        prices: dict[str, dict[str, float]] = json.load(handle)["prices"]
    zones: dict[str, list[str]] = json.loads(ZONES.read_text())["zones"]
    old = _old_eastus()
    out: list[dict[str, object]] = []
    for region in sorted(prices):
        listed = {n: p for n, p in prices[region].items() if p > 0 and n in sizes}
        linear_ok = _linear_ok(listed, sizes)
        region_zones = ";".join(f"{region}-{z}" for z in zones.get(region, []))
        for name in sorted(listed):
            if region == "eastus" and name in old:
                out.append(_kept(old[name], sizes[name], region_zones))
                continue
            if EXCLUDED.search(name) or (LINEAR.match(name) and name not in linear_ok):
                continue
            vcpu, memory, gpus = sizes[name]
            model = gpu_model(name) if gpus else None
            if gpus and model is None:
                continue
            out.append(
                {
                    "cloud": "azure",
                    "region": region,
                    "instance_type": name,
                    "vcpu": int(vcpu),
                    "memory_gib": memory,
                    "gpu_count": int(gpus),
                    "gpu_sku": model[0] if model else "",
                    "arch": "arm64" if ARM.match(name) else "amd64",
                    "on_demand_usd_per_hour": round(listed[name], 4),
                    "spot_usd_per_hour": "",
                    "zones": region_zones,
                    "gpu_memory_gib": model[1] * int(gpus) if model else "",
                    "max_pods": MAX_PODS,
                    "price_date": PRICE_DATE,
                    "source": f"{PRICE_SOURCE}; specs {SIZES_SOURCE}",
                }
            )
        if region == "eastus":
            # Earlier eastus rows the Retail table has no Linux price for: kept as they were.
            kept = {str(r["instance_type"]) for r in out if r["region"] == "eastus"}
            for name, row in old.items():
                if name not in kept and name in sizes:
                    out.append(_kept(row, sizes[name], region_zones))
    return out


# --- vendoring (run once per refresh of the sources) -------------------------------------------

SIZE_LINE = re.compile(
    r"/// (Standard_\S+) — ([\d.]+) vCPUs — ([\d.]+) GB RAM(?: — (\d+) GPU\(s\))?"
)


def vendor(aspire_cs: Path, karpenter_go: Path, locations_json: Path) -> None:
    sizes = {
        m.group(1): [float(m.group(2)), float(m.group(3)), int(m.group(4) or 0)]
        for m in SIZE_LINE.finditer(aspire_cs.read_text())
    }
    SIZES.write_text(
        json.dumps(
            {
                "source": "github.com/microsoft/aspire src/Aspire.Hosting.Azure.Kubernetes/AksNodeVmSizes.Generated.cs (2026-06-23): [vCPUs, MemoryGB, GPUs]",
                "sizes": dict(sorted(sizes.items())),
            },
            indent=0,
        )
        + "\n"
    )
    prices: dict[str, dict[str, float]] = {}
    region = ""
    for line in karpenter_go.read_text().splitlines():
        if m := re.match(r'\s*initialOnDemandPrices\["(\w+)"\]', line):
            region = m.group(1)
            prices[region] = {}
        elif (
            (m := re.match(r'\s*"([^"]+)":\s*([0-9.]+),', line)) and region and m.group(1) in sizes
        ):
            prices[region][m.group(1)] = float(m.group(2))
    document = {
        "source": "github.com/Azure/karpenter-provider-azure pkg/providers/pricing/zz_generated.pricing.go (generated 2026-06-18T03:43:41Z), sizes of the AKS list only",
        "prices": prices,
    }
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        handle.write((json.dumps(document, sort_keys=True, indent=0) + "\n").encode())
    PRICES.write_bytes(buffer.getvalue())
    locations = json.loads(locations_json.read_text())
    zones = {
        entry["name"]: sorted(m["logicalZone"] for m in entry.get("availabilityZoneMappings") or [])
        for entry in locations
        if (entry.get("metadata") or {}).get("regionType") == "Physical"
    }
    ZONES.write_text(
        json.dumps(
            {
                "source": "github.com/Azure/karpenter-provider-azure pkg/fake/locations.json (ARM Locations response)",
                "zones": dict(sorted(zones.items())),
            },
            indent=0,
        )
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--vendor":
        vendor(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        print(f"{len(rows())} azure rows")
