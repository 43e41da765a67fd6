"""GCP's catalog APIs read as catalog rows. The pages are recorded response shapes of
Compute Engine's `machineTypes.aggregatedList` / `acceleratorTypes.aggregatedList`
(`MachineTypeAggregatedList`, `AcceleratorTypeAggregatedList` in the Compute v1 REST
reference) and the Cloud Billing Catalog API's `services.skus.list` (`Sku`, `Category`,
`PricingExpression`, `TierRate`, `Money`), with us-central1 list prices of the Compute
Engine pricing page; every expected value is computed by hand in the test."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.gcplive import (
    live_catalog,
    parse_accelerator_types,
    parse_machine_types,
    parse_skus,
    unit_price,
)
from gibbous.core.choice.keptcatalog import catalog_document, read_kept_catalog
from gibbous.core.errors import CatalogError

REGION = "us-central1"
GIB = 1024**3
ZONE_URL = "https://www.googleapis.com/compute/v1/projects/gibbous-dev/zones/"


def machine(name: str, zone: str, cpus: int, memory_mb: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "compute#machineType",
        "id": "1000",
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name,
        "description": f"{cpus} vCPUs, {memory_mb / 1024:g} GB RAM",
        "guestCpus": cpus,
        "memoryMb": memory_mb,
        "imageSpaceGb": 0,
        "maximumPersistentDisks": 128,
        "maximumPersistentDisksSizeGb": "263168",
        "zone": zone,
        "selfLink": f"{ZONE_URL}{zone}/machineTypes/{name}",
        "isSharedCpu": False,
        **extra,
    }


A100 = {"accelerators": [{"guestAcceleratorType": "nvidia-tesla-a100", "guestAcceleratorCount": 1}]}
MACHINE_PAGES: list[dict[str, Any]] = [
    {
        "kind": "compute#machineTypeAggregatedList",
        "id": "projects/gibbous-dev/aggregated/machineTypes",
        "items": {
            "zones/us-central1-a": {
                "machineTypes": [
                    machine("n1-standard-4", "us-central1-a", 4, 15360),
                    machine("e2-medium", "us-central1-a", 2, 4096, isSharedCpu=True),
                    machine("a2-highgpu-1g", "us-central1-a", 12, 87040, **A100),
                    machine("t2a-standard-1", "us-central1-a", 1, 4096, architecture="ARM64"),
                ]
            },
            "zones/europe-west4-a": {
                "machineTypes": [machine("n1-standard-4", "europe-west4-a", 4, 15360)]
            },
        },
        "nextPageToken": "page-2",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/gibbous-dev/aggregated/machineTypes",
    },
    {
        "kind": "compute#machineTypeAggregatedList",
        "items": {
            "zones/us-central1-b": {
                "machineTypes": [
                    machine("n1-standard-4", "us-central1-b", 4, 15360),
                    machine(
                        "n1-standard-2",
                        "us-central1-b",
                        2,
                        7680,
                        deprecated={"state": "OBSOLETE"},
                    ),
                ]
            },
            "zones/us-central1-f": {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": "There are no results for scope 'zones/us-central1-f' on this page.",
                    "data": [{"key": "scope", "value": "zones/us-central1-f"}],
                }
            },
        },
    },
]


def accelerator(name: str, zone: str, cards: int) -> dict[str, Any]:
    return {
        "kind": "compute#acceleratorType",
        "id": "10002",
        "name": name,
        "description": name,
        "zone": f"{ZONE_URL}{zone}",
        "selfLink": f"{ZONE_URL}{zone}/acceleratorTypes/{name}",
        "maximumCardsPerInstance": cards,
    }


ACCELERATOR_PAGES: list[dict[str, Any]] = [
    {
        "kind": "compute#acceleratorTypeAggregatedList",
        "items": {
            "zones/us-central1-a": {
                "acceleratorTypes": [
                    accelerator("nvidia-tesla-t4", "us-central1-a", 4),
                    accelerator("nvidia-tesla-a100", "us-central1-a", 16),
                ]
            }
        },
        "nextPageToken": "2",
    },
    {
        "kind": "compute#acceleratorTypeAggregatedList",
        "items": {
            "zones/us-central1-b": {
                "acceleratorTypes": [accelerator("nvidia-tesla-t4", "us-central1-b", 2)]
            }
        },
    },
]


def sku(
    description: str,
    group: str,
    usage: str,
    nanos: int,
    *,
    units: str = "0",
    unit: str = "h",
    regions: tuple[str, ...] = (REGION,),
) -> dict[str, Any]:
    return {
        "name": f"services/6F81-5844-456A/skus/{abs(hash(description)) % 10**12:012d}",
        "skuId": "0000-0000-0000",
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": "Compute",
            "resourceGroup": group,
            "usageType": usage,
        },
        "serviceRegions": list(regions),
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos},
                        }
                    ],
                    "usageUnitDescription": "hour",
                    "baseUnit": "s",
                    "baseUnitDescription": "second",
                    "baseUnitConversionFactor": 3600,
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2026-12-01T00:00:00Z",
            }
        ],
        "serviceProviderName": "Google",
    }


SKU_PAGES: list[dict[str, Any]] = [
    {
        "skus": [
            sku(
                "N1 Predefined Instance Core running in Americas",
                "N1Standard",
                "OnDemand",
                31611000,
            ),
            sku(
                "N1 Predefined Instance Ram running in Americas",
                "N1Standard",
                "OnDemand",
                4237000,
                unit="GiBy.h",
            ),
            sku("E2 Instance Core running in Americas", "CPU", "OnDemand", 21811000),
            sku("E2 Instance Ram running in Americas", "RAM", "OnDemand", 2923000, unit="GiBy.h"),
            sku("Nvidia Tesla T4 GPU running in Americas", "GPU", "OnDemand", 350000000),
            sku(
                "Spot Preemptible N1 Predefined Instance Core running in Americas",
                "N1Standard",
                "Preemptible",
                6980000,
            ),
        ],
        "nextPageToken": "next",
    },
    {
        "skus": [
            sku(
                "Spot Preemptible N1 Predefined Instance Ram running in Americas",
                "N1Standard",
                "Preemptible",
                935000,
                unit="GiBy.h",
            ),
            sku("Nvidia Tesla T4 GPU running in Americas", "GPU", "Preemptible", 140000000),
            sku("A2 Instance Core running in Americas", "CPU", "OnDemand", 31611000),
            sku("A2 Instance Ram running in Americas", "RAM", "OnDemand", 4237000, unit="GiBy.h"),
            sku(
                "Nvidia Tesla A100 GPU running in Americas",
                "GPU",
                "OnDemand",
                933908000,
                units="2",
            ),
            # Another region's N1 core, a commitment and a custom core: none of them count.
            sku(
                "N1 Predefined Instance Core running in EMEA",
                "N1Standard",
                "OnDemand",
                99000000,
                regions=("europe-west4",),
            ),
            sku("Commitment v1: Cpu in Americas for 1 Year", "CPU", "Commit1Yr", 19915000),
            sku("Custom Instance Core running in Americas", "CPU", "OnDemand", 99000000),
        ]
    },
]


def test_machine_types_are_the_regions_active_ones_with_their_zones() -> None:
    found = parse_machine_types(MACHINE_PAGES, REGION)
    assert sorted(found) == ["a2-highgpu-1g", "e2-medium", "n1-standard-4", "t2a-standard-1"]
    n1 = found["n1-standard-4"]
    assert (n1.vcpu, n1.memory_mib, n1.arch) == (4, 15360, "amd64")
    assert n1.zones == ("us-central1-a", "us-central1-b")  # not europe-west4-a
    a2 = found["a2-highgpu-1g"]
    assert (a2.accelerator, a2.accelerator_count) == ("nvidia-tesla-a100", 1)
    assert found["t2a-standard-1"].arch == "arm64"
    assert found["e2-medium"].shared_cpu


def test_accelerator_types_by_zone_with_their_card_limit() -> None:
    assert parse_accelerator_types(ACCELERATOR_PAGES, REGION) == {
        "nvidia-tesla-t4": {"us-central1-a": 4, "us-central1-b": 2},
        "nvidia-tesla-a100": {"us-central1-a": 16},
    }


def test_sku_price_is_units_plus_nanos() -> None:
    assert unit_price(sku("x", "GPU", "OnDemand", 933908000, units="2")) == pytest.approx(2.933908)
    assert unit_price({"pricingInfo": []}) is None


def test_skus_are_rates_of_the_region_by_usage_type() -> None:
    rates = parse_skus(SKU_PAGES, REGION)
    on_demand, spot = rates["OnDemand"], rates["Preemptible"]
    assert on_demand.core == pytest.approx({"n1": 0.031611, "e2": 0.021811, "a2": 0.031611})
    assert on_demand.ram == pytest.approx({"n1": 0.004237, "e2": 0.002923, "a2": 0.004237})
    assert on_demand.gpu == pytest.approx({"nvidia-tesla-t4": 0.35, "nvidia-tesla-a100": 2.933908})
    assert spot.core == pytest.approx({"n1": 0.00698})
    assert spot.ram == pytest.approx({"n1": 0.000935})
    assert spot.gpu == pytest.approx({"nvidia-tesla-t4": 0.14})
    assert "Commit1Yr" not in rates


def test_live_catalog_composes_prices_as_compute_engine_bills_them() -> None:
    types = live_catalog(
        REGION,
        machines=parse_machine_types(MACHINE_PAGES, REGION),
        accelerators=parse_accelerator_types(ACCELERATOR_PAGES, REGION),
        rates=parse_skus(SKU_PAGES, REGION),
        date="2026-12-06",
    )
    by_name = {t.name: t for t in types}
    # t2a has no priced core here: left out. A100 attaches to no N1.
    assert sorted(by_name) == [
        "a2-highgpu-1g",
        "e2-medium",
        "n1-standard-4",
        "n1-standard-4+t4x1",
        "n1-standard-4+t4x2",
        "n1-standard-4+t4x4",
    ]
    n1 = by_name["n1-standard-4"]
    # 4 x 0.031611 + 15 GiB x 0.004237 = 0.126444 + 0.063555
    assert n1.on_demand_price == pytest.approx(0.189999)
    # 4 x 0.00698 + 15 x 0.000935 = 0.02792 + 0.014025
    assert n1.spot_price == pytest.approx(0.041945)
    assert (n1.memory_bytes, n1.family, n1.price_date) == (15 * GIB, "n1", "2026-12-06")
    # e2-medium bills one vCPU: 0.021811 + 4 x 0.002923
    assert by_name["e2-medium"].on_demand_price == pytest.approx(0.033503)
    assert by_name["e2-medium"].spot_price is None
    assert not by_name["e2-medium"].spot_offered
    # 12 x 0.031611 + 85 x 0.004237 + 2.933908
    a2 = by_name["a2-highgpu-1g"]
    assert a2.on_demand_price == pytest.approx(3.673385)
    assert (a2.gpu_count, a2.gpu_sku, a2.gpu_memory_bytes) == (1, "A100", 40 * GIB)
    t4x2 = by_name["n1-standard-4+t4x2"]
    assert t4x2.on_demand_price == pytest.approx(0.189999 + 2 * 0.35)
    assert t4x2.spot_price == pytest.approx(0.041945 + 2 * 0.14)
    assert (t4x2.gpu_count, t4x2.gpu_sku, t4x2.gpu_memory_bytes) == (2, "T4", 32 * GIB)
    assert t4x2.zones == ("us-central1-a", "us-central1-b")
    # us-central1-b attaches at most 2 T4s
    assert by_name["n1-standard-4+t4x4"].zones == ("us-central1-a",)


def test_a_page_that_is_not_the_api_shape_is_an_error() -> None:
    with pytest.raises(CatalogError, match="items"):
        parse_machine_types([{"items": ["zones/us-central1-a"]}], REGION)
    with pytest.raises(CatalogError, match="skus"):
        parse_skus([{"skus": {"description": "x"}}], REGION)
    with pytest.raises(CatalogError, match="not an object"):
        parse_machine_types([{"items": {"zones/us-central1-a": ["n1-standard-4"]}}], REGION)
    # stray entries that are not objects are skipped, the rest read
    assert parse_skus([{"skus": ["x", *SKU_PAGES[0]["skus"]]}], REGION)["OnDemand"].core == (
        pytest.approx({"n1": 0.031611, "e2": 0.021811})
    )


def test_a_damaged_kept_gcp_catalog_is_refused_as_a_gcp_one() -> None:
    e2 = InstanceType(
        cloud="gcp",
        region=REGION,
        name="e2-standard-4",
        family="e2",
        vcpu=4.0,
        memory_bytes=16 * GIB,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=0.134,
        spot_price=None,
        zones=("us-central1-a",),
    )
    text = catalog_document([e2], REGION, 1_800_000_000.0)
    assert read_kept_catalog(text, "gcp", REGION) == (1_800_000_000.0, [e2])
    with pytest.raises(CatalogError, match="kept GCP catalog") as damaged:
        read_kept_catalog(text[: len(text) // 2], "gcp", REGION)
    assert "AWS" not in str(damaged.value)
    with pytest.raises(CatalogError, match=r"kept AWS catalog.*another cloud"):
        read_kept_catalog(text, "aws", REGION)
