"""The emulator's catalog APIs without a server: DescribeInstanceTypes and
DescribeInstanceTypeOfferings page as EC2 pages (MaxResults 5-100 and 5-1000, botocore's
`DITMaxResults` / `DITOMaxResults`), GetProducts as the Price List API (at most 100 a
page, `GetProductsMaxResults`), bare metal filed under its own product family and tenancy
(Karpenter's pricing.go)."""

from __future__ import annotations

import json

import pytest

from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.aws.catalogapis import CatalogApiError, CatalogApis


def row(name: str, usd: float, gpus: int = 0, sku: str = "") -> InstanceType:
    return InstanceType(
        cloud="aws",
        region="eu-west-1",
        name=name,
        family=name.split(".", maxsplit=1)[0],
        vcpu=4,
        memory_bytes=16 << 30,
        gpu_count=gpus,
        gpu_sku=sku,
        gpu_memory_bytes=(24 << 30) * gpus,
        arch="arm64" if sku == "T4G" else "amd64",
        on_demand_price=usd,
        spot_price=None,
        zones=("eu-west-1a", "eu-west-1b"),
    )


ROWS = [row(f"m5.{n}xlarge", 0.2 * n) for n in range(1, 8)] + [
    row("g5g.xlarge", 0.42, 1, "T4G"),
    row("c5.metal", 4.08),
]


def test_instance_types_come_in_pages_with_the_clouds_gpu_names() -> None:
    apis = CatalogApis("eu-west-1", ROWS)
    first = apis.describe_instance_types([], None, 5)
    assert len(first["InstanceTypes"]) == 5
    second = apis.describe_instance_types([], first["NextToken"], 5)
    assert len(second["InstanceTypes"]) == 4
    assert "NextToken" not in second
    g5g = next(i for i in second["InstanceTypes"] if i["InstanceType"] == "g5g.xlarge")
    assert g5g["GpuInfo"]["Gpus"][0]["Name"] == "T4g"  # as DescribeInstanceTypes spells it
    assert g5g["GpuInfo"]["TotalGpuMemoryInMiB"] == 24 * 1024
    assert g5g["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]
    assert next(i for i in second["InstanceTypes"] if i["InstanceType"] == "c5.metal")["BareMetal"]
    with pytest.raises(CatalogApiError):
        apis.describe_instance_types([], None, 101)
    with pytest.raises(CatalogApiError):
        apis.describe_instance_types([], "not-a-token", 5)


def test_offerings_per_zone() -> None:
    apis = CatalogApis("eu-west-1", ROWS)
    page = apis.describe_instance_type_offerings("availability-zone", None, 1000)
    assert len(page["InstanceTypeOfferings"]) == 18  # 9 types x 2 zones
    assert page["InstanceTypeOfferings"][0] == {
        "InstanceType": "m5.1xlarge",
        "LocationType": "availability-zone",
        "Location": "eu-west-1a",
    }


def test_get_products_files_bare_metal_apart_and_follows_a_price_change() -> None:
    apis = CatalogApis("eu-west-1", ROWS)

    def ask(tenancy: str, family: str) -> dict[str, float]:
        filters = {
            "regionCode": "eu-west-1",
            "operatingSystem": "Linux",
            "tenancy": tenancy,
            "productFamily": family,
            "marketoption": "OnDemand",
        }
        request = {
            "ServiceCode": "AmazonEC2",
            "Filters": [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        }
        prices: dict[str, float] = {}
        while True:
            page = apis.get_products({**request, "MaxResults": 3})
            for item in page["PriceList"]:
                product = json.loads(item)
                (term,) = product["terms"]["OnDemand"].values()
                (dimension,) = term["priceDimensions"].values()
                prices[product["product"]["attributes"]["instanceType"]] = float(
                    dimension["pricePerUnit"]["USD"]
                )
            if "NextToken" not in page:
                return prices
            request["NextToken"] = page["NextToken"]

    shared = ask("Shared", "Compute Instance")
    assert len(shared) == 8
    assert shared["m5.2xlarge"] == 0.4
    assert ask("Dedicated", "Compute Instance (bare metal)") == {"c5.metal": 4.08}
    assert ask("Shared", "Compute Instance (bare metal)") == {}
    apis.set_on_demand_price("m5.2xlarge", 0.05)
    assert ask("Shared", "Compute Instance")["m5.2xlarge"] == 0.05
