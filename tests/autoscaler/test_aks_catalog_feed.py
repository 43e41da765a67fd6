"""The Azure catalog from Resource SKUs and the Retail Prices API, kept with its date,
refreshed off the loop's thread, and the kept or built-in data (with a warning and a
metric) when Azure cannot be asked; the pages are test_azurelive's recorded shapes."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from gibbous.autoscaler.cloud.aks import for_cluster
from gibbous.autoscaler.cloud.akscatalog import AksCatalogFeed, ResourceSkus
from gibbous.core.choice.catalog import InstanceType
from tests.autoscaler.test_catalog_feed import START, Clock, gauges
from tests.core.test_azurelive import PRICE_PAGES, REGION, SKU_PAGES

LIVE = [
    "Standard_B1ls",
    "Standard_D2ps_v5",
    "Standard_D2s_v5",
    "Standard_E2s_v5",
    "Standard_NC4as_T4_v3",
    "Standard_ND96isr_H100_v5",
]


class Pages:
    """One paged API as the feed asks it: the region in, its recorded pages out."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[str] = []
        self.error: Exception | None = None

    def __call__(self, region: str) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        self.calls.append(region)
        return self.pages


BUILTIN = [
    InstanceType(
        cloud="azure",
        region=REGION,
        name="Standard_D4s_v3",
        family="ds_v3",
        vcpu=4,
        memory_bytes=16 << 30,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=0.192,
        spot_price=None,
        zones=(f"{REGION}-1",),
        price_date="2025-03-02",
    )
]


def feed(tmp_path: Path, clock: Clock, skus: Any = None, prices: Any = None) -> AksCatalogFeed:
    return AksCatalogFeed(
        skus=skus or Pages(SKU_PAGES),
        prices=prices or Pages(PRICE_PAGES),
        region=REGION,
        builtin=BUILTIN,
        clock=clock,
        cache_dir=str(tmp_path),
    )


def forbidden() -> HttpResponseError:
    return HttpResponseError(
        message="(AuthorizationFailed) The client does not have authorization to perform "
        "action 'Microsoft.Compute/skus/read'"
    )


def test_the_catalog_comes_from_both_apis_and_is_kept(tmp_path: Path) -> None:
    skus, prices = Pages(SKU_PAGES), Pages(PRICE_PAGES)
    live = feed(tmp_path, Clock(), skus, prices)
    live.start()
    assert live.source == "api"
    assert sorted(t.name for t in live.types) == LIVE
    assert skus.calls == prices.calls == [REGION]
    kept = json.loads((tmp_path / "azure-westeurope.json").read_text())
    assert (kept["fetchedAt"], kept["region"]) == (START, REGION)
    assert sorted(r["name"] for r in kept["types"]) == LIVE
    assert gauges(live)[("gibbous_catalog_age_seconds", "api")] == 0.0
    assert gauges(live)[("gibbous_catalog_stale_seconds", "api")] == 0.0


def test_refused_skus_leave_the_built_in_data_with_a_warning_and_a_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    skus = Pages(SKU_PAGES)
    skus.error = forbidden()
    live = feed(tmp_path, clock, skus)
    with caplog.at_level(logging.WARNING, "gibbous.autoscaler.aks"):
        live.start()
    assert live.source == "built-in"
    assert [t.name for t in live.current()[1]] == ["Standard_D4s_v3"]
    assert "not refreshed" in caplog.text
    assert "Microsoft.Compute/skus/read" in caplog.text
    assert "keeping the built-in catalog" in caplog.text
    assert live.stale_since == START


def test_an_old_kept_catalog_stays_when_the_prices_api_is_unreachable(tmp_path: Path) -> None:
    clock = Clock()
    feed(tmp_path, clock).start()
    clock.now += 7 * 3600  # past the 6-hour refresh
    prices = Pages(PRICE_PAGES)
    prices.error = OSError("[Errno 101] Network is unreachable")
    restarted = feed(tmp_path, clock, prices=prices)
    restarted.start()
    assert restarted.source == "kept"
    assert len(restarted.types) == len(LIVE)
    assert restarted.stale_since == clock.now


def test_prices_of_the_wrong_shape_keep_the_last_catalog(tmp_path: Path) -> None:
    live = feed(tmp_path, Clock(), prices=Pages([{"Items": "none"}]))
    live.start()
    assert live.source == "built-in"
    assert live.stale_since == START


class Response:
    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.status_code, self.content = status, json.dumps(body).encode()

    def text(self) -> str:
        return self.content.decode()


class ArmClient:
    """An azure-mgmt client's `send_request`: the recorded pages, each behind the
    previous one's nextLink."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def send_request(self, request: Any, **options: Any) -> Response:
        assert options == {"connection_timeout": 5, "read_timeout": 30}  # bounded
        self.urls.append(request.url)
        return Response(SKU_PAGES[0] if "skiptoken" not in request.url else SKU_PAGES[1])


def test_resource_skus_follow_next_link_and_ask_the_subscriptions_skus_in_a_location() -> None:
    client = ArmClient()
    pages = list(ResourceSkus(client, "sub-1")(REGION))
    assert pages == SKU_PAGES
    first, second = client.urls
    url = urlsplit(first)
    assert url.path == "/subscriptions/sub-1/providers/Microsoft.Compute/skus"
    assert parse_qs(url.query) == {
        "api-version": ["2021-07-01"],
        "$filter": ["location eq 'westeurope'"],
    }
    assert second == SKU_PAGES[0]["nextLink"]


def test_the_install_role_grants_the_resource_skus_read(tmp_path: Path) -> None:
    # The one ARM call the catalog adds; the Retail Prices API needs no credential.
    client = ArmClient()
    list(ResourceSkus(client, "sub-1")(REGION))
    assert {u.split("?")[0].split("/providers/")[1] for u in client.urls} == {
        "Microsoft.Compute/skus"
    }
    guide = (Path(__file__).parents[2] / "docs" / "install" / "aks.md").read_text()
    role = json.loads(guide.split("```json\n", 1)[1].split("```", 1)[0])
    assert role["Actions"] == ["Microsoft.Compute/skus/read"]


def test_an_unreachable_arm_is_a_stale_catalog_not_a_stop(tmp_path: Path) -> None:
    skus = Pages(SKU_PAGES)
    skus.error = ServiceRequestError("Connection refused")
    live = feed(tmp_path, Clock(), skus)
    live.start()
    assert live.source == "built-in"
    assert live.stale_since == START


def test_sizes_are_offered_in_the_cluster_zones_they_are_sold_in() -> None:
    def size(name: str, *zones: str) -> InstanceType:
        return dataclasses.replace(BUILTIN[0], name=name, zones=zones, max_pods=250)

    rows = [
        size("in-1-and-2", "eastus-1", "eastus-2"),
        size("in-3-only", "eastus-3"),
        size("no-zones-listed"),
    ]
    fit = {t.name: (t.zones, t.max_pods) for t in for_cluster(rows, ("eastus-1", "eastus-2"), 30)}
    # A cluster in zones 1 and 2: the zone-3 size cannot be placed; a size listing no zone
    # (a region's data without zones) goes in the cluster's.
    assert fit == {
        "in-1-and-2": (("eastus-1", "eastus-2"), 30),
        "no-zones-listed": (("eastus-1", "eastus-2"), 30),
    }
    # A cluster without zones (regional pools): every size, no zone to plan for.
    regional = {t.name: t.zones for t in for_cluster(rows, (), 110)}
    assert regional == {"in-1-and-2": (), "in-3-only": (), "no-zones-listed": ()}
