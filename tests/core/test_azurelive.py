"""Azure's catalog APIs read as catalog rows. The pages are recorded response shapes: Resource
SKUs as ARM answers `GET .../providers/Microsoft.Compute/skus?api-version=2021-07-01`
(azure-rest-api-specs' `ResourceSku`, `ResourceSkuCapabilities`, `ResourceSkuRestrictions`;
capability values are strings), Retail Prices as `prices.azure.com/api/retail/prices`
answers (the fields of Azure/karpenter-provider-azure's `pricingapi_types.go`, recorded
from the API); every expected value is read off those records by hand."""

from __future__ import annotations

import dataclasses

import pytest

from gibbous.core.choice.azurelive import (
    gpu_sku,
    live_catalog,
    parse_resource_skus,
    parse_retail_prices,
    read_azure_catalog_document,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.keptcatalog import catalog_document
from gibbous.core.errors import CatalogError

REGION = "westeurope"
GIB = 1024**3


def capabilities(**values: str) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def sku(
    name: str,
    zones: list[str],
    restrictions: list[dict[str, object]] | None = None,
    location: str = REGION,
    **values: str,
) -> dict[str, object]:
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "size": name.removeprefix("Standard_"),
        "family": "standardDSv5Family",
        "locations": [location],
        "locationInfo": [{"location": location, "zones": zones, "zoneDetails": []}],
        "capabilities": capabilities(**values),
        "restrictions": restrictions or [],
    }


SKU_PAGES: list[dict[str, object]] = [
    {
        "value": [
            {
                "resourceType": "disks",
                "name": "Premium_LRS",
                "tier": "Premium",
                "size": "P1",
                "family": "PremiumSSD",
                "locations": [REGION],
                "locationInfo": [{"location": REGION, "zones": [], "zoneDetails": []}],
                "capabilities": capabilities(MaxSizeGiB="4"),
                "restrictions": [],
            },
            sku(
                "Standard_D2s_v5",
                ["2", "1", "3"],
                MaxResourceVolumeMB="0",
                vCPUs="2",
                MemoryGB="8",
                CpuArchitectureType="x64",
                LowPriorityCapable="True",
            ),
            sku(
                "Standard_D2ps_v5",
                ["1", "2", "3"],
                vCPUs="2",
                MemoryGB="8",
                CpuArchitectureType="Arm64",
                LowPriorityCapable="True",
            ),
            # Zone 3 not for this subscription: the size stays, in zones 1 and 2.
            sku(
                "Standard_E2s_v5",
                ["1", "2", "3"],
                [
                    {
                        "type": "Zone",
                        "values": [REGION],
                        "restrictionInfo": {"locations": [REGION], "zones": ["3"]},
                        "reasonCode": "NotAvailableForSubscription",
                    }
                ],
                vCPUs="2",
                MemoryGB="16",
                CpuArchitectureType="x64",
                LowPriorityCapable="True",
            ),
        ],
        "nextLink": "https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/skus?api-version=2021-07-01&$skiptoken=4",
    },
    {
        "value": [
            sku(
                "Standard_NC4as_T4_v3",
                ["1", "2", "3"],
                vCPUs="4",
                MemoryGB="28",
                GPUs="1",
                CpuArchitectureType="x64",
                LowPriorityCapable="True",
            ),
            sku(
                "Standard_ND96isr_H100_v5",
                ["1", "2"],
                vCPUs="96",
                MemoryGB="1900",
                GPUs="8",
                CpuArchitectureType="x64",
                LowPriorityCapable="False",
            ),
            # Not for this subscription in the region at all.
            sku(
                "Standard_M416ms_v2",
                ["1"],
                [
                    {
                        "type": "Location",
                        "values": [REGION],
                        "restrictionInfo": {"locations": [REGION]},
                        "reasonCode": "NotAvailableForSubscription",
                    }
                ],
                vCPUs="416",
                MemoryGB="11400",
                CpuArchitectureType="x64",
            ),
            # Another region's record (an unfiltered list mixes them).
            sku(
                "Standard_D4s_v5",
                ["1"],
                location="westus",
                vCPUs="4",
                MemoryGB="16",
                CpuArchitectureType="x64",
            ),
            # A regional size (no zones) with half a GiB: memory is decimal GiB.
            sku("Standard_B1ls", [], vCPUs="1", MemoryGB="0.5", CpuArchitectureType="x64"),
        ]
    },
]


def price(
    arm_sku: str,
    usd: float,
    sku_name: str,
    *,
    product: str = "Virtual Machines DSv5 Series",
    unit: str = "1 Hour",
    region: str = REGION,
    kind: str = "Consumption",
) -> dict[str, object]:
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": usd,
        "unitPrice": usd,
        "armRegionName": region,
        "location": "EU West",
        "effectiveStartDate": "2024-05-01T00:00:00Z",
        "meterId": "000a794b-bdb0-58be-a0cd-0c3a0f222923",
        "meterName": sku_name,
        "productId": "DZH318Z0BQ4W",
        "skuId": "DZH318Z0BQ4W/00BQ",
        "productName": product,
        "skuName": sku_name,
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": unit,
        "type": kind,
        "isPrimaryMeterRegion": True,
        "armSkuName": arm_sku,
    }


PRICE_PAGES: list[dict[str, object]] = [
    {
        "BillingCurrency": "USD",
        "CustomerEntityId": "Default",
        "CustomerEntityType": "Retail",
        "Items": [
            price("Standard_D2s_v5", 0.096, "D2s v5"),
            price("Standard_D2s_v5", 0.0192, "D2s v5 Spot"),
            price("Standard_D2s_v5", 0.0192, "D2s v5 Low Priority"),
            price(
                "Standard_D2s_v5", 0.188, "D2s v5", product="Virtual Machines DSv5 Series Windows"
            ),
            price("Standard_D2s_v5", 0.05, "D2s v5", kind="DevTestConsumption"),
            price("Standard_D2s_v5", 0.07, "D2s v5", region="westus"),
            price("Standard_D2ps_v5", 0.077, "D2ps v5"),
            price("Standard_E2s_v5", 0.126, "E2s v5"),
            price("Standard_E2s_v5", 0.0252, "E2s v5 Spot"),
        ],
        "NextPageLink": "https://prices.azure.com:443/api/retail/prices?$filter=serviceName%20eq%20%27Virtual%20Machines%27&$skip=9",
        "Count": 9,
    },
    {
        "BillingCurrency": "USD",
        "CustomerEntityId": "Default",
        "CustomerEntityType": "Retail",
        "Items": [
            price("Standard_NC4as_T4_v3", 0.526, "NC4as T4 v3"),
            price("Standard_NC4as_T4_v3", 0.1052, "NC4as T4 v3 Spot"),
            # Two Linux meters of one size (a promotion meter, say): the lower one.
            price("Standard_ND96isr_H100_v5", 98.32, "ND96isr H100 v5"),
            price("Standard_ND96isr_H100_v5", 99.0, "ND96isr H100 v5 Legacy"),
            price("Standard_M416ms_v2", 109.2, "M416ms v2"),
            price("Standard_B1ls", 0.0052, "B1ls"),
            price("Standard_B1ls", 3.8, "B1ls", unit="1/Month"),
        ],
        "NextPageLink": None,
        "Count": 7,
    },
]


def test_resource_sku_pages_give_the_regions_sizes_zones_and_gpus() -> None:
    specs = parse_resource_skus(SKU_PAGES, REGION)
    assert sorted(specs) == [
        "Standard_B1ls",
        "Standard_D2ps_v5",
        "Standard_D2s_v5",
        "Standard_E2s_v5",
        "Standard_NC4as_T4_v3",
        "Standard_ND96isr_H100_v5",
    ]
    d2s = specs["Standard_D2s_v5"]
    assert (d2s.vcpu, d2s.memory_gib, d2s.arch, d2s.zones, d2s.spot) == (
        2,
        8.0,
        "amd64",
        ("1", "2", "3"),
        True,
    )
    assert specs["Standard_D2ps_v5"].arch == "arm64"
    assert specs["Standard_E2s_v5"].zones == ("1", "2")
    t4 = specs["Standard_NC4as_T4_v3"]
    assert (t4.gpu_count, t4.gpu_sku) == (1, "T4")
    h100 = specs["Standard_ND96isr_H100_v5"]
    assert (h100.gpu_count, h100.gpu_sku, h100.spot) == (8, "H100", False)
    assert specs["Standard_B1ls"].memory_gib == 0.5
    assert specs["Standard_B1ls"].zones == ()


@pytest.mark.parametrize(
    ("size", "sku_name"),
    [
        ("Standard_NC4as_T4_v3", "T4"),
        ("Standard_NC24ads_A100_v4", "A100"),
        ("Standard_ND96isr_H100_v5", "H100"),
        ("Standard_ND96isr_H200_v5", "H200"),
        ("Standard_NV36ads_A10_v5", "A10"),
        ("Standard_NC6s_v3", "V100"),
        ("Standard_NC24rs_v3", "V100"),
        ("Standard_ND40rs_v2", "V100"),
        ("Standard_ND96asr_v4", "A100"),
        ("Standard_D8s_v5", ""),
    ],
)
def test_size_names_give_the_catalogs_gpu_skus(size: str, sku_name: str) -> None:
    assert gpu_sku(size) == sku_name


def test_retail_price_pages_give_linux_pay_as_you_go_and_spot_prices() -> None:
    on_demand, spot = parse_retail_prices(PRICE_PAGES, REGION)
    assert on_demand == {
        "Standard_D2s_v5": 0.096,
        "Standard_D2ps_v5": 0.077,
        "Standard_E2s_v5": 0.126,
        "Standard_NC4as_T4_v3": 0.526,
        "Standard_ND96isr_H100_v5": 98.32,
        "Standard_M416ms_v2": 109.2,
        "Standard_B1ls": 0.0052,
    }
    assert spot == {
        "Standard_D2s_v5": 0.0192,
        "Standard_E2s_v5": 0.0252,
        "Standard_NC4as_T4_v3": 0.1052,
    }


def test_a_page_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(CatalogError, match="Items is not a list"):
        parse_retail_prices([{"Items": {"armSkuName": "x"}}], REGION)
    with pytest.raises(CatalogError, match="value is not a list"):
        parse_resource_skus([{"value": "Standard_D2s_v5"}], REGION)


def builtin_t4() -> InstanceType:
    return InstanceType(
        cloud="azure",
        region=REGION,
        name="Standard_NC4as_T4_v3",
        family="ncas_t4_v3",
        vcpu=4,
        memory_bytes=28 * GIB,
        gpu_count=1,
        gpu_sku="T4",
        gpu_memory_bytes=16 * GIB,
        arch="amd64",
        on_demand_price=0.6,
        spot_price=None,
        zones=(f"{REGION}-1",),
        max_pods=110,
        price_date="2025-03-02",
    )


def test_the_live_catalog_has_priced_sizes_only_in_their_zones() -> None:
    rows = live_catalog(
        REGION,
        specs=parse_resource_skus(SKU_PAGES, REGION),
        on_demand=parse_retail_prices(PRICE_PAGES, REGION)[0],
        spot=parse_retail_prices(PRICE_PAGES, REGION)[1],
        builtin=[builtin_t4()],
        date="2027-01-15",
    )
    by_name = {r.name: r for r in rows}
    # M416ms_v2 is priced but restricted: not offered.
    assert set(by_name) == {
        "Standard_B1ls",
        "Standard_D2ps_v5",
        "Standard_D2s_v5",
        "Standard_E2s_v5",
        "Standard_NC4as_T4_v3",
        "Standard_ND96isr_H100_v5",
    }
    d2s = by_name["Standard_D2s_v5"]
    assert (d2s.vcpu, d2s.memory_bytes, d2s.on_demand_price, d2s.spot_price) == (
        2,
        8 * GIB,
        0.096,
        0.0192,
    )
    assert d2s.zones == ("westeurope-1", "westeurope-2", "westeurope-3")
    assert d2s.price_date == "2027-01-15"
    assert d2s.family == "ds_v5"
    assert by_name["Standard_E2s_v5"].zones == ("westeurope-1", "westeurope-2")
    # No Spot meter: the spot price is estimated later (spotPriceRatioEstimate).
    assert by_name["Standard_D2ps_v5"].spot_price is None
    t4 = by_name["Standard_NC4as_T4_v3"]
    # The API's price and sizes win; the built-in row gives max pods.
    assert (t4.on_demand_price, t4.spot_price, t4.max_pods) == (0.526, 0.1052, 110)
    assert (t4.gpu_count, t4.gpu_sku, t4.gpu_memory_bytes) == (1, "T4", 16 * GIB)
    h100 = by_name["Standard_ND96isr_H100_v5"]
    # Not LowPriorityCapable: no spot; 8 H100s of 80 GB each (NDH100_v5's page).
    assert (h100.spot_offered, h100.spot_price) == (False, None)
    assert h100.gpu_memory_bytes == 8 * 80 * GIB
    assert by_name["Standard_B1ls"].memory_bytes == GIB // 2


def test_the_kept_document_reads_back_and_refuses_another_region_or_cloud() -> None:
    text = catalog_document([builtin_t4()], REGION, 1_800_000_000.0)
    fetched_at, types = read_azure_catalog_document(text, REGION)
    assert (fetched_at, types) == (1_800_000_000.0, [builtin_t4()])
    with pytest.raises(CatalogError, match="kept Azure catalog"):
        read_azure_catalog_document(text, "eastus")
    aws_row = dataclasses.replace(builtin_t4(), cloud="aws")
    with pytest.raises(CatalogError, match="another cloud"):
        read_azure_catalog_document(catalog_document([aws_row], REGION, 1.0), REGION)
    with pytest.raises(CatalogError, match="unreadable"):
        read_azure_catalog_document("{not json", REGION)
