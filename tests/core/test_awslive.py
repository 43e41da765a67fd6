"""AWS's catalog APIs read as catalog rows. The pages are recorded response shapes, as
botocore parses them (field names from botocore's `ec2/2016-11-15` and
`pricing/2017-10-15` service models; the instance records are AWS's own answers as moto
5.x recorded them); every expected value is read off those records by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gibbous.core.choice.awslive import (
    gpu_sku,
    live_catalog,
    parse_instance_types,
    parse_offerings,
    parse_price_list,
    read_catalog_document,
)
from gibbous.core.choice.keptcatalog import catalog_document
from gibbous.core.errors import CatalogError

MIB = 1024 * 1024

G5_XLARGE = {
    "InstanceType": "g5.xlarge",
    "CurrentGeneration": True,
    "SupportedUsageClasses": ["on-demand", "spot"],
    "BareMetal": False,
    "Hypervisor": "nitro",
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"], "Manufacturer": "AMD"},
    "VCpuInfo": {"DefaultVCpus": 4, "DefaultCores": 2, "DefaultThreadsPerCore": 2},
    "MemoryInfo": {"SizeInMiB": 16384},
    "NetworkInfo": {"MaximumNetworkInterfaces": 4, "Ipv4AddressesPerInterface": 15},
    "GpuInfo": {
        "Gpus": [
            {
                "Name": "A10G",
                "Manufacturer": "NVIDIA",
                "Count": 1,
                "MemoryInfo": {"SizeInMiB": 22888},
            }
        ],
        "TotalGpuMemoryInMiB": 22888,
    },
}
G5G_XLARGE = {
    "InstanceType": "g5g.xlarge",
    "SupportedUsageClasses": ["on-demand", "spot"],
    "BareMetal": False,
    "ProcessorInfo": {"SupportedArchitectures": ["arm64"]},
    "VCpuInfo": {"DefaultVCpus": 4},
    "MemoryInfo": {"SizeInMiB": 8192},
    "NetworkInfo": {"MaximumNetworkInterfaces": 4, "Ipv4AddressesPerInterface": 15},
    "GpuInfo": {
        "Gpus": [
            {
                "Name": "T4g",
                "Manufacturer": "NVIDIA",
                "Count": 1,
                "MemoryInfo": {"SizeInMiB": 16384},
            }
        ],
        "TotalGpuMemoryInMiB": 16384,
    },
}
P5_48XLARGE = {
    "InstanceType": "p5.48xlarge",
    "SupportedUsageClasses": ["capacity-block", "on-demand", "spot"],
    "BareMetal": False,
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
    "VCpuInfo": {"DefaultVCpus": 192},
    "MemoryInfo": {"SizeInMiB": 2097152},
    "NetworkInfo": {"MaximumNetworkInterfaces": 64, "Ipv4AddressesPerInterface": 50},
    "GpuInfo": {
        "Gpus": [
            {
                "Name": "H100",
                "Manufacturer": "NVIDIA",
                "Count": 8,
                "MemoryInfo": {"SizeInMiB": 81920},
            }
        ],
        "TotalGpuMemoryInMiB": 655360,
    },
}
C7I_METAL = {
    "InstanceType": "c7i.metal-24xl",
    "SupportedUsageClasses": ["on-demand", "spot"],
    "BareMetal": True,
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
    "VCpuInfo": {"DefaultVCpus": 96},
    "MemoryInfo": {"SizeInMiB": 196608},
    "NetworkInfo": {"MaximumNetworkInterfaces": 15, "Ipv4AddressesPerInterface": 50},
}
MAC1_METAL = {
    "InstanceType": "mac1.metal",
    "SupportedUsageClasses": ["on-demand"],
    "BareMetal": True,
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64_mac"]},
    "VCpuInfo": {"DefaultVCpus": 12},
    "MemoryInfo": {"SizeInMiB": 32768},
}
M7G_LARGE = {
    "InstanceType": "m7g.large",
    "SupportedUsageClasses": ["on-demand"],  # as if spot were not sold for it
    "ProcessorInfo": {"SupportedArchitectures": ["arm64"]},
    "VCpuInfo": {"DefaultVCpus": 2},
    "MemoryInfo": {"SizeInMiB": 8192},
    "NetworkInfo": {"MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10},
}

TYPE_PAGES: list[dict[str, Any]] = [
    {"InstanceTypes": [G5_XLARGE, G5G_XLARGE], "NextToken": "AAAA"},
    {"InstanceTypes": [P5_48XLARGE, MAC1_METAL], "NextToken": "BBBB"},
    {"InstanceTypes": [C7I_METAL, M7G_LARGE]},
]


def offering(name: str, zone: str) -> dict[str, str]:
    return {"InstanceType": name, "LocationType": "availability-zone", "Location": zone}


OFFERING_PAGES: list[dict[str, Any]] = [
    {
        "InstanceTypeOfferings": [
            offering("g5.xlarge", "eu-west-1b"),
            offering("g5.xlarge", "eu-west-1a"),
            offering("p5.48xlarge", "eu-west-1c"),
        ],
        "NextToken": "CCCC",
    },
    {
        "InstanceTypeOfferings": [
            offering("g5g.xlarge", "eu-west-1a"),
            offering("m7g.large", "eu-west-1a"),
            offering("c7i.metal-24xl", "eu-west-1a"),
            offering("mac1.metal", "eu-west-1a"),
        ]
    },
]


def price_item(name: str, usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry as GetProducts returns it: a JSON document in a string."""
    sku = f"SKU{name}"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": name,
                    "regionCode": "eu-west-1",
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "offerTermCode": "JRTCKXETXF",
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                    }
                }
            },
        }
    )


PRICE_PAGES: list[dict[str, Any]] = [
    {
        "FormatVersion": "aws_v1",
        "PriceList": [price_item("g5.xlarge", "1.1230000000"), price_item("g5g.xlarge", "0.4660")],
        "NextToken": "DDDD",
    },
    {
        "FormatVersion": "aws_v1",
        "PriceList": [
            price_item("p5.48xlarge", "0.0000000000"),  # no price: not offered
            price_item("c7i.metal-24xl", "4.6368"),
            price_item("m7g.large", "0.0924"),
            price_item("m7g.large", "0.1010"),  # a second product: the lower price stays
            price_item("mac1.metal", "1.207"),
        ],
    },
]


def test_describe_instance_types_pages_give_sizes_gpus_and_pod_capacity() -> None:
    specs = parse_instance_types(TYPE_PAGES)
    # mac1.metal runs macOS on dedicated hosts only (x86_64_mac): not a node.
    assert sorted(specs) == [
        "c7i.metal-24xl",
        "g5.xlarge",
        "g5g.xlarge",
        "m7g.large",
        "p5.48xlarge",
    ]
    g5 = specs["g5.xlarge"]
    assert (g5.vcpu, g5.memory_mib, g5.arch) == (4, 16384, "amd64")
    assert (g5.gpu_count, g5.gpu_sku, g5.gpu_memory_mib) == (1, "A10G", 22888)
    assert g5.max_pods == 58  # 4 ENIs x (15 - 1) + 2
    assert (g5.spot, g5.on_demand, g5.bare_metal) == (True, True, False)
    assert specs["g5g.xlarge"].arch == "arm64"
    assert specs["g5g.xlarge"].gpu_sku == "T4G"
    p5 = specs["p5.48xlarge"]
    assert (p5.gpu_count, p5.gpu_sku, p5.gpu_memory_mib) == (8, "H100", 655360)
    assert p5.max_pods == 250  # 64 x 49 + 2 = 3138, capped at the built-in data's 250
    assert specs["c7i.metal-24xl"].bare_metal
    assert specs["c7i.metal-24xl"].gpu_count == 0
    assert specs["m7g.large"].spot is False
    assert specs["m7g.large"].max_pods == 29  # 3 x 9 + 2


@pytest.mark.parametrize(
    ("name", "sku"),
    [
        ("A10G", "A10G"),
        ("L4", "L4"),
        ("L40S", "L40S"),
        ("T4", "T4"),
        ("H100", "H100"),
        ("T4g", "T4G"),
        ("Radeon Pro V520", "V520"),
        ("NVIDIA H200", "H200"),
    ],
)
def test_gpu_names_become_the_catalogs_skus(name: str, sku: str) -> None:
    assert gpu_sku(name) == sku


def test_offerings_pages_give_each_types_zones() -> None:
    zones = parse_offerings(OFFERING_PAGES)
    assert zones["g5.xlarge"] == ("eu-west-1a", "eu-west-1b")
    assert zones["p5.48xlarge"] == ("eu-west-1c",)
    assert len(zones) == 6


def test_price_list_pages_give_on_demand_hourly_prices() -> None:
    prices = parse_price_list(PRICE_PAGES)
    assert prices == {
        "g5.xlarge": 1.123,
        "g5g.xlarge": 0.466,
        "c7i.metal-24xl": 4.6368,
        "m7g.large": 0.0924,
        "mac1.metal": 1.207,
    }


def test_a_price_list_item_that_is_not_json_is_named() -> None:
    with pytest.raises(CatalogError, match="not JSON"):
        parse_price_list([{"PriceList": ["{not json"]}])


def test_a_page_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(CatalogError, match="InstanceTypes is not a list"):
        parse_instance_types([{"InstanceTypes": {"g5.xlarge": {}}}])


def test_the_live_catalog_has_priced_offered_types_only() -> None:
    rows = live_catalog(
        "eu-west-1",
        specs=parse_instance_types(TYPE_PAGES),
        zones=parse_offerings(OFFERING_PAGES),
        prices=parse_price_list(PRICE_PAGES),
        builtin=[],
        date="2026-12-06",
    )
    by_name = {r.name: r for r in rows}
    # p5.48xlarge has no price, mac1.metal is no node.
    assert sorted(by_name) == ["c7i.metal-24xl", "g5.xlarge", "g5g.xlarge", "m7g.large"]
    g5 = by_name["g5.xlarge"]
    assert (g5.cloud, g5.region, g5.family) == ("aws", "eu-west-1", "g5")
    assert g5.memory_bytes == 16 * 1024 * MIB
    assert g5.gpu_memory_bytes == 22888 * MIB
    assert g5.on_demand_price == 1.123
    assert g5.spot_price is None  # priced from DescribeSpotPriceHistory by the provider
    assert g5.zones == ("eu-west-1a", "eu-west-1b")
    assert g5.price_date == "2026-12-06"
    assert by_name["m7g.large"].spot_offered is False


def test_the_kept_document_reads_back_and_refuses_another_region() -> None:
    rows = live_catalog(
        "eu-west-1",
        specs=parse_instance_types(TYPE_PAGES),
        zones=parse_offerings(OFFERING_PAGES),
        prices=parse_price_list(PRICE_PAGES),
        builtin=[],
        date="2026-12-06",
    )
    text = catalog_document(rows, "eu-west-1", 1_800_000_000.0)
    assert read_catalog_document(text, "eu-west-1") == (1_800_000_000.0, rows)
    with pytest.raises(CatalogError, match="eu-west-1"):
        read_catalog_document(text, "us-east-1")
    with pytest.raises(CatalogError, match="unreadable"):
        read_catalog_document(text[: len(text) // 2], "eu-west-1")
