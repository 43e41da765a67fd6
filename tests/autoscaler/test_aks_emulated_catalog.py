"""The AKS emulator's catalog APIs (Resource SKUs and the Retail Prices API, in Azure's
shapes, paged), and `--provider azure` as the autoscaler builds it taking its catalog from
them over HTTPS and following a price change. No launch: the catalog alone (the SDK's
pollers are slow)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gibbous.autoscaler.cloud.akscatalog import FollowingPoolProvider
from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.autoscaler.providers.aks import PROVIDER
from gibbous.cli import build_parser
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.azure.catalogapis import AzureCatalogApis, CatalogApiError
from gibbous.devcluster.azure.emulator import AksEmulator
from tests.autoscaler.sdkworld import Clock
from tests.factories import config

GIB = 1 << 30


def row(name: str, usd: float, gpus: int = 0) -> InstanceType:
    return InstanceType(
        cloud="azure",
        region="westeurope",
        name=name,
        family="",
        vcpu=4,
        memory_bytes=16 * GIB,
        gpu_count=gpus,
        gpu_sku="T4" if gpus else "",
        gpu_memory_bytes=16 * GIB * gpus,
        arch="amd64",
        on_demand_price=usd,
        spot_price=None,
        zones=("westeurope-1", "westeurope-3"),
    )


ROWS = [row(f"Standard_D{n}s_v5", 0.1 * n) for n in (2, 4, 8, 16, 32)] + [
    row("Standard_NC4as_T4_v3", 0.526, 1)
]


def query(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def test_resource_skus_come_in_pages_in_azures_shape() -> None:
    apis = AzureCatalogApis("sub-1", "westeurope", ROWS, sku_page=4)
    first = apis.resource_skus({"$filter": ["location eq 'westeurope'"]}, "https://arm")
    # The disk SKU and three sizes, then three sizes.
    assert [r["resourceType"] for r in first["value"]] == ["disks"] + ["virtualMachines"] * 3
    link = first["nextLink"]
    assert link.startswith("https://arm/subscriptions/sub-1/providers/Microsoft.Compute/skus?")
    second = apis.resource_skus(query(link), "https://arm")
    assert len(second["value"]) == 3
    assert "nextLink" not in second
    t4 = next(r for r in second["value"] if r["name"] == "Standard_NC4as_T4_v3")
    capabilities = {c["name"]: c["value"] for c in t4["capabilities"]}
    # ARM's capability values are strings.
    assert (capabilities["vCPUs"], capabilities["MemoryGB"], capabilities["GPUs"]) == (
        "4",
        "16",
        "1",
    )
    assert t4["locationInfo"] == [
        {"location": "westeurope", "zones": ["1", "3"], "zoneDetails": []}
    ]
    assert apis.resource_skus({"$filter": ["location eq 'eastus'"]}, "https://arm") == {"value": []}
    with pytest.raises(CatalogApiError):
        apis.resource_skus({"$filter": ["name eq 'x'"]}, "https://arm")


def test_a_restricted_size_is_marked_not_available_for_the_subscription() -> None:
    apis = AzureCatalogApis("sub-1", "westeurope", ROWS)
    apis.restrict("Standard_D2s_v5")
    apis.restrict("Standard_D4s_v5", ("3",))
    records = {r["name"]: r for r in apis.resource_skus({}, "https://arm")["value"]}
    (whole,) = records["Standard_D2s_v5"]["restrictions"]
    assert (whole["type"], whole["reasonCode"]) == ("Location", "NotAvailableForSubscription")
    (zone,) = records["Standard_D4s_v5"]["restrictions"]
    assert (zone["type"], zone["restrictionInfo"]["zones"]) == ("Zone", ["3"])


def test_retail_prices_come_in_pages_with_every_meter_of_a_size() -> None:
    apis = AzureCatalogApis("sub-1", "westeurope", ROWS, price_page=5)
    asked = {
        "$filter": [
            "serviceName eq 'Virtual Machines' and armRegionName eq 'westeurope' "
            "and priceType eq 'Consumption'"
        ]
    }
    page = apis.retail_prices(asked, "https://prices")
    items: list[dict[str, Any]] = list(page["Items"])
    pages = 1
    while page["NextPageLink"]:
        assert page["NextPageLink"].startswith("https://prices/api/retail/prices?")
        page = apis.retail_prices(query(page["NextPageLink"]), "https://prices")
        pages += 1
        items += page["Items"]
    # Six sizes, four meters each (Linux, Spot, Low Priority, Windows), five a page.
    assert pages == 5
    assert len(items) == 24
    d2 = [i for i in items if i["armSkuName"] == "Standard_D2s_v5"]
    assert sorted((i["skuName"], i["productName"].endswith(" Windows")) for i in d2) == [
        ("D2s v5", False),
        ("D2s v5", True),
        ("D2s v5 Low Priority", False),
        ("D2s v5 Spot", False),
    ]
    linux = next(i for i in d2 if i["skuName"] == "D2s v5" and "Windows" not in i["productName"])
    assert (linux["retailPrice"], linux["unitOfMeasure"], linux["type"]) == (
        0.2,
        "1 Hour",
        "Consumption",
    )
    apis.set_price("Standard_D2s_v5", 0.05)
    apis.price_page = 100
    again = apis.retail_prices(asked, "x")["Items"]
    assert 0.05 in {i["retailPrice"] for i in again if i["meterName"] == "D2s v5"}
    with pytest.raises(CatalogApiError):
        apis.retail_prices({"$filter": ["contains(skuName, 'Spot')"]}, "x")


@pytest.fixture
def emulated(tmp_path: Path) -> Iterator[tuple[AksEmulator, str]]:
    emulator = AksEmulator(clock=Clock())
    # Small pages, so the provider follows nextLink and NextPageLink.
    emulator.catalog_apis.sku_page = 25
    emulator.catalog_apis.price_page = 100
    server, ca = emulator.serve(directory=tmp_path)
    yield emulator, str(ca)
    server.shutdown()
    server.server_close()


def test_the_catalog_comes_from_the_apis_and_follows_a_price_change(
    emulated: tuple[AksEmulator, str], tmp_path: Path
) -> None:
    """`--provider azure` as the autoscaler starts it against the emulator (as the dev
    cluster does), the built-in data out of its way."""
    emulator, ca = emulated
    args = build_parser().parse_args(
        [
            "autoscaler",
            "--provider",
            "azure",
            f"--azure-endpoint={emulator.base}",
            f"--azure-ca={ca}",
            f"--azure-prices-url={emulator.base}/api/retail/prices",
            f"--catalog-cache={tmp_path / 'cache'}",
        ]
    )
    settings = config(
        cloudProvider="azure",
        clusterID=emulator.cluster,
        azure={"subscriptionId": emulator.subscription, "resourceGroup": emulator.resource_group},
    )
    started = PROVIDER.build(args, settings, [], None)
    aks = started.provider
    assert isinstance(aks, FollowingPoolProvider)
    feed = aks.feed
    assert feed is not None
    assert feed.source == "api"
    assert (tmp_path / "cache" / "azure-eastus.json").exists()
    metrics = AutoscalerMetrics()
    for collector in started.collectors:
        metrics.registry.register(collector)
    age = {"cloud": "azure", "region": "eastus", "source": "api"}
    assert metrics.registry.get_sample_value("gibbous_catalog_age_seconds", age) is not None
    asked = [path for _, path in emulator.requests]
    assert (
        asked.count(f"/subscriptions/{emulator.subscription}/providers/Microsoft.Compute/skus") > 1
    )
    assert asked.count("/api/retail/prices") > 1
    types = {t.name: t for t in aks.instance_types()}
    # The built-in eastus rows, as the emulator's APIs serve them: Standard_D2s_v5 2 vCPUs,
    # 8 GiB, $0.096/hr; Standard_NC4as_T4_v3 one T4; in the cluster's zones 1-3.
    d2s = types["Standard_D2s_v5"]
    assert (d2s.vcpu, d2s.memory_bytes, d2s.on_demand_price) == (2, 8 * GIB, 0.096)
    assert d2s.zones == ("eastus-1", "eastus-2", "eastus-3")
    assert (types["Standard_NC4as_T4_v3"].gpu_count, types["Standard_NC4as_T4_v3"].gpu_sku) == (
        1,
        "T4",
    )
    # Every GPU size of the built-in eastus rows keeps its GPUs (the model read from the
    # size's name, the count from the GPUs capability), as gibbous/catalogs/azure.csv.gz has
    # them; the counts are Azure's GPU size pages' (NCv3, NDv2, NC H100 v5, ND A100 v4, ND H100
    # v5, NVadsA10 v5).
    assert {n: (t.gpu_count, t.gpu_sku) for n, t in types.items() if t.gpu_count} == {
        "Standard_NC12s_v3": (2, "V100"),
        "Standard_NC16as_T4_v3": (1, "T4"),
        "Standard_NC24ads_A100_v4": (1, "A100"),
        "Standard_NC24rs_v3": (4, "V100"),
        "Standard_NC24s_v3": (4, "V100"),
        "Standard_NC40ads_H100_v5": (1, "H100"),
        "Standard_NC48ads_A100_v4": (2, "A100"),
        "Standard_NC4as_T4_v3": (1, "T4"),
        "Standard_NC64as_T4_v3": (4, "T4"),
        "Standard_NC6s_v3": (1, "V100"),
        "Standard_NC80adis_H100_v5": (2, "H100"),
        "Standard_NC8as_T4_v3": (1, "T4"),
        "Standard_NC96ads_A100_v4": (4, "A100"),
        "Standard_ND40rs_v2": (8, "V100"),
        "Standard_ND96amsr_A100_v4": (8, "A100"),
        "Standard_ND96asr_v4": (8, "A100"),
        "Standard_ND96isr_H100_v5": (8, "H100"),
        "Standard_NV36adms_A10_v5": (1, "A10"),
        "Standard_NV36ads_A10_v5": (1, "A10"),
        "Standard_NV72ads_A10_v5": (2, "A10"),
    }
    # The cheapest 2 vCPU / 8 GiB x64 size: Standard_B2as_v2 at $0.0752 (the Retail Prices
    # table's eastus Linux price), then Standard_B2ms at $0.0832.
    two = [t for t in types.values() if (t.vcpu, t.memory_bytes, t.arch) == (2, 8 * GIB, "amd64")]
    assert min(two, key=lambda t: t.on_demand_price).name == "Standard_B2as_v2"

    emulator.catalog_apis.set_price("Standard_D2s_v5", 0.01)
    emulator.catalog_apis.restrict("Standard_B2as_v2")
    later = time.time() + 6 * 3600
    feed.clock = lambda: later
    aks.instance_types()  # starts the refresh beside the caller
    feed.wait(30)
    types = {t.name: t for t in aks.instance_types()}
    assert types["Standard_D2s_v5"].on_demand_price == 0.01
    assert "Standard_B2as_v2" not in types
    two = [t for t in types.values() if (t.vcpu, t.memory_bytes, t.arch) == (2, 8 * GIB, "amd64")]
    assert min(two, key=lambda t: t.on_demand_price).name == "Standard_D2s_v5"
    # The pools' adapter knows the new sizes (a launch of one finds its GPU and zones).
    assert aks.cloud.types is aks.types  # type: ignore[attr-defined]
    aks.close()
