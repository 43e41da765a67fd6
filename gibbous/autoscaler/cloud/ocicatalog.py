"""The OCI catalog from OCI's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider oci` without `--catalog FILE`). The same design as the AWS
catalog (`awscatalog`, docs/decisions.md "Live AWS catalog").

Sources (see `gibbous.core.choice.ocilive` for the fields read): Compute `ListShapes` for
the cluster's compartment (paged with `opc-next-page`) and Oracle's public price list
(`oci.priceListUrl`, the cost estimator's API; no credentials). OCI's list prices are the
same in every commercial region, so one price list serves every region.

At start the kept catalog (`--catalog-cache DIR`, file `oci-<region>.json`) is used when it
is younger than REFRESH_S; otherwise the APIs are asked then, before any decision. After
that a refresh runs every REFRESH_S on a thread of its own. When OCI refuses or cannot be
reached the last good catalog stays (the kept one, else the built-in data), a warning is
logged and `gibbous_catalog_age_seconds` / `gibbous_catalog_stale_seconds` say what is in
use and since when: never a stop.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import oci
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.ocilive import (
    catalog_document,
    live_catalog,
    parse_price_list,
    parse_shapes,
    read_catalog_document,
)
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.oke")

REFRESH_S = 6 * 3600.0
RETRY_S = 600.0
MAX_PAGES = 200  # bounded: a region lists about 100 shapes, 100 a page
MAX_PRICE_LIST_BYTES = 32 * 1024 * 1024  # the whole list was about 2 MB in 2025
FETCH_TIMEOUT_S = 20.0
MAX_KEPT_BYTES = 64 * 1024 * 1024

FetchJson = Callable[[str], Any]


def fetch_json(url: str) -> Any:
    """GET `url` as JSON, at most MAX_PRICE_LIST_BYTES, within FETCH_TIMEOUT_S per read."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
        body: bytes = response.read(MAX_PRICE_LIST_BYTES + 1)
    if len(body) > MAX_PRICE_LIST_BYTES:
        raise ValueError(f"larger than {MAX_PRICE_LIST_BYTES} bytes")
    return json.loads(body)


def compute_client(container: Any, sdk_config: Mapping[str, Any] | None, endpoint: str) -> Any:
    """A Compute client signing as `container` (the Container Engine client) does, at the
    emulator's `endpoint` when given. Bounded: the first fetch runs before the first
    decision, so an unreachable endpoint must cost seconds, not the SDK's retries."""
    signer = container.base_client.signer
    kwargs: dict[str, Any] = {
        "signer": signer,
        "retry_strategy": oci.retry.NoneRetryStrategy(),
        "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        "timeout": (5.0, 30.0),
    }
    if endpoint:
        kwargs["service_endpoint"] = endpoint
    config = dict(sdk_config) if sdk_config else {"region": getattr(signer, "region", "")}
    return oci.core.ComputeClient(config, **kwargs)


def shape_pages(compute: Any, compartment_id: str) -> Iterator[list[Any]]:
    """Every page of ListShapes, as the wire's JSON (camelCase, as the SDK model maps it)."""
    page = None
    for _ in range(MAX_PAGES):
        kwargs: dict[str, Any] = {"limit": 100}
        if page:
            kwargs["page"] = page
        response = compute.list_shapes(compartment_id, **kwargs)
        yield compute.base_client.sanitize_for_serialization(response.data)
        page = response.headers.get("opc-next-page")
        if not page:
            return
    raise CatalogError("oci-api", 0, f"ListShapes: more than {MAX_PAGES} pages")


def price_pages(url: str, fetch: FetchJson) -> Iterator[dict[str, Any]]:
    """Every page of the price list: the API answers in one page today; a `hasMore` page
    is followed by its `links` rel `next` (Oracle REST Data Services' paging)."""
    for _ in range(MAX_PAGES):
        page = fetch(url)
        if not isinstance(page, dict):
            raise CatalogError("oci-price-list", 0, "the answer is not a JSON object")
        yield page
        following = next(
            (
                str(link.get("href"))
                for link in page.get("links") or []
                if isinstance(link, dict) and link.get("rel") == "next"
            ),
            "",
        )
        if not page.get("hasMore") or not following:
            return
        url = urllib.parse.urljoin(url, following)
    raise CatalogError("oci-price-list", 0, f"more than {MAX_PAGES} pages")


def fetch_catalog(
    compute: Any,
    *,
    compartment_id: str,
    price_list_url: str,
    fetch: FetchJson,
    region: str,
    builtin: list[InstanceType],
    now: float,
) -> list[InstanceType]:
    """The region's catalog as ListShapes and the price list give it now."""
    specs = parse_shapes(shape_pages(compute, compartment_id))
    prices = parse_price_list(price_pages(price_list_url, fetch))
    date = datetime.datetime.fromtimestamp(now, datetime.UTC).date().isoformat()
    types = live_catalog(region, specs=specs, prices=prices, builtin=builtin, date=date)
    if not types:
        raise CatalogError(
            "oci-api",
            0,
            f"no priced shape in {region} ({len(specs)} shapes, {len(prices)} prices)",
        )
    builtin_priced = sorted({t.name for t in types if t.price_date != date})
    if builtin_priced:
        log.warning(
            "OCI price list: no price for %d listed shape(s) (%s); their built-in prices are used",
            len(builtin_priced),
            ", ".join(builtin_priced[:10]),
        )
    return types


def _builtin_date(types: list[InstanceType]) -> float | None:
    dates = sorted(t.price_date for t in types if t.price_date)
    if not dates:
        return None
    text = dates[-1]
    try:
        day = datetime.date.fromisoformat(text if len(text) > 4 else f"{text}-01-01")
    except ValueError:
        return None
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


@dataclass(eq=False)  # registered as a Prometheus collector: hashed by identity
class OciCatalogFeed(Collector):
    """The catalog in use: `source` is `api` (fetched by this process), `kept` (read from
    the cache directory) or `built-in`; `current()` never blocks on the network."""

    compute: Any  # oci.core.ComputeClient
    compartment_id: str
    price_list_url: str
    region: str
    builtin: list[InstanceType]
    clock: Callable[[], float]
    fetch: FetchJson = fetch_json
    cache_dir: str | None = None
    refresh_s: float = REFRESH_S
    retry_s: float = RETRY_S
    types: list[InstanceType] = field(default_factory=list)
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
        return Path(self.cache_dir) / f"oci-{self.region}.json" if self.cache_dir else None

    def start(self) -> None:
        """At start: the kept catalog when fresh, else a fetch in the caller's thread."""
        self._read_kept()
        kept_at = self.fetched_at if self.source == "kept" else None
        if kept_at is not None and self.clock() - kept_at < self.refresh_s:
            self._next_try = kept_at + self.refresh_s
            return
        self._refresh()

    def current(self) -> tuple[int, list[InstanceType]]:
        """(version, types) of the catalog in use; starts a background refresh when due."""
        with self._lock:
            if self.clock() >= self._next_try and self._running is None:
                self._running = threading.Thread(
                    target=self._refresh, name="oci-catalog", daemon=True
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
        age = GaugeMetricFamily(
            "gibbous_catalog_age_seconds",
            "Age of the instance catalog in use (its prices' date for the built-in data), "
            "by where it came from",
            labels=["cloud", "region", "source"],
        )
        if self.fetched_at is not None:
            age.add_metric(["oci", self.region, self.source], max(0.0, now - self.fetched_at))
        stale = GaugeMetricFamily(
            "gibbous_catalog_stale_seconds",
            "Seconds since the catalog APIs first failed to refresh the catalog (0: the last "
            "refresh succeeded)",
            labels=["cloud", "region", "source"],
        )
        since = self.stale_since
        stale.add_metric(
            ["oci", self.region, self.source], 0.0 if since is None else max(0.0, now - since)
        )
        yield age
        yield stale

    def _read_kept(self) -> None:
        path = self.kept_path
        if path is None or not path.exists():
            return
        try:
            if path.stat().st_size > MAX_KEPT_BYTES:
                raise CatalogError(str(path), 0, f"larger than {MAX_KEPT_BYTES} bytes")
            fetched_at, types = read_catalog_document(path.read_text("utf-8"), self.region)
        except (OSError, UnicodeDecodeError, CatalogError) as error:
            log.warning("kept OCI catalog %s not used (%s)", path, error)
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, fetched_at, "kept"
            self.version += 1
        log.info("OCI catalog of %s kept on %s: %d shapes", self.region, path, len(types))

    def _refresh(self) -> None:
        started = self.clock()
        try:
            types = fetch_catalog(
                self.compute,
                compartment_id=self.compartment_id,
                price_list_url=self.price_list_url,
                fetch=self.fetch,
                region=self.region,
                builtin=self.builtin,
                now=started,
            )
        # ServiceError: OCI refused (e.g. 404 NotAuthorizedOrNotFound without the policy);
        # OSError: URLError, timeouts, refused connections; ValueError: bad JSON or URL;
        # the SDK's own client errors (RequestException is an OSError).
        except (
            oci.exceptions.ServiceError,
            oci.exceptions.ClientError,
            CatalogError,
            OSError,
            ValueError,
        ) as error:
            with self._lock:
                self.stale_since = self.stale_since or started
                self._next_try = self.clock() + self.retry_s
                self._running = None
                source, fetched_at = self.source, self.fetched_at
            age = "unknown" if fetched_at is None else f"{(started - fetched_at) / 3600:.1f} h"
            log.warning(
                "OCI catalog of %s not refreshed from ListShapes and the price list (%s); "
                "keeping the %s catalog (age %s); next try in %.0f s",
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
        log.info("OCI catalog of %s from the APIs: %d shapes", self.region, len(types))
        self._keep(types, started)

    def _keep(self, types: list[InstanceType], fetched_at: float) -> None:
        path = self.kept_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(catalog_document(types, self.region, fetched_at), "utf-8")
            partial.replace(path)
        except OSError as error:
            log.warning("OCI catalog not kept in %s (%s)", path, error)
