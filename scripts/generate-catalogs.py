#!/usr/bin/env python3
"""Regenerate the built-in catalogs in gibbous/catalogs/ from offline sources.

Needs the dev extras (apache-libcloud, moto). Every row records its source:
  libcloud-2025-03-02  apache-libcloud 3.9.1 bundled pricing.json (updated 2025-03-02)
  moto-5.2.5           moto's EC2 instance-type data (vCPU, memory, GPUs, ENIs, AZs)
  post-PNN             a price quoted in Elotl's blog post NN (shared/seeds), newer than libcloud
  list-2025            public list price (on-demand, Linux), entered by hand; verify before relying on it
GCP's and OCI's other regions: scripts/catalogs/gcp.py and oci.py (their sources in their docstrings;
downloaded once into $GIBBOUS_CATALOG_SOURCES).
Run: .venv/bin/python scripts/generate-catalogs.py
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import libcloud
import moto
from catalogs import gcp as gcp_regions
from catalogs import oci as oci_regions

from gibbous.core.choice.catalog import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from gibbous.core.choice.n1gpus import n1_gpu_fits

OUT = Path(__file__).resolve().parent.parent / "gibbous" / "catalogs"
LIBCLOUD = Path(libcloud.__file__).parent / "data" / "pricing.json"
MOTO = Path(moto.__file__).parent / "ec2" / "resources"
HEADER = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
LIBCLOUD_DATE = "2025-03-02"


def write(cloud: str, rows: list[dict[str, object]]) -> None:
    rows.sort(key=lambda r: str(r["instance_type"]))
    with (OUT / f"{cloud}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HEADER})
    print(f"{cloud}: {len(rows)} types")


def row(
    cloud,
    region,
    name,
    vcpu,
    mem,
    price,
    source,
    date,
    *,
    gpus=0,
    sku="",
    arch="amd64",
    zones="",
    gpu_mem="",
    max_pods="",
) -> dict[str, object]:
    return {
        "cloud": cloud,
        "region": region,
        "instance_type": name,
        "vcpu": vcpu,
        "memory_gib": round(mem, 3),
        "gpu_count": gpus,
        "gpu_sku": sku,
        "arch": arch,
        "on_demand_usd_per_hour": round(price, 4),
        "spot_usd_per_hour": "",
        "zones": zones,
        "gpu_memory_gib": gpu_mem,
        "max_pods": max_pods,
        "price_date": date,
        "source": source,
    }


# --- AWS -----------------------------------------------------------------------------

AWS_REGION = "us-west-2"
AWS_FAMILIES = {
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
    # ARM (Graviton)
    "t4g",
    "m6g",
    "m7g",
    "c6g",
    "c7g",
    "r6g",
    "r7g",
    # NVIDIA GPU
    "g4dn",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "p3",
    "p4d",
    "p5",
}
# Posts quote these newer prices than libcloud's 2025-03 snapshot (p4d was cut mid-2025).
AWS_POST_PRICES = {
    "p4d.24xlarge": (21.958, "post-P00", "2025-11-18"),
    "g6.8xlarge": (2.0144, "post-P04", "2025-09-25"),
    "g6.12xlarge": (4.6016, "post-P04", "2025-09-25"),
    "r5a.xlarge": (0.2260, "post-P04", "2025-09-25"),
    "g4dn.xlarge": (0.526, "post-P17", "2024-06-25"),
    "g4dn.12xlarge": (3.912, "post-P17", "2024-06-25"),
    "t3a.small": (0.0188, "post-P10", "2025-04-24"),
}
# Retired from moto's data but named in the posts (P17: cheapest 2-GPU type, M60).
AWS_MANUAL = [
    ("g3s.xlarge", 4, 30.5, 1, "M60", 8),
    ("g3.4xlarge", 16, 122, 1, "M60", 8),
    ("g3.8xlarge", 32, 244, 2, "M60", 16),
    ("g3.16xlarge", 64, 488, 4, "M60", 32),
]


def aws() -> None:
    prices = json.loads(LIBCLOUD.read_text())["compute"]["ec2_linux"]
    with gzip.open(MOTO / "instance_types.json.gz") as handle:
        types = json.load(handle)
    zones: dict[str, list[str]] = {}
    offers_path = MOTO / "instance_type_offerings" / "availability-zone" / f"{AWS_REGION}.json.gz"
    with gzip.open(offers_path) as handle:
        offerings = json.load(handle)
    for offer in offerings:
        zones.setdefault(offer["InstanceType"], []).append(offer["Location"])
    rows = []
    for name, spec in types.items():
        family, _, size = name.partition(".")
        if family not in AWS_FAMILIES or "metal" in size:
            continue
        gpu_info = spec.get("GpuInfo") or {}
        gpus = gpu_info.get("Gpus") or []
        if gpus and gpus[0].get("Manufacturer") != "NVIDIA":
            continue  # only NVIDIA GPUs are nvidia.com/gpu
        price = prices.get(name, {}).get(AWS_REGION) or 0.0
        source, date = "libcloud-2025-03-02", LIBCLOUD_DATE
        if name in AWS_POST_PRICES:
            price, source, date = AWS_POST_PRICES[name]
        if not price:
            price = prices.get(name, {}).get("us-east-1") or 0.0
            source = "libcloud-2025-03-02 (us-east-1 price)"
        if not price:
            continue
        network = spec["NetworkInfo"]
        # EKS's default max pods without prefix delegation: ENIs x (IPs per ENI - 1) + 2.
        max_pods = (
            network["MaximumNetworkInterfaces"] * (network["Ipv4AddressesPerInterface"] - 1) + 2
        )
        arch = "arm64" if "arm64" in spec["ProcessorInfo"]["SupportedArchitectures"] else "amd64"
        count = sum(g["Count"] for g in gpus)
        rows.append(
            row(
                "aws",
                AWS_REGION,
                name,
                spec["VCpuInfo"]["DefaultVCpus"],
                spec["MemoryInfo"]["SizeInMiB"] / 1024,
                price,
                source + "; specs moto-5.2.5",
                date,
                gpus=count,
                sku=gpus[0]["Name"] if gpus else "",
                arch=arch,
                zones=";".join(sorted(zones.get(name, []))),
                gpu_mem=round(gpu_info.get("TotalGpuMemoryInMiB", 0) / 1024) if gpus else "",
                max_pods=min(max_pods, 250),
            )
        )
    for name, vcpu, mem, count, sku, gpu_mem in AWS_MANUAL:
        price = prices[name][AWS_REGION]
        rows.append(
            row(
                "aws",
                AWS_REGION,
                name,
                vcpu,
                mem,
                price,
                "libcloud-2025-03-02; specs AWS docs",
                LIBCLOUD_DATE,
                gpus=count,
                sku=sku,
                gpu_mem=gpu_mem,
                max_pods=234,
            )
        )
    write("aws", rows)


# --- GCP -----------------------------------------------------------------------------

GCP_REGION = "us-central1"
GCP_ZONES = "us-central1-a;us-central1-b;us-central1-c;us-central1-f"
# AKS labels a zonal node `<region>-<zone number>` (cloud-provider-azure, "Use Availability
# Zones": "For zoned nodes, the value is <region>-<AZ>, e.g. centralus-1"); East US has zones
# 1, 2 and 3 (learn.microsoft.com/azure/reliability/regions-list). Which sizes each zone
# offers is not modelled: every size gets every zone.
AZURE_ZONES = "eastus-1;eastus-2;eastus-3"
# GiB per vCPU for the predefined shapes.
GCP_SHAPES = {
    "e2": {
        "standard": (4, [2, 4, 8, 16, 32]),
        "highmem": (8, [2, 4, 8, 16]),
        "highcpu": (1, [2, 4, 8, 16, 32]),
    },
    "n1": {
        "standard": (3.75, [1, 2, 4, 8, 16, 32, 64, 96]),
        "highmem": (6.5, [2, 4, 8, 16, 32, 64, 96]),
        "highcpu": (0.9, [2, 4, 8, 16, 32, 64, 96]),
    },
    "n2": {
        "standard": (4, [2, 4, 8, 16, 32, 48, 64, 80]),
        "highmem": (8, [2, 4, 8, 16, 32, 48, 64, 80]),
        "highcpu": (1, [2, 4, 8, 16, 32, 48, 64, 80]),
    },
    "n2d": {
        "standard": (4, [2, 4, 8, 16, 32, 48, 64, 96]),
        "highmem": (8, [2, 4, 8, 16, 32, 48, 64, 96]),
        "highcpu": (1, [2, 4, 8, 16, 32, 48, 64, 96]),
    },
    "c2": {"standard": (4, [4, 8, 16, 30, 60])},
}
# Families libcloud lacks: (per-vCPU, per-GiB) us-central1 list rates, entered by hand.
GCP_MANUAL_RATES = {
    "c2d": (
        0.029563,
        0.003959,
        {
            "standard": (4, [2, 4, 8, 16, 32, 56, 112]),
            "highcpu": (2, [2, 4, 8, 16, 32, 56, 112]),
            "highmem": (8, [2, 4, 8, 16, 32, 56, 112]),
        },
    ),
    "t2a": (0.0275, 0.0035, {"standard": (4, [1, 2, 4, 8, 16, 32, 48])}),  # Arm (Ampere Altra)
}
# Accelerators attachable to N1, us-central1 $/GPU-hr (list-2025): T4, P4, V100, P100.
GCP_N1_GPUS = {
    "T4": (0.35, 16, [1, 2, 4]),
    "P4": (0.60, 8, [1, 2, 4]),
    "V100": (2.48, 16, [1, 2, 4, 8]),
    "P100": (1.46, 16, [1, 2, 4]),
}
# G2 (L4): post-P04 prices solve to $0.0366954 per (vCPU + 4GiB) and $0.560055 per L4.
G2 = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}


def gcp() -> None:
    rates = json.loads(LIBCLOUD.read_text())["compute"]["gce_instances"]
    rows = []

    def add_shapes(
        family: str,
        cpu_rate: float,
        ram_rate: float,
        shapes: dict[str, tuple[float, list[int]]],
        source: str,
        date: str,
        arch: str = "amd64",
    ) -> None:
        for kind, (gib_per_cpu, sizes) in shapes.items():
            for size in sizes:
                mem = size * gib_per_cpu
                price = size * cpu_rate + mem * ram_rate
                rows.append(
                    row(
                        "gcp",
                        GCP_REGION,
                        f"{family}-{kind}-{size}",
                        size,
                        mem,
                        price,
                        source,
                        date,
                        arch=arch,
                        zones=GCP_ZONES,
                    )
                )

    for family, shapes in GCP_SHAPES.items():
        cpu = rates[family]["cpu"]["on_demand"][GCP_REGION]["price"]
        ram = rates[family]["ram"]["on_demand"][GCP_REGION]["price"]
        add_shapes(
            family, cpu, ram, shapes, "libcloud-2025-03-02 (per-vCPU/GiB rates)", LIBCLOUD_DATE
        )
    for family, (cpu, ram, shapes) in GCP_MANUAL_RATES.items():
        add_shapes(
            family,
            cpu,
            ram,
            shapes,
            "list-2025 (per-vCPU/GiB rates)",
            "2025",
            arch="arm64" if family == "t2a" else "amd64",
        )
    # e2-medium: 2 shared vCPUs billed as one, 4GiB.
    e2 = rates["e2"]
    rows.append(
        row(
            "gcp",
            GCP_REGION,
            "e2-medium",
            2,
            4,
            e2["cpu"]["on_demand"][GCP_REGION]["price"]
            + 4 * e2["ram"]["on_demand"][GCP_REGION]["price"],
            "libcloud-2025-03-02 (per-vCPU/GiB rates)",
            LIBCLOUD_DATE,
            zones=GCP_ZONES,
        )
    )
    n1_cpu = rates["n1"]["cpu"]["on_demand"][GCP_REGION]["price"]
    n1_ram = rates["n1"]["ram"]["on_demand"][GCP_REGION]["price"]
    for sku, (gpu_price, gpu_mem, counts) in GCP_N1_GPUS.items():
        for kind, gib in (("standard", 3.75), ("highmem", 6.5)):
            for size in (4, 8, 16, 32, 64, 96):
                for count in counts:
                    # Compute Engine's vCPU and memory limits per GPU count (n1gpus.py);
                    # small machines with many GPUs are left out as before.
                    if not n1_gpu_fits(sku, count, size, size * gib) or (size < 8 and count > 2):
                        continue
                    price = size * n1_cpu + size * gib * n1_ram + count * gpu_price
                    rows.append(
                        row(
                            "gcp",
                            GCP_REGION,
                            f"n1-{kind}-{size}+{sku.lower()}x{count}",
                            size,
                            size * gib,
                            price,
                            "libcloud-2025-03-02 (N1 rates) + list-2025 (GPU)",
                            "2025",
                            gpus=count,
                            sku=sku,
                            zones=GCP_ZONES,
                            gpu_mem=gpu_mem * count,
                        )
                    )
    for size, l4 in G2.items():
        price = size * 0.0366954 + l4 * 0.560055
        rows.append(
            row(
                "gcp",
                GCP_REGION,
                f"g2-standard-{size}",
                size,
                size * 4,
                price,
                "post-P04 (derived)",
                "2025-09-25",
                gpus=l4,
                sku="L4",
                zones=GCP_ZONES,
                gpu_mem=24 * l4,
            )
        )
    # A2: post-P04 gives a2-highgpu-2g at 7.339; the others scale per GPU.
    for count in (1, 2, 4, 8):
        rows.append(
            row(
                "gcp",
                GCP_REGION,
                f"a2-highgpu-{count}g",
                12 * count,
                85 * count,
                3.6695 * count,
                "post-P04 (scaled)",
                "2025-09-25",
                gpus=count,
                sku="A100",
                zones=GCP_ZONES,
                gpu_mem=40 * count,
            )
        )
    # Every other region (and us-central1's missing families): scripts/catalogs/gcp.py.
    gcp_regions.generate(OUT, rows, GCP_N1_GPUS)


# --- Azure (eastus) ------------------------------------------------------------------------

AZ_REGION = "eastus"
# name, vcpu, GiB, gpus, sku, arch, price, source
AZ_MANUAL = [
    ("Standard_E4as_v5", 4, 32, 0, "", "amd64", 0.226, "post-P04"),
    ("Standard_B2als_v2", 2, 4, 0, "", "amd64", 0.0376, "post-P10"),
    ("Standard_NC4as_T4_v3", 4, 28, 1, "T4", "amd64", 0.526, "post-P17"),
    ("Standard_NC8as_T4_v3", 8, 56, 1, "T4", "amd64", 0.752, "list-2025"),
    ("Standard_NC16as_T4_v3", 16, 110, 1, "T4", "amd64", 1.204, "list-2025"),
    ("Standard_NC64as_T4_v3", 64, 440, 4, "T4", "amd64", 4.352, "post-P17"),
    ("Standard_NV36ads_A10_v5", 36, 440, 1, "A10", "amd64", 3.20, "post-P04"),
    ("Standard_NV72ads_A10_v5", 72, 880, 2, "A10", "amd64", 6.52, "post-P04"),
    ("Standard_NC24ads_A100_v4", 24, 220, 1, "A100", "amd64", 3.673, "post-P04"),
    ("Standard_NC48ads_A100_v4", 48, 440, 2, "A100", "amd64", 7.346, "list-2025"),
    ("Standard_NC96ads_A100_v4", 96, 880, 4, "A100", "amd64", 14.692, "list-2025"),
    ("Standard_ND96asr_v4", 96, 900, 8, "A100", "amd64", 27.197, "list-2025"),
]
# General purpose v5 series, linear per vCPU (list-2025, eastus): (prefix, suffix, GiB/vCPU, $/vCPU, arch)
AZ_V5 = [
    ("D", "s_v5", 4, 0.048, "amd64"),
    ("D", "as_v5", 4, 0.043, "amd64"),
    ("D", "ps_v5", 4, 0.0385, "arm64"),
    ("E", "s_v5", 8, 0.063, "amd64"),
    ("E", "as_v5", 8, 0.0565, "amd64"),
    ("E", "ps_v5", 8, 0.0505, "arm64"),
    ("F", "s_v2", 2, 0.0423, "amd64"),
]
AZ_LIBCLOUD = {  # libcloud key -> (vcpu, GiB, gpus, sku)
    "standarda8mv2": (8, 64, 0, ""),
    "standarda4mv2": (4, 32, 0, ""),
    "standarda2mv2": (2, 16, 0, ""),
    "standardds2v2": (2, 7, 0, ""),
    "standardb2ms": (2, 8, 0, ""),
    "standardb4ms": (4, 16, 0, ""),
    "standardb8ms": (8, 32, 0, ""),
    "standardnc6sv3": (6, 112, 1, "V100"),
    "standardnc12sv3": (12, 224, 2, "V100"),
    "standardnc24sv3": (24, 448, 4, "V100"),
}
AZ_NAMES = {
    "standarda8mv2": "Standard_A8m_v2",
    "standarda4mv2": "Standard_A4m_v2",
    "standarda2mv2": "Standard_A2m_v2",
    "standardds2v2": "Standard_DS2_v2",
    "standardb2ms": "Standard_B2ms",
    "standardb4ms": "Standard_B4ms",
    "standardb8ms": "Standard_B8ms",
    "standardnc6sv3": "Standard_NC6s_v3",
    "standardnc12sv3": "Standard_NC12s_v3",
    "standardnc24sv3": "Standard_NC24s_v3",
}


def azure() -> None:
    prices = json.loads(LIBCLOUD.read_text())["compute"]["azure_linux"]
    rows = []
    for name, vcpu, mem, gpus, sku, arch, price, source in AZ_MANUAL:
        rows.append(
            row(
                "azure",
                AZ_REGION,
                name,
                vcpu,
                mem,
                price,
                source,
                "2025",
                gpus=gpus,
                sku=sku,
                arch=arch,
                max_pods=250,
            )
        )
    for prefix, suffix, gib, per_cpu, arch in AZ_V5:
        for size in (2, 4, 8, 16, 32, 48, 64):
            name = f"Standard_{prefix}{size}{suffix}"
            if any(r["instance_type"] == name for r in rows):
                continue
            rows.append(
                row(
                    "azure",
                    AZ_REGION,
                    name,
                    size,
                    size * gib,
                    size * per_cpu,
                    "list-2025",
                    "2025",
                    arch=arch,
                    max_pods=250,
                )
            )
    for key, (vcpu, mem, gpus, sku) in AZ_LIBCLOUD.items():
        price = prices[key][AZ_REGION]
        rows.append(
            row(
                "azure",
                AZ_REGION,
                AZ_NAMES[key],
                vcpu,
                mem,
                price,
                "libcloud-2025-03-02",
                LIBCLOUD_DATE,
                gpus=gpus,
                sku=sku,
                max_pods=250,
            )
        )
    for entry in rows:
        entry["zones"] = AZURE_ZONES
    write("azure", rows)


# --- OCI: every commercial region, scripts/catalogs/oci.py --------------------------------


def oci() -> None:
    oci_regions.generate(OUT)


if __name__ == "__main__":
    aws()
    gcp()
    azure()
    oci()
