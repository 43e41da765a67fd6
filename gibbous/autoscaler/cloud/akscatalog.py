"""The Azure catalog from Azure's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider azure` without `--catalog FILE`).

Sources (see `gibbous.core.choice.azurelive` for the fields read): Resource SKUs
(`Microsoft.Compute/skus/read`, through the AKS client's own ARM pipeline and credential)
for the cluster's location, and the public Retail Prices API (no credential;
`--azure-prices-url`, by default Azure's).

Kept on disk, refreshed and reported as every cloud's is: `gibbous.autoscaler.cloud.catalogfeed`.
"""

from __future__ import annotations

import builtins
import datetime
import json
import logging
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest

from gibbous.autoscaler.cloud.catalogfeed import CatalogFeed
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.core.choice.azurelive import (
    live_catalog,
    parse_resource_skus,
    parse_retail_prices,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.aks")

MAX_PAGES = 200  # bounded: a region has about 1,000 sizes; prices come 1,000 a page
MAX_PAGE_BYTES = 32 * 1024 * 1024
RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
# The newest Resource SKUs API version (azure-rest-api-specs, Microsoft.Compute/Skus).
SKUS_API_VERSION = "2021-07-01"
Pages = Callable[[str], Iterable[dict[str, Any]]]


def _page(text: bytes, where: str) -> dict[str, Any]:
    try:
        page = json.loads(text)
    except ValueError:
        raise CatalogError(where, 0, "a page is not JSON") from None
    if not isinstance(page, dict):
        raise CatalogError(where, 0, "a page is not a JSON object")
    return page


@dataclass
class ResourceSkus:
    """Resource SKUs of the subscription in a location, through `client`'s ARM pipeline
    (its credential, endpoint and TLS settings: the AKS client's)."""

    client: Any  # an azure-mgmt client: send_request runs its pipeline
    subscription: str

    def __call__(self, location: str) -> Iterator[dict[str, Any]]:
        request: HttpRequest | None = HttpRequest(
            "GET",
            f"/subscriptions/{self.subscription}/providers/Microsoft.Compute/skus",
            params={"api-version": SKUS_API_VERSION, "$filter": f"location eq '{location}'"},
        )
        for _ in range(MAX_PAGES):
            assert request is not None
            # Bounded: the first fetch runs before the first decision (azure-core's own
            # default waits 300 s for a connection).
            response = self.client.send_request(request, connection_timeout=5, read_timeout=30)
            if response.status_code != 200:
                raise CatalogError(
                    "Microsoft.Compute/skus", 0, f"HTTP {response.status_code}: {response.text()}"
                )
            page = _page(response.content, "Microsoft.Compute/skus")
            yield page
            link = page.get("nextLink")
            if not link:
                return
            request = HttpRequest("GET", str(link))
        raise CatalogError("Microsoft.Compute/skus", 0, f"more than {MAX_PAGES} pages")


@dataclass
class RetailPrices:
    """The Retail Prices API's Linux-and-Windows VM meters of a region (no credential)."""

    url: str = RETAIL_PRICES_URL
    ca_file: str = ""  # the emulator's CA, when url is the emulator's
    timeout_s: float = 30.0

    def __call__(self, region: str) -> Iterator[dict[str, Any]]:
        query = (
            f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
            "and priceType eq 'Consumption'"
        )
        link = f"{self.url}?{urllib.parse.urlencode({'$filter': query})}"
        context = ssl.create_default_context(cafile=self.ca_file or None)
        for _ in range(MAX_PAGES):
            with urllib.request.urlopen(link, timeout=self.timeout_s, context=context) as answer:
                body = answer.read(MAX_PAGE_BYTES + 1)
            if len(body) > MAX_PAGE_BYTES:
                raise CatalogError("retail prices", 0, f"a page over {MAX_PAGE_BYTES} bytes")
            page = _page(body, "retail prices")
            yield page
            link = str(page.get("NextPageLink") or "")
            if not link:
                return
        raise CatalogError("retail prices", 0, f"more than {MAX_PAGES} pages")


def fetch_catalog(
    skus: Pages, prices: Pages, region: str, builtin: builtins.list[InstanceType], now: float
) -> builtins.list[InstanceType]:
    """The region's catalog as the two APIs give it now."""
    specs = parse_resource_skus(skus(region), region)
    on_demand, spot = parse_retail_prices(prices(region), region)
    date = datetime.datetime.fromtimestamp(now, datetime.UTC).date().isoformat()
    types = live_catalog(
        region, specs=specs, on_demand=on_demand, spot=spot, builtin=builtin, date=date
    )
    if not types:
        raise CatalogError(
            "azure-api",
            0,
            f"no priced size offered in {region} ({len(specs)} sizes, "
            f"{len(on_demand)} pay-as-you-go prices)",
        )
    return types


@dataclass(eq=False, kw_only=True)  # registered as a Prometheus collector: hashed by identity
class AksCatalogFeed(CatalogFeed):
    """The Azure catalog in use (`CatalogFeed`), from Resource SKUs and the Retail Prices
    API."""

    cloud: ClassVar[str] = "azure"
    api_names: ClassVar[str] = "Resource SKUs and the Retail Prices API"
    api_errors: ClassVar[tuple[type[Exception], ...]] = (AzureError, ValueError)
    log: ClassVar[logging.Logger] = logging.getLogger("gibbous.autoscaler.aks")
    unit: ClassVar[str] = "sizes"

    skus: Pages
    prices: Pages

    def fetch_types(self, now: float) -> builtins.list[InstanceType]:
        return fetch_catalog(self.skus, self.prices, self.region, self.builtin, now)


@dataclass
class FollowingPoolProvider(SizedPoolProvider):
    """The AKS pools provider whose catalog follows a feed: each new version of the feed's
    catalog, made fit for this cluster by `adapt` (its zones and max pods), replaces the
    one in use, and `on_types` hands the new sizes to the pools' adapter."""

    feed: AksCatalogFeed | None = None
    adapt: Callable[[builtins.list[InstanceType]], builtins.list[InstanceType]] = list
    on_types: Callable[[dict[str, InstanceType]], None] = lambda types: None
    catalog_version: int = 0

    def instance_types(self) -> builtins.list[InstanceType]:
        if self.feed is not None:
            version, types = self.feed.current()
            if version != self.catalog_version:
                self.catalog_version = version
                usable = self.adapt(types)
                if usable:
                    by_name = {t.name: t for t in usable}
                    with self.lock:
                        self.catalog, self.types = usable, by_name
                    self.on_types(by_name)
                else:
                    log.warning("the refreshed Azure catalog has no size this cluster can use")
        return super().instance_types()
