"""OCI's ListShapes and public price list, read into catalog rows.

The pages are written in the APIs' wire shapes (oci.core.models.Shape's attribute map:
`memoryInGBs`, `ocpuOptions`, `memoryOptions.minPerOcpuInGBs`, ...; the cost estimator
API's `items[].currencyCodeLocalizations[].prices[]`); the expected rows are computed by
hand in each test from the prices written there.
"""

from __future__ import annotations

import dataclasses

import pytest

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.keptcatalog import catalog_document
from gibbous.core.choice.ocilive import (
    gpu_sku,
    live_catalog,
    parse_price_list,
    parse_shapes,
    read_catalog_document,
)
from gibbous.core.errors import CatalogError

GIB = 1024**3

E4_FLEX = {
    "shape": "VM.Standard.E4.Flex",
    "processorDescription": "2.55 GHz AMD EPYC™ 7J13 (Milan)",
    "ocpus": 1.0,
    "memoryInGBs": 16.0,
    "gpus": 0,
    "isFlexible": True,
    "networkingBandwidthInGbps": 1.0,
    "maxVnicAttachments": 2,
    # OCI's "Compute Shapes": E4 Flex, 1-64 OCPUs, 1-1024 GB, up to 64 GB per OCPU; here
    # the range is cut to 4 OCPUs to keep the expectation short.
    "ocpuOptions": {"min": 1.0, "max": 4.0, "maxPerNumaNode": 64.0},
    "memoryOptions": {
        "minInGBs": 1.0,
        "maxInGBs": 1024.0,
        "defaultPerOcpuInGBs": 16.0,
        "minPerOcpuInGBs": 1.0,
        "maxPerOcpuInGBs": 64.0,
    },
}
A1_FLEX = {
    "shape": "VM.Standard.A1.Flex",
    "processorDescription": "3.0 GHz Ampere® Altra™",
    "ocpus": 1.0,
    "memoryInGBs": 6.0,
    "gpus": 0,
    "isFlexible": True,
    "ocpuOptions": {"min": 1.0, "max": 2.0},
    # 8 GB per OCPU at most: the 16 GB/OCPU sizes are out.
    "memoryOptions": {
        "minInGBs": 1.0,
        "maxInGBs": 512.0,
        "minPerOcpuInGBs": 1.0,
        "maxPerOcpuInGBs": 8.0,
    },
}
BM_E4 = {
    "shape": "BM.Standard.E4.128",
    "processorDescription": "2.55 GHz AMD EPYC™ 7J13 (Milan)",
    "ocpus": 128.0,
    "memoryInGBs": 2048.0,
    "gpus": 0,
    "isFlexible": False,
    "networkingBandwidthInGbps": 100.0,
    "maxVnicAttachments": 256,
}
BM_GPU3 = {
    "shape": "BM.GPU3.8",
    "processorDescription": "2.0 GHz Intel® Xeon® Platinum 8167M (Skylake)",
    "ocpus": 52.0,
    "memoryInGBs": 768.0,
    "gpus": 8,
    "gpuDescription": "NVIDIA® Tesla® V100",
    "isFlexible": False,
}
UNPRICED = {"shape": "VM.DenseIO.E4.Flex", "ocpus": 8.0, "memoryInGBs": 128.0, "isFlexible": True}


def usd(part: str, metric: str, value: float) -> dict[str, object]:
    return {
        "partNumber": part,
        "displayName": f"part {part}",
        "metricName": metric,
        "serviceCategory": "Compute - Virtual Machine",
        "currencyCodeLocalizations": [
            {"currencyCode": "EUR", "prices": [{"model": "PAY_AS_YOU_GO", "value": 9.0}]},
            {"currencyCode": "USD", "prices": [{"model": "PAY_AS_YOU_GO", "value": value}]},
        ],
    }


PRICE_PAGES = [
    {
        "items": [
            usd("B93113", "OCPU Per Hour", 0.025),  # E4 OCPU
            usd("B93114", "Gigabyte Per Hour", 0.0015),  # E4 memory
            usd("B93297", "OCPU Per Hour", 0.01),  # A1 OCPU
        ],
        "hasMore": True,
    },
    {
        "items": [
            usd("B93298", "Gigabyte Per Hour", 0.0015),  # A1 memory
            usd("B88517", "GPU Per Hour", 2.95),  # V100
            usd("B88518", "Gigabyte Per Hour", 99.0),  # A100 part with a wrong metric: ignored
            usd("B99999", "OCPU Per Hour", 1.0),  # a part Gibbous does not know
        ],
        "hasMore": False,
    },
]


def test_gpu_descriptions_become_the_catalogs_skus() -> None:
    assert gpu_sku("NVIDIA® Tesla® V100") == "V100"
    assert gpu_sku("NVIDIA® A10") == "A10"
    assert gpu_sku("NVIDIA A100") == "A100"


def test_price_list_pages_give_pay_as_you_go_usd_per_series() -> None:
    assert parse_price_list(PRICE_PAGES) == {
        ("E4", "ocpu"): 0.025,
        ("E4", "memory"): 0.0015,
        ("A1", "ocpu"): 0.01,
        ("A1", "memory"): 0.0015,
        ("V100", "gpu"): 2.95,
    }


def test_shapes_over_pages_become_sized_flex_rows_bare_metal_and_gpu_rows() -> None:
    specs = parse_shapes([[E4_FLEX, A1_FLEX], [BM_E4, BM_GPU3, UNPRICED, {"shape": ""}]])
    rows = live_catalog(
        "eu-frankfurt-1",
        specs=specs,
        prices=parse_price_list(PRICE_PAGES),
        builtin=[],
        date="2026-12-06",
    )
    got = {
        r.name: (r.vcpu, r.memory_bytes // GIB, r.gpu_count, r.arch, r.on_demand_price)
        for r in rows
    }
    assert got == {
        # E4: 2 vCPUs an OCPU; $0.025 an OCPU-hour + $0.0015 a GB-hour.
        "VM.Standard.E4.Flex-1-8": (2.0, 8, 0, "amd64", 0.037),
        "VM.Standard.E4.Flex-1-16": (2.0, 16, 0, "amd64", 0.049),
        "VM.Standard.E4.Flex-2-16": (4.0, 16, 0, "amd64", 0.074),
        "VM.Standard.E4.Flex-2-32": (4.0, 32, 0, "amd64", 0.098),
        "VM.Standard.E4.Flex-4-32": (8.0, 32, 0, "amd64", 0.148),
        "VM.Standard.E4.Flex-4-64": (8.0, 64, 0, "amd64", 0.196),
        # A1: 1 vCPU an OCPU, at most 8 GB an OCPU here; $0.01 + $0.0015 x GB.
        "VM.Standard.A1.Flex-1-8": (1.0, 8, 0, "arm64", 0.022),
        "VM.Standard.A1.Flex-2-16": (2.0, 16, 0, "arm64", 0.044),
        # 128 x 0.025 + 2048 x 0.0015 = 3.2 + 3.072
        "BM.Standard.E4.128": (256.0, 2048, 0, "amd64", 6.272),
        # 8 V100 x 2.95
        "BM.GPU3.8": (104.0, 768, 8, "amd64", 23.6),
    }
    gpu = next(r for r in rows if r.name == "BM.GPU3.8")
    assert (gpu.gpu_sku, gpu.gpu_memory_bytes) == ("V100", 8 * 16 * GIB)
    assert {r.price_date for r in rows} == {"2026-12-06"}


def test_a_built_in_row_gives_zones_and_spot_price_the_apis_do_not() -> None:
    builtin = InstanceType(
        cloud="oci",
        region="us-ashburn-1",
        name="VM.Standard.E4.Flex-1-8",
        family="vm.standard.e4",
        vcpu=2.0,
        memory_bytes=8 * GIB,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=0.5,
        spot_price=0.02,
        zones=("AD-1",),
    )
    rows = live_catalog(
        "us-ashburn-1",
        specs=parse_shapes([[E4_FLEX]]),
        prices=parse_price_list(PRICE_PAGES),
        builtin=[builtin],
        date="2026-12-06",
    )
    row = next(r for r in rows if r.name == "VM.Standard.E4.Flex-1-8")
    assert (row.on_demand_price, row.spot_price, row.zones) == (0.037, 0.02, ("AD-1",))


def test_a_listed_shape_without_a_price_keeps_its_built_in_rows() -> None:
    old = InstanceType(
        cloud="oci",
        region="us-ashburn-1",
        name="BM.GPU3.8",
        family="bm.gpu3",
        vcpu=104.0,
        memory_bytes=768 * GIB,
        gpu_count=8,
        gpu_sku="V100",
        gpu_memory_bytes=128 * GIB,
        arch="amd64",
        on_demand_price=23.6,
        spot_price=None,
        price_date="2025",
    )
    not_listed = dataclasses.replace(old, name="BM.GPU.A10.4")
    rows = live_catalog(
        "us-ashburn-1",
        specs=parse_shapes([[BM_GPU3]]),
        prices={},  # no V100 part
        builtin=[old, not_listed],
        date="2026-12-06",
    )
    assert rows == [old]  # sold here (listed), priced as built in; the unlisted one is not


def test_a_shape_without_its_prices_is_left_out() -> None:
    rows = live_catalog(
        "us-ashburn-1",
        specs=parse_shapes([[BM_E4, BM_GPU3]]),
        prices={("E4", "ocpu"): 0.025},  # no E4 memory, no V100
        builtin=[],
        date="2026-12-06",
    )
    assert rows == []


def test_bad_pages_are_a_clear_error() -> None:
    with pytest.raises(CatalogError, match="not a list"):
        parse_shapes([{"shape": "x"}])
    with pytest.raises(CatalogError, match="items is not a list"):
        parse_price_list([{"items": "x"}])


def test_the_kept_document_round_trips_and_refuses_another_region() -> None:
    rows = live_catalog(
        "us-ashburn-1",
        specs=parse_shapes([[BM_E4]]),
        prices=parse_price_list(PRICE_PAGES),
        builtin=[],
        date="2026-12-06",
    )
    text = catalog_document(rows, "us-ashburn-1", 1000.0)
    assert read_catalog_document(text, "us-ashburn-1") == (1000.0, rows)
    with pytest.raises(CatalogError, match="of us-ashburn-1, not version 1 of us-phoenix-1"):
        read_catalog_document(text, "us-phoenix-1")
    with pytest.raises(CatalogError, match="unreadable"):
        read_catalog_document("{", "us-ashburn-1")


def test_a_zero_price_is_no_price_and_newer_series_are_priced() -> None:
    # Ampere A1's parts are listed at $0 (the Always Free tier): no live A1 price.
    pages = [
        {
            "items": [
                usd("B93297", "OCPU Per Hour", 0.0),
                usd("B93298", "Gigabyte Per Hour", 0.0),
                usd("B93311", "OCPU Per Hour", 0.054),  # Optimized3 (X9) OCPU
                usd("B93312", "Gigabyte Per Hour", 0.0015),
                usd("B95907", "GPU Per Hour", 4.0),  # A100 80 GB (v2)
            ]
        }
    ]
    optimized = {
        **E4_FLEX,
        "shape": "VM.Optimized3.Flex",
        "ocpuOptions": {"min": 1.0, "max": 1.0},
        "memoryOptions": {"minPerOcpuInGBs": 1.0, "maxPerOcpuInGBs": 8.0},
    }
    a100 = {**BM_GPU3, "shape": "BM.GPU.A100-v2.8", "ocpus": 128.0, "memoryInGBs": 2048.0}
    a100["gpuDescription"] = "NVIDIA® A100"
    rows = live_catalog(
        "us-ashburn-1",
        specs=parse_shapes([[A1_FLEX, optimized, a100]]),
        prices=parse_price_list(pages),
        builtin=[],
        date="2026-12-06",
    )
    got = {r.name: (r.on_demand_price, r.gpu_sku, r.gpu_memory_bytes // GIB) for r in rows}
    assert got == {
        "VM.Optimized3.Flex-1-8": (0.066, "", 0),  # 0.054 + 8 x 0.0015
        "BM.GPU.A100-v2.8": (32.0, "A100", 8 * 80),  # 8 x $4.00; 80 GB each
    }
