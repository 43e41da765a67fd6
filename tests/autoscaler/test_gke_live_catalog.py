"""The GKE provider's catalog from the emulator's Compute and Cloud Billing Catalog APIs
(real compute_v1 clients, REST, and a plain HTTP session for the Billing Catalog), kept
with its date, refreshed off the loop's thread, and the kept or built-in data with a
warning and a metric when Google cannot be asked. Prices are hand computations of
Compute Engine's billing (vCPUs x core rate + GiB x RAM rate + GPUs x GPU rate)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gibbous.autoscaler.cloud.gke import GkeCloudProvider, discover, sdk_clients
from gibbous.autoscaler.cloud.gkecatalog import GcpCatalogApis, GcpCatalogFeed, catalog_apis
from gibbous.core.settings.options.gcp import GcpConfig
from gibbous.devcluster.gcp.catalogapis import CatalogApiError, CatalogApis
from gibbous.devcluster.gcp.emulator import GkeEmulator
from tests.autoscaler.sdkworld import OPENED, Clock
from tests.factories import catalog

REGION = "us-central1"


@pytest.fixture
def world() -> Iterator[tuple[GkeEmulator, Clock, str]]:
    clock = Clock()
    emulator = GkeEmulator(clock=clock)
    server = emulator.serve()
    yield emulator, clock, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Closing:
    def __init__(self, apis: GcpCatalogApis) -> None:
        self.apis = apis

    def close(self) -> None:
        self.apis.machine_types.transport.close()
        self.apis.accelerator_types.transport.close()
        self.apis.billing.close()


def feed(endpoint: str, clock: Clock, cache_dir: Path | None = None) -> GcpCatalogFeed:
    apis = catalog_apis("gibbous-dev", endpoint)
    OPENED.append(Closing(apis))
    return GcpCatalogFeed(
        apis=apis,
        region=REGION,
        builtin=catalog("gcp"),
        clock=clock,
        cache_dir=str(cache_dir) if cache_dir else None,
    )


def provider(endpoint: str, clock: Clock, catalog_feed: GcpCatalogFeed) -> GkeCloudProvider:
    container, compute, _ = sdk_clients(endpoint)
    made = discover(
        container=container,
        compute=compute,
        config=GcpConfig(),
        cluster_id="dev-cluster",
        region=REGION,
        project="gibbous-dev",
        catalog=catalog("gcp"),
        clock=clock,
        empty_pool_s=600.0,
        catalog_feed=catalog_feed,
    )
    OPENED.append(made)
    return made


def offered(made: GkeCloudProvider) -> dict[str, float]:
    return {t.name: t.on_demand_price for t in made.instance_types()}


def test_the_provider_prices_from_the_apis_and_follows_a_price_change(
    world: tuple[GkeEmulator, Clock, str], tmp_path: Path
) -> None:
    emulator, clock, endpoint = world
    apis = emulator.catalog_apis
    apis.set_rate("core", "n1", 0.04)
    apis.set_rate("ram", "n1", 0.005)
    apis.set_rate("gpu", "nvidia-tesla-t4", 0.5)
    live = feed(endpoint, clock, tmp_path)
    live.start()
    assert live.source == "api"
    made = provider(endpoint, clock, live)
    prices = offered(made)
    # 4 vCPUs x 0.04 + 15 GiB x 0.005 = 0.235; with a T4: + 0.5
    assert prices["n1-standard-4"] == pytest.approx(0.235)
    assert prices["n1-standard-4+t4x1"] == pytest.approx(0.735)
    # the emulator's clusters run in us-central1-a/b/c, not -f
    assert {z for t in made.instance_types() for z in t.zones} <= {
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
    }
    assert (tmp_path / "gcp-us-central1.json").exists()

    apis.set_rate("core", "n1", 0.05)
    clock.now += 6 * 3600 + 1
    offered(made)  # starts the refresh off this thread
    live.wait(30)
    # 4 x 0.05 + 15 x 0.005 = 0.275
    assert offered(made)["n1-standard-4"] == pytest.approx(0.275)


def test_google_unreachable_keeps_the_built_in_data_with_a_warning_and_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    clock = Clock()
    live = feed(dead, clock)
    with caplog.at_level(logging.WARNING, "gibbous.autoscaler.gke"):
        live.start()
    assert live.source == "built-in"
    assert live.current()[1] == catalog("gcp")
    assert "not refreshed from the Compute and Cloud Billing APIs" in caplog.text
    clock.now += 120
    registry = CollectorRegistry()
    registry.register(live)
    labels = {"cloud": "gcp", "region": REGION, "source": "built-in"}
    assert registry.get_sample_value("gibbous_catalog_stale_seconds", labels) == 120.0
    assert registry.get_sample_value("gibbous_catalog_age_seconds", labels) is not None


def test_a_restart_uses_the_kept_catalog_without_asking(
    world: tuple[GkeEmulator, Clock, str], tmp_path: Path
) -> None:
    emulator, clock, endpoint = world
    emulator.catalog_apis.set_rate("core", "e2", 0.03)
    emulator.catalog_apis.set_rate("ram", "e2", 0.004)
    feed(endpoint, clock, tmp_path).start()
    asked = len(emulator.requests)
    clock.now += 3600
    again = feed(endpoint, clock, tmp_path)
    again.start()
    assert again.source == "kept"
    assert len(emulator.requests) == asked
    registry = CollectorRegistry()
    registry.register(again)
    labels = {"cloud": "gcp", "region": REGION, "source": "kept"}
    assert registry.get_sample_value("gibbous_catalog_age_seconds", labels) == 3600.0
    e2 = next(t for t in again.current()[1] if t.name == "e2-standard-4")
    assert e2.on_demand_price == pytest.approx(4 * 0.03 + 16 * 0.004)  # 0.184


def test_emulator_pages_filters_and_refuses_as_google() -> None:
    apis = CatalogApis("gibbous-dev", REGION, catalog("gcp"))
    first = apis.machine_types({"maxResults": ["5"], "filter": ['zone eq "us-central1-a"']})
    (zone,) = first["items"]
    assert zone == "zones/us-central1-a"
    assert len(first["items"][zone]["machineTypes"]) == 5
    second = apis.machine_types(
        {
            "maxResults": ["5"],
            "pageToken": [first["nextPageToken"]],
            "filter": ['zone eq "us-central1-a"'],
        }
    )
    assert len(second["items"]["zones/us-central1-a"]["machineTypes"]) == 5
    assert apis.machine_types({"filter": ['zone eq "europe-west4-.*"']})["items"] == {}
    with pytest.raises(CatalogApiError):
        apis.machine_types({"filter": ["name = n1-standard-4"]})
    with pytest.raises(CatalogApiError):
        apis.machine_types({"pageToken": ["not-a-token"]})
    with pytest.raises(CatalogApiError):
        apis.machine_types({"maxResults": ["501"]})
    with pytest.raises(CatalogApiError):
        apis.skus("6F81-5844-456A", {"currencyCode": ["EUR"]})
    skus = apis.skus("6F81-5844-456A", {"pageSize": ["3"]})
    assert len(skus["skus"]) == 3
    assert skus["nextPageToken"] == "3"
    assert apis.skus("other", {}) == {"skus": []}
