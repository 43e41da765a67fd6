"""AWS rows of the built-in catalog: every public commercial region (botocore's `aws` partition).

Sources, each row naming its own in `source`:
  libcloud-2025-03-02  apache-libcloud 3.9.1 pricing.json `ec2_linux`: on-demand Linux per region
  karpenter-2026-07-20 karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go
                       (us-east-1 on-demand, generated 2026-07-20), vendored in
                       data/karpenter-aws-us-east-1.json by `aws.py --vendor-karpenter FILE`
  moto-5.2.x           moto's EC2 instance types (vCPU, memory, GPUs, ENIs) and its per-region and
                       per-zone instance type offerings (which region and zone sells what)
  post-PNN             a us-west-2 price quoted in Elotl's blog post NN (shared/seeds)
  derived              a region without its own price for a type moto says it sells: the us-east-1
                       price x that region's median price ratio to us-east-1 over all types
                       libcloud prices in both (the rule and ratio are written in the row)

aws-cn, GovCloud and the ISO partitions are left out: they are separate partitions with their own
accounts and price lists (aws-cn in CNY), not public commercial regions.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import sys
from pathlib import Path

import botocore
import libcloud
import moto

HERE = Path(__file__).resolve().parent
LIBCLOUD = Path(libcloud.__file__).parent / "data" / "pricing.json"
LIBCLOUD_SOURCE, LIBCLOUD_DATE = "libcloud-2025-03-02", "2025-03-02"
KARPENTER = HERE / "data" / "karpenter-aws-us-east-1.json"
KARPENTER_SOURCE, KARPENTER_DATE = "karpenter-2026-07-20", "2026-07-20"
MOTO = Path(moto.__file__).parent / "ec2" / "resources"
MOTO_SOURCE = f"moto-{moto.__version__}"
ENDPOINTS = Path(botocore.__file__).parent / "data" / "endpoints.json"

FAMILIES = {
    # general purpose
    "t3",
    "t3a",
    "m5",
    "m5a",
    "m6i",
    "m6a",
    "m7i",
    "m7a",
    # compute
    "c5",
    "c5a",
    "c6i",
    "c6a",
    "c7i",
    "c7a",
    # memory
    "r5",
    "r5a",
    "r6i",
    "r6a",
    "r7i",
    "r7a",
    # high memory (x2iedn: 32 GiB per vCPU, x8g: Graviton4 16 GiB per vCPU; u-*: 3 to 32 TiB)
    "x2iedn",
    "x8g",
    # ARM (Graviton)
    "t4g",
    "m6g",
    "m7g",
    "c6g",
    "c7g",
    "r6g",
    "r7g",
    # NVIDIA GPU: T4, A10G, T4G, L4, L40S, V100, A100 40/80 GB, H100, H200, B200
    "g4dn",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "p3",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6-b200",
}
# High-memory families are named u-<N>tb1 and u7i(n)-<N>tb.
HIGH_MEMORY = re.compile(r"^u(7i|7in)?-\d+tb\d*$")
# Posts quote these newer us-west-2 prices than libcloud's 2025-03 snapshot.
POST_PRICES = {
    "p4d.24xlarge": (21.958, "post-P00", "2025-11-18"),
    "g6.8xlarge": (2.0144, "post-P04", "2025-09-25"),
    "g6.12xlarge": (4.6016, "post-P04", "2025-09-25"),
    "r5a.xlarge": (0.2260, "post-P04", "2025-09-25"),
    "g4dn.xlarge": (0.526, "post-P17", "2024-06-25"),
    "g4dn.12xlarge": (3.912, "post-P17", "2024-06-25"),
    "t3a.small": (0.0188, "post-P10", "2025-04-24"),
}
POST_REGION = "us-west-2"
# Retired from moto's data but named in the posts (P17: cheapest 2-GPU type, M60); us-west-2 only.
G3 = [
    ("g3s.xlarge", 4, 30.5, 1, "M60", 8),
    ("g3.4xlarge", 16, 122, 1, "M60", 8),
    ("g3.8xlarge", 32, 244, 2, "M60", 16),
    ("g3.16xlarge", 64, 488, 4, "M60", 32),
]


def public_regions() -> list[str]:
    """The `aws` partition's regions in botocore's endpoints.json (no aws-cn, GovCloud, ISO)."""
    partitions = json.loads(ENDPOINTS.read_text())["partitions"]
    return sorted(next(p for p in partitions if p["partition"] == "aws")["regions"])


def wanted(name: str) -> bool:
    family = name.partition(".")[0]
    return family in FAMILIES or bool(HIGH_MEMORY.match(family))


def _offerings(kind: str, region: str) -> dict[str, list[str]] | None:
    """Instance type -> locations (the region, or its zones) from moto; None: moto lacks it."""
    path = MOTO / "instance_type_offerings" / kind / f"{region}.json.gz"
    if not path.exists():
        return None
    out: dict[str, list[str]] = {}
    with gzip.open(path) as handle:
        for offer in json.load(handle):
            out.setdefault(offer["InstanceType"], []).append(offer["Location"])
    return out


def region_ratios(prices: dict[str, dict[str, float]], regions: list[str]) -> dict[str, float]:
    """Each region's median price ratio to us-east-1 over every type libcloud prices in both."""
    ratios = {}
    for region in regions:
        pairs = [
            by_region[region] / by_region["us-east-1"]
            for by_region in prices.values()
            if by_region.get(region) and by_region.get("us-east-1")
        ]
        if pairs:
            ratios[region] = round(statistics.median(pairs), 4)
    return ratios


def _row(
    region: str, name: str, spec: dict, zones: list[str], price: float, source: str, date: str
) -> dict[str, object]:
    gpu_info = spec.get("GpuInfo") or {}
    gpus = gpu_info.get("Gpus") or []
    network = spec["NetworkInfo"]
    # EKS's default max pods without prefix delegation: ENIs x (IPs per ENI - 1) + 2.
    max_pods = network["MaximumNetworkInterfaces"] * (network["Ipv4AddressesPerInterface"] - 1) + 2
    arch = "arm64" if "arm64" in spec["ProcessorInfo"]["SupportedArchitectures"] else "amd64"
    return {
        "cloud": "aws",
        "region": region,
        "instance_type": name,
        "vcpu": spec["VCpuInfo"]["DefaultVCpus"],
        "memory_gib": round(spec["MemoryInfo"]["SizeInMiB"] / 1024, 3),
        "gpu_count": sum(g["Count"] for g in gpus),
        "gpu_sku": gpus[0]["Name"] if gpus else "",
        "arch": arch,
        "on_demand_usd_per_hour": round(price, 4),
        "spot_usd_per_hour": "",
        "zones": ";".join(sorted(zones)),
        "gpu_memory_gib": round(gpu_info.get("TotalGpuMemoryInMiB", 0) / 1024) if gpus else "",
        "max_pods": min(max_pods, 250),
        "price_date": date,
        "source": f"{source}; specs {MOTO_SOURCE}",
    }


def _price(
    name: str,
    region: str,
    prices: dict[str, dict[str, float]],
    karpenter: dict[str, float],
    ratios: dict[str, float],
) -> tuple[float, str, str] | None:
    if region == POST_REGION and name in POST_PRICES:
        return POST_PRICES[name]
    if region == "us-east-1" and karpenter.get(name):
        return karpenter[name], KARPENTER_SOURCE, KARPENTER_DATE
    if prices.get(name, {}).get(region):
        return prices[name][region], LIBCLOUD_SOURCE, LIBCLOUD_DATE
    # libcloud's us-east-1 price first: the same snapshot as the region's other prices.
    if prices.get(name, {}).get("us-east-1"):
        base, origin, date = prices[name]["us-east-1"], LIBCLOUD_SOURCE, LIBCLOUD_DATE
    elif karpenter.get(name):
        base, origin, date = karpenter[name], KARPENTER_SOURCE, KARPENTER_DATE
    else:
        return None
    if region not in ratios:
        return None
    ratio = ratios[region]
    rule = (
        f"derived: us-east-1 {origin} x {ratio} ({region}'s median ratio to us-east-1 in libcloud)"
    )
    return base * ratio, rule, date


def rows() -> list[dict[str, object]]:
    prices: dict[str, dict[str, float]] = json.loads(LIBCLOUD.read_text())["compute"]["ec2_linux"]
    karpenter: dict[str, float] = json.loads(KARPENTER.read_text())["prices"]
    with gzip.open(MOTO / "instance_types.json.gz") as handle:
        types = json.load(handle)
    regions = public_regions()
    ratios = region_ratios(prices, regions)
    out = []
    for region in regions:
        sold = _offerings("region", region)
        zones = _offerings("availability-zone", region) or {}
        for name in sorted(types):
            spec = types[name]
            if not wanted(name):
                continue
            gpus = (spec.get("GpuInfo") or {}).get("Gpus") or []
            if gpus and gpus[0].get("Manufacturer") != "NVIDIA":
                continue  # only NVIDIA GPUs are nvidia.com/gpu
            if sold is not None and name not in sold:
                continue
            # Where moto has no offerings for the region, a price in it is the evidence it sells.
            found = (
                _price(name, region, prices, karpenter, ratios)
                if sold is not None
                else (
                    (prices[name][region], LIBCLOUD_SOURCE, LIBCLOUD_DATE)
                    if prices.get(name, {}).get(region)
                    else None
                )
            )
            if found is None:
                continue
            price, source, date = found
            out.append(_row(region, name, spec, zones.get(name, []), price, source, date))
        if region == POST_REGION:
            out.extend(_g3_rows(prices, region))
    return out


def _g3_rows(prices: dict[str, dict[str, float]], region: str) -> list[dict[str, object]]:
    return [
        {
            "cloud": "aws",
            "region": region,
            "instance_type": name,
            "vcpu": vcpu,
            "memory_gib": mem,
            "gpu_count": count,
            "gpu_sku": sku,
            "arch": "amd64",
            "on_demand_usd_per_hour": round(prices[name][region], 4),
            "spot_usd_per_hour": "",
            "zones": "",
            "gpu_memory_gib": gpu_mem,
            "max_pods": 234,
            "price_date": LIBCLOUD_DATE,
            "source": f"{LIBCLOUD_SOURCE}; specs AWS docs",
        }
        for name, vcpu, mem, count, sku, gpu_mem in G3
    ]


def vendor_karpenter(go_file: Path) -> None:
    """Extract karpenter-provider-aws's generated us-east-1 prices into data/ (JSON)."""
    text = go_file.read_text()
    stamp = re.search(r"generated at (\S+) for (\S+)", text)
    assert stamp and stamp.group(2) == "us-east-1", "expected the us-east-1 generated file"
    prices = {name: float(value) for name, value in re.findall(r'"([a-z0-9.-]+)": ([0-9.]+)', text)}
    document = {
        "source": "github.com/aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go",
        "generated": stamp.group(1),
        "region": "us-east-1",
        "prices": {name: prices[name] for name in sorted(prices) if wanted(name)},
    }
    KARPENTER.write_text(json.dumps(document, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--vendor-karpenter":
        vendor_karpenter(Path(sys.argv[2]))
    else:
        print(f"{len(rows())} aws rows")
