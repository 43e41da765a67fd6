"""OCI's built-in catalog: every region of the commercial realm (scripts/generate-catalogs.py
calls `generate`).

Regions: the `oci` SDK's region table, realm `oc1` (`oci.regions.REGION_REALMS`); the
government, defence and sovereign/dedicated realms (oc2, oc3, oc4, oc8 and up) are left out:
they are not public (a tenancy there is by contract) and their prices are not on Oracle's
public list. Availability domains: three in us-ashburn-1, us-phoenix-1, eu-frankfurt-1 and
uk-london-1, one elsewhere (OCI docs, "Regions and Availability Domains"); OKE labels a node's
zone with the AD name without its tenancy prefix (OKE "Supported Labels for Different
Usecases"): `US-ASHBURN-AD-1`, `PHX-AD-1` (the SDK models' example `Uocm:PHX-AD-1`), else `<REGION>-AD-<n>` (`EU-FRANKFURT-1-AD-1`).
Prices: OCI charges the same in every commercial region (Oracle, "Cloud Price List": one
price a part number, no regional column), so every region gets us-ashburn-1's rows. Which
shapes each region has capacity for is not public as a table: every region lists every shape,
and the OKE provider replaces the catalog with ListShapes' answer for the compartment.
"""

from __future__ import annotations

from pathlib import Path

import oci.regions
from catalogs.rows import row, write_gz

THREE_ADS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1", "uk-london-1")
AD_PREFIX = {"us-ashburn-1": "US-ASHBURN", "us-phoenix-1": "PHX"}
COMMERCIAL_REALM = "oc1"


def regions() -> list[str]:
    return sorted(r for r, realm in oci.regions.REGION_REALMS.items() if realm == COMMERCIAL_REALM)


def availability_domains(region: str) -> list[str]:
    prefix = AD_PREFIX.get(region, region.upper())
    return [f"{prefix}-AD-{n}" for n in range(1, (3 if region in THREE_ADS else 1) + 1)]


def shapes(region: str) -> list[dict[str, object]]:
    """One region's rows: the shapes and prices us-ashburn-1 always had, then the shapes
    added for every region."""
    rows = []
    # Flex shapes: $/OCPU-hr, $/GB-hr, vCPUs per OCPU (list-2025). Sizes listed as <shape>-<ocpus>-<GB>.
    for shape, per_ocpu, per_gb, vcpus, arch in (
        ("VM.Standard.E4.Flex", 0.025, 0.0015, 2, "amd64"),
        ("VM.Standard.E5.Flex", 0.03, 0.002, 2, "amd64"),
        ("VM.Standard3.Flex", 0.04, 0.0015, 2, "amd64"),
        ("VM.Standard.A1.Flex", 0.01, 0.0015, 1, "arm64"),
    ):
        for ocpus in (1, 2, 4, 8, 16, 32):
            for gb_per in (8, 16):
                gb = ocpus * gb_per
                rows.append(
                    row(
                        "oci",
                        region,
                        f"{shape}-{ocpus}-{gb}",
                        ocpus * vcpus,
                        gb,
                        ocpus * per_ocpu + gb * per_gb,
                        "list-2025",
                        "2025",
                        arch=arch,
                    )
                )
    # Bare-metal standard shapes (OCI "Compute Shapes", bare metal: OCPUs and GB), billed
    # per OCPU and GB at their series' Flex rates (OCI price list: "Compute - Standard -
    # E4 - OCPU" etc. price bare metal and VMs of a series alike).
    for name, ocpus, gb, per_ocpu, per_gb, vcpus, arch in (
        ("BM.Standard.E4.128", 128, 2048, 0.025, 0.0015, 2, "amd64"),
        ("BM.Standard.E5.192", 192, 2304, 0.03, 0.002, 2, "amd64"),
        ("BM.Standard3.64", 64, 1024, 0.04, 0.0015, 2, "amd64"),
        ("BM.Standard.A1.160", 160, 1024, 0.01, 0.0015, 1, "arm64"),
    ):
        rows.append(
            row(
                "oci",
                region,
                name,
                ocpus * vcpus,
                gb,
                ocpus * per_ocpu + gb * per_gb,
                "list-2025",
                "2025",
                arch=arch,
            )
        )
    for name, vcpu, mem, gpus, sku, price, source, gpu_mem in (
        ("VM.GPU2.1", 24, 72, 1, "P100", 1.275, "post-P17", 16),
        ("VM.GPU3.1", 12, 90, 1, "V100", 2.95, "list-2025", 16),
        ("VM.GPU3.2", 24, 180, 2, "V100", 5.90, "list-2025", 32),
        ("VM.GPU3.4", 48, 360, 4, "V100", 11.80, "list-2025", 64),
        ("VM.GPU.A10.1", 30, 240, 1, "A10", 2.00, "list-2025", 24),
        ("VM.GPU.A10.2", 60, 480, 2, "A10", 4.00, "list-2025", 48),
        ("BM.GPU.A10.4", 128, 1024, 4, "A10", 8.00, "list-2025", 96),
        ("BM.GPU4.8", 128, 2048, 8, "A100", 24.40, "list-2025", 320),
        # 52 OCPUs, 768 GB, 8 V100 16 GB (OCI "Compute Shapes"), $2.95 a GPU-hour as GPU3.
        ("BM.GPU3.8", 104, 768, 8, "V100", 23.60, "list-2025", 128),
    ):
        rows.append(
            row(
                "oci",
                region,
                name,
                vcpu,
                mem,
                price,
                source,
                "2025",
                gpus=gpus,
                sku=sku,
                gpu_mem=gpu_mem,
            )
        )
    rows += _added(region)
    zones = ";".join(availability_domains(region))
    for entry in rows:
        entry["zones"] = zones
    return rows


# Prices of the shapes added in 2026: Oracle's compute price page ("Compute - GPU - H100",
# "- A100 80GB": $10.00 and $4.00 a GPU-hour) as quoted by oraclelicensingexperts.com,
# "Oracle Cloud GPU SKUs" (2026-04-14; Oracle's own page renders its prices in script, which
# the stored copy lacks), so marked third-party.
GPU_2026 = "Oracle price page via oraclelicensingexperts.com (third-party quote)"


def _added(region: str) -> list[dict[str, object]]:
    rows = [
        # OCI "Compute Shapes", GPU bare metal: BM.GPU.H100.8 112 OCPUs, 2048 GB, 8 H100 80 GB;
        # BM.GPU.A100-v2.8 128 OCPUs, 2048 GB, 8 A100 80 GB.
        row(
            "oci",
            region,
            "BM.GPU.H100.8",
            224,
            2048,
            80.0,
            GPU_2026,
            "2026-04",
            gpus=8,
            sku="H100",
            gpu_mem=640,
        ),
        row(
            "oci",
            region,
            "BM.GPU.A100-v2.8",
            256,
            2048,
            32.0,
            GPU_2026,
            "2026-04",
            gpus=8,
            sku="A100",
            gpu_mem=640,
        ),
    ]
    # E-series large memory: Flex VMs at 64 GB an OCPU, the most E4/E5 Flex allow (OCI
    # "Compute Shapes", flexible shapes), at the list-2025 E4/E5 rates above.
    for shape, per_ocpu, per_gb in (
        ("VM.Standard.E4.Flex", 0.025, 0.0015),
        ("VM.Standard.E5.Flex", 0.03, 0.002),
    ):
        for ocpus in (2, 4, 8, 16):
            gb = ocpus * 64
            rows.append(
                row(
                    "oci",
                    region,
                    f"{shape}-{ocpus}-{gb}",
                    ocpus * 2,
                    gb,
                    ocpus * per_ocpu + gb * per_gb,
                    "list-2025",
                    "2025",
                )
            )
    return rows


def generate(out: Path) -> None:
    write_gz(out / "oci.csv.gz", [entry for region in regions() for entry in shapes(region)])
