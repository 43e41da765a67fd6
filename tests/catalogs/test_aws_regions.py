"""The built-in AWS catalog covers every public commercial region, with the big families where
AWS sells them.

The regions come from botocore's endpoints.json (the `aws` partition), which families each region
sells from moto's recorded DescribeInstanceTypeOfferings answers, and each family's GPU from AWS's
accelerated-computing page (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html): none of them
from the catalog file. Loading goes through the product's loader, one region at a time.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import botocore
import moto
import pytest

from gibbous.catalogs import builtin_regions, load_catalog
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

MOTO_OFFERINGS = Path(moto.__file__).parent / "ec2" / "resources" / "instance_type_offerings"
# Regions botocore lists that no public offline source prices yet (libcloud's price list and
# moto's offerings both predate them): the autoscaler builds their catalog from AWS's APIs.
NO_PUBLIC_SOURCE = {"ap-east-2", "ap-southeast-6"}
# A type of each big family and its GPU (AWS "Accelerated computing instances" specifications).
FAMILIES = {
    "p6-b200.48xlarge": (8, "B200"),
    "p5en.48xlarge": (8, "H200"),
    "p5.48xlarge": (8, "H100"),
    "p4d.24xlarge": (8, "A100"),
    "g6.xlarge": (1, "L4"),
    "g6e.xlarge": (1, "L40S"),
    "g4dn.xlarge": (1, "T4"),
    "g5.xlarge": (1, "A10G"),
    # High memory (AWS "Memory optimized": 32 GiB per vCPU, Graviton4 16 GiB per vCPU, 6 TiB).
    "x2iedn.xlarge": (0, ""),
    "x8g.xlarge": (0, ""),
    "u-6tb1.112xlarge": (0, ""),
    # Bare metal.
    "m5.metal": (0, ""),
    "c6i.metal": (0, ""),
}
MEMORY_GIB = {"x2iedn.xlarge": 128, "x8g.xlarge": 64, "u-6tb1.112xlarge": 6144, "m5.metal": 384}


def public_regions() -> list[str]:
    document = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    return sorted(next(p for p in document["partitions"] if p["partition"] == "aws")["regions"])


@cache
def moto_sells(region: str) -> frozenset[str] | None:
    path = MOTO_OFFERINGS / "region" / f"{region}.json.gz"
    if not path.exists():
        return None
    with gzip.open(path) as handle:
        return frozenset(offer["InstanceType"] for offer in json.load(handle))


@cache
def catalog(region: str) -> dict[str, InstanceType]:
    return {t.name: t for t in load_catalog(None, "aws", region)}


def test_every_public_region_but_the_unpriced_ones_has_a_builtin_catalog() -> None:
    regions = public_regions()
    assert len(regions) >= 30 and "eu-west-1" in regions and "us-gov-west-1" not in regions
    assert set(builtin_regions("aws")) == set(regions) - NO_PUBLIC_SOURCE
    for region in set(regions) - NO_PUBLIC_SOURCE:
        types = catalog(region)
        assert len(types) >= 50, region
        assert all(t.region == region and t.on_demand_price > 0 for t in types.values())


def test_the_regions_left_out_really_have_no_public_offline_source() -> None:
    """When libcloud or moto learns them, they belong in the catalog: this fails then."""
    path = find_spec("libcloud")
    assert path is not None and path.origin is not None
    pricing = json.loads((Path(path.origin).parent / "data" / "pricing.json").read_text())
    priced = {r for by_region in pricing["compute"]["ec2_linux"].values() for r in by_region}
    for region in NO_PUBLIC_SOURCE:
        assert region not in priced and moto_sells(region) is None
        with pytest.raises(CatalogError, match=f"no instance types for aws/{region}"):
            load_catalog(None, "aws", region)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_big_family_is_there_in_every_region_that_sells_it(name: str) -> None:
    gpus, sku = FAMILIES[name]
    selling = [
        region
        for region in public_regions()
        if region not in NO_PUBLIC_SOURCE and name in (moto_sells(region) or frozenset())
    ]
    assert selling, f"moto says no region sells {name}"
    for region in selling:
        found = catalog(region).get(name)
        assert found is not None, f"{name} missing in {region}"
        assert (found.gpu_count, found.gpu_sku) == (gpus, sku)
        if name in MEMORY_GIB:
            assert found.memory_bytes == MEMORY_GIB[name] * 2**30


def test_a_region_is_priced_as_that_region_and_zoned_with_its_zones() -> None:
    # libcloud 3.9.1 pricing.json: m5.large $0.114 in eu-west-1; karpenter-provider-aws's
    # generated us-east-1 list (2026-07-20): $0.096.
    eu, us = catalog("eu-west-1")["m5.large"], catalog("us-east-1")["m5.large"]
    assert (eu.on_demand_price, us.on_demand_price) == (0.114, 0.096)
    assert eu.zones == ("eu-west-1a", "eu-west-1b", "eu-west-1c")


def test_the_us_west_2_prices_the_tests_and_posts_rely_on_are_unchanged() -> None:
    us_west_2 = catalog("us-west-2")
    # Post P00 (p4d), P17 (g4dn.xlarge) and libcloud's us-west-2 m5.large ($0.102).
    assert us_west_2["p4d.24xlarge"].on_demand_price == 21.958
    assert us_west_2["g4dn.xlarge"].on_demand_price == 0.526
    assert us_west_2["m5.large"].on_demand_price == 0.102
