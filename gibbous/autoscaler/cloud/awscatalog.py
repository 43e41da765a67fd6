"""The AWS catalog from AWS's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider aws` without `--catalog FILE`).

Sources (see `gibbous.core.choice.awslive` for the fields read): `ec2:DescribeInstanceTypes`,
`ec2:DescribeInstanceTypeOfferings` (availability zones) and the Price List API's
`pricing:GetProducts` (on-demand Linux, no pre-installed software, capacity status Used;
shared tenancy, and bare metal's dedicated hosts). The Price List API answers only at three endpoints (us-east-1, eu-central-1,
ap-south-1; AWS's "Using the AWS Price List Query API"), so it is asked at the nearest one.

Kept on disk, refreshed and reported as every cloud's is: `gibbous.autoscaler.cloud.catalogfeed`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from gibbous.autoscaler.cloud.catalogfeed import CatalogFeed
from gibbous.core.choice.awslive import (
    live_catalog,
    parse_instance_types,
    parse_offerings,
    parse_price_list,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

MAX_PAGES = 500  # bounded: a region lists about 1,000 types, 100 a page
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
PRICE_FILTERS = (
    ("regionCode", None),  # the cluster's region
    ("operatingSystem", "Linux"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("marketoption", "OnDemand"),
)
# The Price List files bare-metal types under their own product family and tenancy
# `Dedicated` (a whole host); the rest under `Compute Instance`, tenancy `Shared`. Karpenter
# asks for both the same way (aws/karpenter-provider-aws pkg/providers/pricing/pricing.go).
PRODUCT_QUERIES = (
    (("tenancy", "Shared"), ("productFamily", "Compute Instance")),
    (("tenancy", "Dedicated"), ("productFamily", "Compute Instance (bare metal)")),
)


def pricing_region(region: str) -> str:
    """The Price List API endpoint nearest to `region`."""
    if region.startswith("ap-"):
        return "ap-south-1"
    if region.startswith(("eu-", "me-", "af-", "il-")):
        return "eu-central-1"
    return "us-east-1"


def _pages(call: Callable[..., dict[str, Any]], **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a NextToken-paged call (at most MAX_PAGES)."""
    token = None
    for _ in range(MAX_PAGES):
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield page
        token = page.get("NextToken")
        if not token:
            return
    raise CatalogError("aws-api", 0, f"more than {MAX_PAGES} pages")


def fetch_catalog(
    ec2: Any, pricing: Any, region: str, builtin: list[InstanceType], now: float
) -> list[InstanceType]:
    """The region's catalog as the three APIs give it now."""
    specs = parse_instance_types(_pages(ec2.describe_instance_types, MaxResults=100))
    zones = parse_offerings(
        _pages(
            ec2.describe_instance_type_offerings,
            LocationType="availability-zone",
            MaxResults=1000,
        )
    )
    prices: dict[str, float] = {}
    for query in PRODUCT_QUERIES:
        filters = [
            {"Type": "TERM_MATCH", "Field": name, "Value": value or region}
            for name, value in (*PRICE_FILTERS, *query)
        ]
        found = parse_price_list(
            _pages(
                pricing.get_products,
                ServiceCode="AmazonEC2",
                Filters=filters,
                FormatVersion="aws_v1",
                MaxResults=100,
            )
        )
        prices.update({k: v for k, v in found.items() if k not in prices})
    date = datetime.datetime.fromtimestamp(now, datetime.UTC).date().isoformat()
    types = live_catalog(
        region, specs=specs, zones=zones, prices=prices, builtin=builtin, date=date
    )
    if not types:
        raise CatalogError(
            "aws-api",
            0,
            f"no priced type offered in {region} ({len(specs)} types, "
            f"{len(zones)} offered, {len(prices)} prices)",
        )
    return types


@dataclass(eq=False, kw_only=True)  # registered as a Prometheus collector: hashed by identity
class AwsCatalogFeed(CatalogFeed):
    """The AWS catalog in use (`CatalogFeed`), from EC2 and the Price List API."""

    cloud: ClassVar[str] = "aws"
    api_names: ClassVar[str] = "the EC2 and Price List APIs"
    api_errors: ClassVar[tuple[type[Exception], ...]] = (ClientError, BotoCoreError)
    log: ClassVar[logging.Logger] = logging.getLogger("gibbous.autoscaler.aws")

    ec2: Any
    pricing: Any

    def fetch_types(self, now: float) -> list[InstanceType]:
        return fetch_catalog(self.ec2, self.pricing, self.region, self.builtin, now)
