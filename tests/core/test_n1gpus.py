"""N1 machines with attached GPUs are offered only within Compute Engine's vCPU and memory
limits per GPU count. The limits are written here by hand from the "GPU machine types" page
(https://cloud.google.com/compute/docs/gpus: "N1 + T4", "N1 + P4", "N1 + V100",
"N1 + P100"), as SkyPilot's GCP catalog transcribes it; the machine sizes are Compute
Engine's predefined N1 types (`guestCpus`, `memoryMb`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gibbous.core.choice.gcplive import (
    live_catalog,
    parse_accelerator_types,
    parse_machine_types,
    parse_skus,
)
from tests.core.test_gcplive import accelerator, machine, sku
from tests.factories import catalog

GIB = 1024**3
# SKU -> GPU count -> (most vCPUs, most GB of memory); a count not listed does not attach.
GOOGLE_N1_LIMITS = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
# name -> (vCPUs, memoryMb): n1-highmem-N has 6.5 GB per vCPU; n1-megamem-96 1433.6 GB.
N1_TYPES = {
    "n1-highmem-8": (8, 53248),
    "n1-highmem-16": (16, 106496),
    "n1-highmem-32": (32, 212992),
    "n1-highmem-64": (64, 425984),
    "n1-highmem-96": (96, 638976),
    "n1-megamem-96": (96, 1468006),
}
GPUS = {
    "nvidia-tesla-t4": ("T4", "Nvidia Tesla T4", 4),
    "nvidia-tesla-p4": ("P4", "Nvidia Tesla P4", 4),
    "nvidia-tesla-v100": ("V100", "Nvidia Tesla V100", 8),
    "nvidia-tesla-p100": ("P100", "Nvidia Tesla P100", 4),
}


def offered(region: str, zones: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The live catalog's N1 + GPU rows (name -> zones) for every N1_TYPES machine in
    `zones`, each GPU at its most cards per instance there."""
    machine_pages = [
        {
            "items": {
                f"zones/{zone}": {
                    "machineTypes": [
                        machine(name, zone, cpus, mb) for name, (cpus, mb) in N1_TYPES.items()
                    ]
                }
                for zone in zones
            }
        }
    ]
    accelerator_pages = [
        {
            "items": {
                f"zones/{zone}": {
                    "acceleratorTypes": [
                        accelerator(name, zone, cards) for name, (_, _, cards) in GPUS.items()
                    ]
                }
                for zone in zones
            }
        }
    ]
    skus: list[dict[str, Any]] = [
        sku("N1 Predefined Instance Core running in Americas", "N1Standard", "OnDemand", 31611000),
        sku(
            "N1 Predefined Instance Ram running in Americas",
            "N1Standard",
            "OnDemand",
            4237000,
            unit="GiBy.h",
        ),
    ] + [
        sku(f"{words} GPU running in Americas", "GPU", "OnDemand", 500000000)
        for _, words, _ in GPUS.values()
    ]
    for entry in skus:
        entry["serviceRegions"] = [region]
    types = live_catalog(
        region,
        machines=parse_machine_types(machine_pages, region),
        accelerators=parse_accelerator_types(accelerator_pages, region),
        rates=parse_skus([{"skus": skus}], region),
        date="2026-12-06",
    )
    return {t.name: t.zones for t in types if "+" in t.name}


def expected(sku_name: str) -> set[str]:
    """By hand from the table: each machine with each count it stays within."""
    return {
        f"{name}+{sku_name.lower()}x{count}"
        for name, (cpus, mb) in N1_TYPES.items()
        for count, (most_cpus, most_gb) in GOOGLE_N1_LIMITS[sku_name].items()
        if cpus <= most_cpus and mb / 1024 <= most_gb
    }


@pytest.mark.parametrize("sku_name", ["T4", "P4", "V100", "P100"])
def test_live_catalog_offers_n1_gpus_only_within_the_limits(sku_name: str) -> None:
    found = {
        name
        for name in offered("us-central1", ("us-central1-a",))
        if f"+{sku_name.lower()}x" in name
    }
    assert found == expected(sku_name)


def test_the_largest_allowed_is_offered_and_one_size_up_is_not() -> None:
    found = offered("us-central1", ("us-central1-a",))
    # T4: 1 or 2 cards up to 48 vCPUs / 312 GB, 4 cards up to 96 / 624.
    assert "n1-highmem-32+t4x1" in found and "n1-highmem-64+t4x1" not in found
    assert "n1-highmem-32+t4x2" in found and "n1-highmem-64+t4x2" not in found
    assert "n1-highmem-96+t4x4" in found
    # V100: 12 / 24 / 48 / 96 vCPUs for 1 / 2 / 4 / 8 cards.
    assert "n1-highmem-8+v100x1" in found and "n1-highmem-16+v100x1" not in found
    assert "n1-highmem-16+v100x2" in found and "n1-highmem-32+v100x2" not in found
    assert "n1-highmem-32+v100x4" in found and "n1-highmem-64+v100x4" not in found
    assert "n1-highmem-96+v100x8" in found
    # P100: 16 / 32 / 96 vCPUs for 1 / 2 / 4 cards.
    assert "n1-highmem-16+p100x1" in found and "n1-highmem-32+p100x1" not in found
    assert "n1-highmem-32+p100x2" in found and "n1-highmem-64+p100x2" not in found
    assert "n1-highmem-96+p100x4" in found
    # P4: 24 / 48 / 96 vCPUs for 1 / 2 / 4 cards.
    assert "n1-highmem-16+p4x1" in found and "n1-highmem-32+p4x1" not in found
    assert "n1-highmem-32+p4x2" in found and "n1-highmem-64+p4x2" not in found
    assert "n1-highmem-96+p4x4" in found
    # 96 vCPUs fit 4 T4s, 1433.6 GB of memory do not (at most 624 GB).
    assert "n1-megamem-96+t4x4" not in found
    # T4, P4 and P100 stop at 4 cards whatever the zone's maximum says.
    assert not any(name.endswith(("t4x8", "p4x8", "p100x8")) for name in found)


def test_four_p100s_allow_64_vcpus_in_the_zones_the_page_names() -> None:
    # The page: 4 P100s take at most 64 vCPUs / 208 GB in us-east1-c (96 / 624 elsewhere).
    found = offered("us-east1", ("us-east1-b", "us-east1-c"))
    assert found["n1-highmem-96+p100x4"] == ("us-east1-b",)
    assert found["n1-highmem-32+p100x4"] == ("us-east1-b", "us-east1-c")


def test_every_builtin_n1_gpu_row_is_within_the_limits() -> None:
    rows = [t for t in catalog("gcp") if re.fullmatch(r"n1-[a-z]+-\d+\+[a-z0-9]+x\d+", t.name)]
    assert rows  # the built-in catalog has N1 + GPU rows
    for row in rows:
        limits = GOOGLE_N1_LIMITS[row.gpu_sku]
        assert row.gpu_count in limits, row.name
        most_cpus, most_gb = limits[row.gpu_count]
        assert row.vcpu <= most_cpus and row.memory_bytes / GIB <= most_gb, row.name
