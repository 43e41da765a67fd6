#!/usr/bin/env python3
"""Regenerate the built-in catalogs in gibbous/catalogs/ from offline sources.

Needs the dev extras (apache-libcloud, moto). AWS and Azure rows (every public region) come
from scripts/catalogs/aws.py and azure.py, written gzipped (<cloud>.csv.gz). Every row records
its source:
  libcloud-2025-03-02  apache-libcloud 3.9.1 bundled pricing.json (updated 2025-03-02)
  moto-5.2.x           moto's EC2 instance-type data (vCPU, memory, GPUs, ENIs, AZs)
  karpenter-*, aspire-*, derived: ...   see scripts/catalogs/aws.py and azure.py
  post-PNN             a price quoted in Elotl's blog post NN (shared/seeds), newer than libcloud
  list-2025            public list price (on-demand, Linux), entered by hand; verify before relying on it
GCP's and OCI's other regions: scripts/catalogs/gcp.py and oci.py (their sources in their docstrings;
downloaded once into $GIBBOUS_CATALOG_SOURCES).
Run: .venv/bin/python scripts/generate-catalogs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import libcloud
import moto
from catalogs import gcp as gcp_regions
from catalogs import oci as oci_regions
from catalogs.rows import row
from catalogs.rows import write_gz as write_indexed_gz

from gibbous.core.choice.n1gpus import n1_gpu_fits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogs import aws as aws_catalog
from catalogs import azure as azure_catalog

OUT = Path(__file__).resolve().parent.parent / "gibbous" / "catalogs"
LIBCLOUD = Path(libcloud.__file__).parent / "data" / "pricing.json"
MOTO = Path(moto.__file__).parent / "ec2" / "resources"
LIBCLOUD_DATE = "2025-03-02"


def write_gz(cloud: str, rows: list[dict[str, object]]) -> None:
    """`<cloud>.csv.gz`, indexed by region (scripts/catalogs/rows.py)."""
    write_indexed_gz(OUT / f"{cloud}.csv.gz", rows)


# --- AWS: every public region (scripts/catalogs/aws.py) -------------------------------


def aws() -> None:
    write_gz("aws", aws_catalog.rows())


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


# --- Azure: every public region (scripts/catalogs/azure.py) ---------------------------


def azure() -> None:
    write_gz("azure", azure_catalog.rows())


# --- OCI: every commercial region, scripts/catalogs/oci.py --------------------------------


def oci() -> None:
    oci_regions.generate(OUT)


if __name__ == "__main__":
    aws()
    gcp()
    azure()
    oci()
