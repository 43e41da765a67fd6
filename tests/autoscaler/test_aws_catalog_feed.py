"""The AWS catalog from the APIs, kept with its date, refreshed off the loop's thread, and
the kept or built-in data (with a warning and a metric) when AWS cannot be asked."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from gibbous.autoscaler.cloud.awscatalog import AwsCatalogFeed, pricing_region
from gibbous.core.choice.catalog import InstanceType
from tests.autoscaler.test_catalog_feed import START, Clock, gauges
from tests.core.test_awslive import OFFERING_PAGES, PRICE_PAGES, TYPE_PAGES, price_item

REGION = "eu-west-1"


class Paged:
    """One paged API: its recorded pages in order, each after the previous page's token."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.calls.append(kwargs)
        tokens = [None] + [p.get("NextToken") for p in self.pages[:-1]]
        return self.pages[tokens.index(kwargs.get("NextToken"))]


class Ec2:
    def __init__(self) -> None:
        self.describe_instance_types = Paged(TYPE_PAGES)
        self.describe_instance_type_offerings = Paged(OFFERING_PAGES)


# What GetProducts answers for bare metal (tenancy Dedicated, product family "Compute
# Instance (bare metal)"), one page.
METAL_PAGES = [{"FormatVersion": "aws_v1", "PriceList": [price_item("c7i.metal-24xl", "4.6368")]}]


class Pricing:
    """GetProducts: the shared-tenancy pages or the bare-metal page, by the tenancy filter."""

    def __init__(self) -> None:
        self.shared, self.metal = Paged(PRICE_PAGES), Paged(METAL_PAGES)
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def get_products(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.calls.append(kwargs)
        tenancy = {f["Field"]: f["Value"] for f in kwargs["Filters"]}["tenancy"]
        return (self.metal if tenancy == "Dedicated" else self.shared)(**kwargs)


def refused(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "UnauthorizedOperation", "Message": "not authorized"}}, operation
    )


BUILTIN = [
    InstanceType(
        cloud="aws",
        region=REGION,
        name="m5.large",
        family="m5",
        vcpu=2,
        memory_bytes=8 << 30,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=0.107,
        spot_price=None,
        zones=("eu-west-1a",),
        price_date="2025-03-02",
    )
]


def feed(tmp_path: Path, clock: Clock, ec2: Any = None, pricing: Any = None) -> AwsCatalogFeed:
    return AwsCatalogFeed(
        ec2=ec2 or Ec2(),
        pricing=pricing or Pricing(),
        region=REGION,
        builtin=BUILTIN,
        clock=clock,
        cache_dir=str(tmp_path),
    )


def test_the_catalog_comes_from_every_page_of_the_three_apis(tmp_path: Path) -> None:
    ec2, pricing = Ec2(), Pricing()
    live = feed(tmp_path, Clock(), ec2, pricing)
    live.start()
    assert live.source == "api"
    assert sorted(t.name for t in live.types) == [
        "c7i.metal-24xl",
        "g5.xlarge",
        "g5g.xlarge",
        "m7g.large",
    ]
    assert [c.get("NextToken") for c in ec2.describe_instance_types.calls] == [None, "AAAA", "BBBB"]
    assert [c.get("NextToken") for c in pricing.shared.calls] == [None, "DDDD"]
    assert len(pricing.metal.calls) == 1
    common = {
        ("regionCode", "eu-west-1"),
        ("operatingSystem", "Linux"),
        ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"),
        ("marketoption", "OnDemand"),
    }
    assert {c["ServiceCode"] for c in pricing.calls} == {"AmazonEC2"}
    assert {(f["Field"], f["Value"]) for f in pricing.shared.calls[0]["Filters"]} == common | {
        ("tenancy", "Shared"),
        ("productFamily", "Compute Instance"),
    }
    assert {(f["Field"], f["Value"]) for f in pricing.metal.calls[0]["Filters"]} == common | {
        ("tenancy", "Dedicated"),
        ("productFamily", "Compute Instance (bare metal)"),
    }
    assert ec2.describe_instance_type_offerings.calls[0]["LocationType"] == "availability-zone"
    kept = json.loads((tmp_path / "aws-eu-west-1.json").read_text())
    assert kept["fetchedAt"] == START
    assert gauges(live)[("gibbous_catalog_age_seconds", "api")] == 0.0


def test_refused_apis_leave_the_built_in_data_with_a_warning_and_a_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    pricing = Pricing()
    pricing.error = refused("GetProducts")
    live = feed(tmp_path, clock, pricing=pricing)
    with caplog.at_level(logging.WARNING, "gibbous.autoscaler.aws"):
        live.start()
    assert live.source == "built-in"
    assert [t.name for t in live.current()[1]] == ["m5.large"]
    assert "not refreshed" in caplog.text
    assert "UnauthorizedOperation" in caplog.text
    assert "keeping the built-in catalog" in caplog.text
    assert live.stale_since == START


def test_an_old_kept_catalog_stays_when_aws_is_unreachable(tmp_path: Path) -> None:
    clock = Clock()
    feed(tmp_path, clock).start()
    clock.now += 7 * 3600  # past the 6-hour refresh
    ec2 = Ec2()
    ec2.describe_instance_types.error = EndpointConnectionError(endpoint_url="https://ec2")
    restarted = feed(tmp_path, clock, ec2)
    restarted.start()
    assert restarted.source == "kept"
    assert len(restarted.types) == 4
    assert restarted.stale_since == clock.now


def test_the_price_list_is_asked_at_its_nearest_endpoint() -> None:
    # botocore's endpoints.json serves `api.pricing` in us-east-1, eu-central-1, ap-south-1.
    assert pricing_region("us-west-2") == "us-east-1"
    assert pricing_region("eu-west-1") == "eu-central-1"
    assert pricing_region("ap-northeast-1") == "ap-south-1"
    assert pricing_region("sa-east-1") == "us-east-1"


def test_the_install_policy_grants_every_call_the_catalog_makes(tmp_path: Path) -> None:
    ec2, pricing = Ec2(), Pricing()
    feed(tmp_path, Clock(), ec2, pricing).start()
    called = {
        "ec2:DescribeInstanceTypes": ec2.describe_instance_types.calls,
        "ec2:DescribeInstanceTypeOfferings": ec2.describe_instance_type_offerings.calls,
        "pricing:GetProducts": pricing.calls,
    }
    guide = (Path(__file__).parents[2] / "docs" / "install" / "eks.md").read_text()
    policy = json.loads(guide.split("```json\n", 1)[1].split("```", 1)[0])
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert all(called.values())
    assert set(called) <= granted
