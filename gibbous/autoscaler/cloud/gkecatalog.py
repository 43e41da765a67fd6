"""The GCP catalog from Google's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider gcp` without `--catalog FILE`), as the AWS one is
(`gibbous.autoscaler.cloud.awscatalog`).

Sources (see `gibbous.core.choice.gcplive` for the fields read): Compute Engine's
`machineTypes.aggregatedList` and `acceleratorTypes.aggregatedList` (compute_v1, the
project's view, zones of the cluster's region) and the Cloud Billing Catalog API's
`services/6F81-5844-456A/skus` (Compute Engine's SKUs, USD), read over REST with the same
credentials (google-auth's AuthorizedSession; the Catalog API needs no role, only an
authenticated caller with the API enabled).

At start the kept catalog (`--catalog-cache DIR`, file `gcp-<region>.json`) is used when
it is younger than REFRESH_S; otherwise the APIs are asked then, before any decision.
After that a refresh runs every REFRESH_S on a thread of its own. When Google refuses or
cannot be reached the last good catalog stays (the kept one, else the built-in data), a
warning is logged and `gibbous_catalog_age_seconds` / `gibbous_catalog_stale_seconds` say
what is in use and since when: never a stop.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_errors
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gibbous.core.choice.awslive import catalog_document, read_catalog_document
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.gcplive import (
    live_catalog,
    parse_accelerator_types,
    parse_machine_types,
    parse_skus,
)
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.gke")

REFRESH_S = 6 * 3600.0
RETRY_S = 600.0
MAX_PAGES = 500
MAX_KEPT_BYTES = 64 * 1024 * 1024
BILLING_ENDPOINT = "https://cloudbilling.googleapis.com"
COMPUTE_SERVICE = "6F81-5844-456A"  # Compute Engine's service id in the Billing Catalog
SKU_PAGE = 5000  # the Catalog API's largest pageSize
TIMEOUT_S = 30.0


def _message_pages(pager: Any) -> Iterator[dict[str, Any]]:
    """A compute_v1 pager's raw pages, as the REST API's JSON (camelCase)."""
    for number, page in enumerate(pager.pages):
        if number >= MAX_PAGES:
            raise CatalogError("gcp-api", 0, f"more than {MAX_PAGES} pages")
        yield json.loads(type(page).to_json(page, use_integers_for_enums=False))


def billing_pages(session: Any, endpoint: str = BILLING_ENDPOINT) -> Iterator[dict[str, Any]]:
    """Every page of Compute Engine's SKUs (GET services/6F81-5844-456A/skus)."""
    url = f"{endpoint.rstrip('/')}/v1/services/{COMPUTE_SERVICE}/skus"
    token = ""
    for _ in range(MAX_PAGES):
        params = {"currencyCode": "USD", "pageSize": str(SKU_PAGE)}
        if token:
            params["pageToken"] = token
        response = session.get(url, params=params, timeout=TIMEOUT_S)
        if response.status_code != 200:
            raise CatalogError(
                "cloudbilling.services.skus.list",
                0,
                f"HTTP {response.status_code}: {response.text[:300]}",
            )
        page = response.json()
        if not isinstance(page, dict):
            raise CatalogError("cloudbilling.services.skus.list", 0, "the answer is not an object")
        yield page
        token = str(page.get("nextPageToken") or "")
        if not token:
            return
    raise CatalogError("cloudbilling.services.skus.list", 0, f"more than {MAX_PAGES} pages")


@dataclass(frozen=True)
class GcpCatalogApis:
    """The clients the live catalog reads: compute_v1 MachineTypesClient and
    AcceleratorTypesClient, and an HTTP session for the Billing Catalog."""

    machine_types: Any
    accelerator_types: Any
    billing: Any
    project: str
    billing_endpoint: str = BILLING_ENDPOINT

    def fetch(self, region: str, now: float) -> list[InstanceType]:
        """The region's catalog as the three APIs give it now."""
        machines = parse_machine_types(
            _message_pages(
                self.machine_types.aggregated_list(
                    request={
                        "project": self.project,
                        "filter": f'zone eq "{region}-.*"',
                    }
                )
            ),
            region,
        )
        accelerators = parse_accelerator_types(
            _message_pages(
                self.accelerator_types.aggregated_list(request={"project": self.project})
            ),
            region,
        )
        rates = parse_skus(billing_pages(self.billing, self.billing_endpoint), region)
        date = datetime.datetime.fromtimestamp(now, datetime.UTC).date().isoformat()
        types = live_catalog(
            region, machines=machines, accelerators=accelerators, rates=rates, date=date
        )
        if not types:
            raise CatalogError(
                "gcp-api",
                0,
                f"no priced machine type in {region} ({len(machines)} machine types, "
                f"{len(accelerators)} GPUs, SKU rates for {sorted(rates)})",
            )
        return types


def _builtin_date(types: list[InstanceType]) -> float | None:
    dates = sorted(t.price_date for t in types if t.price_date)
    if not dates:
        return None
    day = datetime.date.fromisoformat(dates[-1])
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


@dataclass(eq=False)  # registered as a Prometheus collector: hashed by identity
class GcpCatalogFeed(Collector):
    """The catalog in use: `source` is `api` (fetched by this process), `kept` (read from
    the cache directory) or `built-in`; `current()` never blocks on the network."""

    apis: GcpCatalogApis
    region: str
    builtin: list[InstanceType]
    clock: Callable[[], float]
    cache_dir: str | None = None
    refresh_s: float = REFRESH_S
    retry_s: float = RETRY_S
    types: list[InstanceType] = field(default_factory=list)
    source: str = "built-in"
    fetched_at: float | None = None
    stale_since: float | None = None
    version: int = 0
    _next_try: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.types = list(self.builtin)
        self.fetched_at = _builtin_date(self.builtin)

    @property
    def kept_path(self) -> Path | None:
        return Path(self.cache_dir) / f"gcp-{self.region}.json" if self.cache_dir else None

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
                    target=self._refresh, name="gcp-catalog", daemon=True
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
            age.add_metric(["gcp", self.region, self.source], max(0.0, now - self.fetched_at))
        stale = GaugeMetricFamily(
            "gibbous_catalog_stale_seconds",
            "Seconds since the catalog APIs first failed to refresh the catalog (0: the last "
            "refresh succeeded)",
            labels=["cloud", "region", "source"],
        )
        since = self.stale_since
        stale.add_metric(
            ["gcp", self.region, self.source], 0.0 if since is None else max(0.0, now - since)
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
            if any(t.cloud != "gcp" for t in types):
                raise CatalogError(str(path), 0, "not a GCP catalog")
        except (OSError, UnicodeDecodeError, CatalogError) as error:
            log.warning("kept GCP catalog %s not used (%s)", path, error)
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, fetched_at, "kept"
            self.version += 1
        log.info("GCP catalog of %s kept on %s: %d types", self.region, path, len(types))

    def _refresh(self) -> None:
        started = self.clock()
        try:
            types = self.apis.fetch(self.region, started)
        except (
            google_errors.GoogleAPIError,
            auth_errors.GoogleAuthError,
            CatalogError,
            OSError,
            ValueError,
            TypeError,  # a number field that is not one
        ) as error:
            with self._lock:
                self.stale_since = self.stale_since or started
                self._next_try = self.clock() + self.retry_s
                self._running = None
                source, fetched_at = self.source, self.fetched_at
            age = "unknown" if fetched_at is None else f"{(started - fetched_at) / 3600:.1f} h"
            log.warning(
                "GCP catalog of %s not refreshed from the Compute and Cloud Billing APIs "
                "(%s); keeping the %s catalog (age %s); next try in %.0f s",
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
        log.info("GCP catalog of %s from the APIs: %d types", self.region, len(types))
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
            log.warning("GCP catalog not kept in %s (%s)", path, error)


def catalog_apis(project: str, endpoint: str = "") -> GcpCatalogApis:
    """The catalog's clients: REST, pointed at `endpoint` (the emulator, anonymous; it
    serves the Billing Catalog too) when given, else Google's with Application Default
    Credentials."""
    options: ClientOptions | None = None
    credentials: Any
    billing: Any
    if endpoint:
        options = ClientOptions(api_endpoint=endpoint)
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        billing = requests.Session()
    else:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        billing = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    return GcpCatalogApis(
        machine_types=compute_v1.MachineTypesClient(
            credentials=credentials, transport="rest", client_options=options
        ),
        accelerator_types=compute_v1.AcceleratorTypesClient(
            credentials=credentials, transport="rest", client_options=options
        ),
        billing=billing,
        project=project,
        billing_endpoint=endpoint or BILLING_ENDPOINT,
    )
