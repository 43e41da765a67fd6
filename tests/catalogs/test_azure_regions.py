"""The built-in Azure catalog covers every public region with a published price, with the big
GPU and high-memory sizes where Azure sells them.

The regions come from an ARM Locations response (regionType Physical, the EUAP canary regions
left out) recorded in karpenter-provider-azure's pkg/fake/locations.json, matching Azure's
"Azure regions list" page; which region sells which size from the Retail Prices table vendored
for the generator (scripts/catalogs/data/azure-prices.json.gz: a size has a Linux price only
where it is sold); each size's GPUs from Azure's GPU size pages. None of them from the catalog.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from gibbous.catalogs import builtin_regions, load_catalog
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

RETAIL_PRICES = (
    Path(__file__).resolve().parents[2] / "scripts" / "catalogs" / "data" / "azure-prices.json.gz"
)
PUBLIC_REGIONS = [
    "australiacentral",
    "australiacentral2",
    "australiaeast",
    "australiasoutheast",
    "austriaeast",
    "belgiumcentral",
    "brazilsouth",
    "brazilsoutheast",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "chilecentral",
    "denmarkeast",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "francesouth",
    "germanynorth",
    "germanywestcentral",
    "indonesiacentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "jioindiacentral",
    "jioindiawest",
    "koreacentral",
    "koreasouth",
    "malaysiawest",
    "mexicocentral",
    "newzealandnorth",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "norwaywest",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southafricawest",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "switzerlandnorth",
    "switzerlandwest",
    "uaecentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
]
# Opened after the Retail table was recorded (2026-06): no public price yet; the autoscaler
# builds their catalog from the Retail Prices API.
NO_PUBLIC_PRICE = {"belgiumcentral", "denmarkeast"}
# Size -> (GPUs, model): Azure's ND H100 v5, ND H200 v5, NC A100 v4, ND A100 v4, NCads H100 v5,
# NCasT4_v3 and NVadsA10 v5 pages; M-series: high memory (Mv2 416 vCPUs, 11,400 GiB).
SIZES = {
    "Standard_ND96isr_H100_v5": (8, "H100"),
    "Standard_ND96isr_H200_v5": (8, "H200"),
    "Standard_NC40ads_H100_v5": (1, "H100"),
    "Standard_NC24ads_A100_v4": (1, "A100"),
    "Standard_ND96amsr_A100_v4": (8, "A100"),
    "Standard_NC4as_T4_v3": (1, "T4"),
    "Standard_NC64as_T4_v3": (4, "T4"),
    "Standard_NV36ads_A10_v5": (1, "A10"),
    "Standard_M416ms_v2": (0, ""),
    "Standard_M128s_v2": (0, ""),
    # Arm (Azure's naming convention: `p` marks an Arm CPU; Dpsv5 Ampere Altra, Dpsv6 Cobalt).
    "Standard_D4ps_v5": (0, ""),
    "Standard_D4ps_v6": (0, ""),
}
MEMORY_GIB = {"Standard_M416ms_v2": 11400, "Standard_M128s_v2": 2048}


@cache
def retail_prices() -> dict[str, dict[str, float]]:
    with gzip.open(RETAIL_PRICES, "rt") as handle:
        prices: dict[str, dict[str, float]] = json.load(handle)["prices"]
    return prices


@cache
def catalog(region: str) -> dict[str, InstanceType]:
    return {t.name: t for t in load_catalog(None, "azure", region)}


def test_every_public_region_with_a_price_has_a_builtin_catalog() -> None:
    regions = set(PUBLIC_REGIONS) - NO_PUBLIC_PRICE
    assert regions <= set(builtin_regions("azure"))
    for region in regions:
        types = catalog(region)
        assert len(types) >= 100, region
        assert all(t.region == region and t.on_demand_price > 0 for t in types.values())


def test_the_regions_left_out_have_no_published_price() -> None:
    for region in NO_PUBLIC_PRICE:
        assert region not in retail_prices()
        with pytest.raises(CatalogError, match=f"no instance types for azure/{region}"):
            load_catalog(None, "azure", region)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_each_big_size_is_there_in_every_region_that_sells_it(name: str) -> None:
    gpus, model = SIZES[name]
    selling = [
        region
        for region, prices in retail_prices().items()
        if prices.get(name, 0) > 0 and region in PUBLIC_REGIONS
    ]
    assert selling, f"the Retail table sells {name} nowhere"
    for region in selling:
        found = catalog(region).get(name)
        assert found is not None, f"{name} missing in {region}"
        assert (found.gpu_count, found.gpu_sku) == (gpus, model)
        if name in MEMORY_GIB:
            assert found.memory_bytes == MEMORY_GIB[name] * 2**30
        assert found.arch == ("arm64" if "ps_v" in name else "amd64")


def test_a_region_is_priced_and_zoned_as_that_region() -> None:
    # Retail table: D4s_v5 $0.23/h in westeurope; West Europe has zones 1 to 3.
    d4 = catalog("westeurope")["Standard_D4s_v5"]
    assert d4.on_demand_price == 0.23
    assert d4.zones == ("westeurope-1", "westeurope-2", "westeurope-3")
    # West Central US has no availability zones (ARM Locations: no zone mappings).
    assert catalog("westcentralus")["Standard_D4s_v5"].zones == ()


def test_the_eastus_prices_the_tests_and_posts_rely_on_are_unchanged() -> None:
    eastus = catalog("eastus")
    # Posts P17 (NC4as_T4_v3), P04 (E4as_v5, NV36ads_A10_v5) and P10 (B2als_v2).
    assert eastus["Standard_NC4as_T4_v3"].on_demand_price == 0.526
    assert eastus["Standard_E4as_v5"].on_demand_price == 0.226
    assert eastus["Standard_NV36ads_A10_v5"].on_demand_price == 3.20
    assert eastus["Standard_B2als_v2"].on_demand_price == 0.0376


def test_a_size_listed_at_a_windows_meter_price_is_left_out() -> None:
    """The Retail table lists westeurope E2as_v5 at $0.229 where E4as_v5 is $0.274 (half the
    per-vCPU rate): a Windows meter's price, not Linux; the catalog leaves it out."""
    assert retail_prices()["westeurope"]["Standard_E2as_v5"] == 0.229
    assert "Standard_E2as_v5" not in catalog("westeurope")
    assert catalog("westeurope")["Standard_E4as_v5"].on_demand_price == 0.274
