"""The Azure catalog from Azure's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider azure` without `--catalog FILE`), as the AWS one (`awscatalog`).

Sources (see `gibbous.core.choice.azurelive` for the fields read): Resource SKUs
(`Microsoft.Compute/skus/read`, through the AKS client's own ARM pipeline and credential)
for the cluster's location, and the public Retail Prices API (no credential;
`--azure-prices-url`, by default Azure's).

At start the kept catalog (`--catalog-cache DIR`, `azure-<location>.json`) is used when it
is younger than REFRESH_S; otherwise the APIs are asked then, before any decision. After
that a refresh runs every REFRESH_S on a thread of its own. When Azure refuses or cannot be
reached the last good catalog stays (the kept one, else the built-in data), a warning is
logged and `gibbous_catalog_age_seconds` / `gibbous_catalog_stale_seconds` say what is in
use and since when: never a stop.
"""

from __future__ import annotations

import builtins
import datetime
import json
import logging
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.core.choice.awslive import catalog_document
from gibbous.core.choice.azurelive import (
    live_catalog,
    parse_resource_skus,
    parse_retail_prices,
    read_azure_catalog_document,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.aks")

REFRESH_S = 6 * 3600.0
RETRY_S = 600.0
MAX_PAGES = 200  # bounded: a region has about 1,000 sizes; prices come 1,000 a page
MAX_PAGE_BYTES = 32 * 1024 * 1024
MAX_KEPT_BYTES = 64 * 1024 * 1024
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


def _builtin_date(types: builtins.list[InstanceType]) -> float | None:
    dates = sorted(t.price_date for t in types if len(t.price_date) == 10)
    if not dates:
        return None
    day = datetime.date.fromisoformat(dates[-1])
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


@dataclass(eq=False)  # registered as a Prometheus collector: hashed by identity
class AksCatalogFeed(Collector):
    """The catalog in use: `source` is `api` (fetched by this process), `kept` (read from
    the cache directory) or `built-in`; `current()` never blocks on the network."""

    skus: Pages
    prices: Pages
    region: str
    builtin: builtins.list[InstanceType]
    clock: Callable[[], float]
    cache_dir: str | None = None
    refresh_s: float = REFRESH_S
    retry_s: float = RETRY_S
    types: builtins.list[InstanceType] = field(default_factory=list)
    source: str = "built-in"
    fetched_at: float | None = None
    stale_since: float | None = None  # the first failed refresh since the last good one
    version: int = 0
    _next_try: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.types = list(self.builtin)
        self.fetched_at = _builtin_date(self.builtin)

    @property
    def kept_path(self) -> Path | None:
        return Path(self.cache_dir) / f"azure-{self.region}.json" if self.cache_dir else None

    def start(self) -> None:
        """At start: the kept catalog when fresh, else a fetch in the caller's thread."""
        self._read_kept()
        kept_at = self.fetched_at if self.source == "kept" else None
        if kept_at is not None and self.clock() - kept_at < self.refresh_s:
            self._next_try = kept_at + self.refresh_s
            return
        self._refresh()

    def current(self) -> tuple[int, builtins.list[InstanceType]]:
        """(version, types) of the catalog in use; starts a background refresh when due."""
        with self._lock:
            if self.clock() >= self._next_try and self._running is None:
                self._running = threading.Thread(
                    target=self._refresh, name="azure-catalog", daemon=True
                )
                self._running.start()
            return self.version, self.types

    def wait(self, timeout_s: float) -> None:
        """Wait for a background refresh (for tests and orderly shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout_s)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        labels = ["azure", self.region, self.source]
        age = GaugeMetricFamily(
            "gibbous_catalog_age_seconds",
            "Age of the instance catalog in use (its prices' date for the built-in data), "
            "by where it came from",
            labels=["cloud", "region", "source"],
        )
        if self.fetched_at is not None:
            age.add_metric(labels, max(0.0, now - self.fetched_at))
        stale = GaugeMetricFamily(
            "gibbous_catalog_stale_seconds",
            "Seconds since the catalog APIs first failed to refresh the catalog (0: the last "
            "refresh succeeded)",
            labels=["cloud", "region", "source"],
        )
        since = self.stale_since
        stale.add_metric(labels, 0.0 if since is None else max(0.0, now - since))
        yield age
        yield stale

    def _read_kept(self) -> None:
        path = self.kept_path
        if path is None or not path.exists():
            return
        try:
            if path.stat().st_size > MAX_KEPT_BYTES:
                raise CatalogError(str(path), 0, f"larger than {MAX_KEPT_BYTES} bytes")
            fetched_at, types = read_azure_catalog_document(path.read_text("utf-8"), self.region)
        except (OSError, UnicodeDecodeError, CatalogError) as error:
            log.warning("kept Azure catalog %s not used (%s)", path, error)
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, fetched_at, "kept"
            self.version += 1
        log.info("Azure catalog of %s kept on %s: %d sizes", self.region, path, len(types))

    def _refresh(self) -> None:
        started = self.clock()
        try:
            types = fetch_catalog(self.skus, self.prices, self.region, self.builtin, started)
        except (AzureError, CatalogError, OSError, ValueError) as error:
            with self._lock:
                self.stale_since = self.stale_since or started
                self._next_try = self.clock() + self.retry_s
                self._running = None
                source, fetched_at = self.source, self.fetched_at
            age = "unknown" if fetched_at is None else f"{(started - fetched_at) / 3600:.1f} h"
            log.warning(
                "Azure catalog of %s not refreshed from Resource SKUs and the Retail Prices "
                "API (%s); keeping the %s catalog (age %s); next try in %.0f s",
                self.region,
                error,
                source,
                age,
                self.retry_s,
            )
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, started, "api"
            self.stale_since = None
            self.version += 1
            self._next_try = self.clock() + self.refresh_s
            self._running = None
        log.info("Azure catalog of %s from the APIs: %d sizes", self.region, len(types))
        self._keep(types, started)

    def _keep(self, types: builtins.list[InstanceType], fetched_at: float) -> None:
        path = self.kept_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(catalog_document(types, self.region, fetched_at), "utf-8")
            partial.replace(path)
        except OSError as error:
            log.warning("Azure catalog not kept in %s (%s)", path, error)


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
