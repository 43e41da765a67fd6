"""The OCI catalog from ListShapes and the price list, kept with its date, refreshed off the
loop's thread, and the kept or built-in data (with a warning and a metric) when OCI cannot
be asked."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import oci
import pytest

from gibbous.autoscaler.cloud.ocicatalog import OciCatalogFeed
from gibbous.core.choice.catalog import InstanceType
from tests.autoscaler.test_catalog_feed import START, Clock, gauges
from tests.core.test_ocilive import A1_FLEX, BM_E4, BM_GPU3, E4_FLEX, PRICE_PAGES

REGION = "eu-frankfurt-1"
COMPARTMENT = "ocid1.compartment.oc1..aaaa"
URL = "https://prices.example/api/v1/products/?currencyCode=USD"


class Compute:
    """ListShapes: two pages, the second after the first's opc-next-page."""

    def __init__(self) -> None:
        self.pages = [[E4_FLEX, A1_FLEX], [BM_E4, BM_GPU3]]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error: Exception | None = None
        self.base_client = SimpleNamespace(sanitize_for_serialization=lambda data: data)

    def list_shapes(self, compartment_id: str, **kwargs: Any) -> Any:
        if self.error is not None:
            raise self.error
        self.calls.append((compartment_id, kwargs))
        index = {None: 0, "page-2": 1}[kwargs.get("page")]
        headers = {"opc-next-page": "page-2"} if index == 0 else {}
        return SimpleNamespace(data=self.pages[index], headers=headers)


class Prices:
    """The price list: PRICE_PAGES, the first linking to the second (hasMore)."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.error: Exception | None = None

    def __call__(self, url: str) -> Any:
        if self.error is not None:
            raise self.error
        self.urls.append(url)
        if url == URL:
            return {**PRICE_PAGES[0], "links": [{"rel": "next", "href": "?offset=3"}]}
        return PRICE_PAGES[1]


BUILTIN = [
    InstanceType(
        cloud="oci",
        region=REGION,
        name="VM.Standard.E4.Flex-1-8",
        family="vm.standard.e4",
        vcpu=2,
        memory_bytes=8 << 30,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=0.037,
        spot_price=None,
        price_date="2025-03-02",
    )
]


def feed(tmp_path: Path, clock: Clock, compute: Any = None, prices: Any = None) -> OciCatalogFeed:
    return OciCatalogFeed(
        compute=compute or Compute(),
        compartment_id=COMPARTMENT,
        price_list_url=URL,
        region=REGION,
        builtin=BUILTIN,
        clock=clock,
        fetch=prices or Prices(),
        cache_dir=str(tmp_path),
    )


def refused() -> oci.exceptions.ServiceError:
    return oci.exceptions.ServiceError(
        404, "NotAuthorizedOrNotFound", {}, "Authorization failed or requested resource not found."
    )


def test_the_catalog_comes_from_every_page_of_both_apis(tmp_path: Path) -> None:
    compute, prices = Compute(), Prices()
    live = feed(tmp_path, Clock(), compute, prices)
    live.start()
    assert live.source == "api"
    names = {t.name for t in live.types}
    # 6 E4 sizes (1-4 OCPUs x 8/16 GB), 2 A1 sizes, the E4 bare metal, the V100 bare metal.
    assert len(names) == 10
    assert {"BM.Standard.E4.128", "BM.GPU3.8", "VM.Standard.A1.Flex-2-16"} <= names
    assert [c[1].get("page") for c in compute.calls] == [None, "page-2"]
    assert {c[0] for c in compute.calls} == {COMPARTMENT}
    assert prices.urls == [URL, "https://prices.example/api/v1/products/?offset=3"]
    kept = json.loads((tmp_path / "oci-eu-frankfurt-1.json").read_text())
    assert kept["fetchedAt"] == START
    assert gauges(live)[("gibbous_catalog_age_seconds", "api")] == 0.0


def test_refused_shapes_leave_the_built_in_data_with_a_warning_and_a_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    compute = Compute()
    compute.error = refused()
    live = feed(tmp_path, clock, compute)
    with caplog.at_level(logging.WARNING, "gibbous.autoscaler.oke"):
        live.start()
    assert live.source == "built-in"
    assert [t.name for t in live.current()[1]] == ["VM.Standard.E4.Flex-1-8"]
    assert "NotAuthorizedOrNotFound" in caplog.text
    assert "keeping the built-in catalog" in caplog.text
    assert live.stale_since == START


def test_an_old_kept_catalog_stays_when_the_price_list_is_unreachable(tmp_path: Path) -> None:
    clock = Clock()
    feed(tmp_path, clock).start()
    clock.now += 7 * 3600  # past the 6-hour refresh
    prices = Prices()
    prices.error = OSError("connection refused")
    restarted = feed(tmp_path, clock, prices=prices)
    restarted.start()
    assert restarted.source == "kept"
    assert len(restarted.types) == 10
    assert restarted.stale_since == clock.now


def test_the_install_policy_lets_gibbous_list_shapes() -> None:
    # OCI's policy verbs are cumulative (inspect < read < use < manage: "Verbs" in OCI's
    # policy reference), and ListShapes is an instance-family operation: the install's
    # `manage instance-family` covers it, and the least grant is named for setups without.
    guide = (Path(__file__).parents[2] / "docs" / "install" / "oke.md").read_text()
    assert "gibbous to manage instance-family in compartment" in guide
    assert "gibbous to inspect instance-family in compartment" in guide
