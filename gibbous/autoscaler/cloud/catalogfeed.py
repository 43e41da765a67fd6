"""A cloud's live catalog, kept on disk with its date and refreshed off the loop's thread
(`--provider aws|gcp|azure|oci` without `--catalog FILE`): the part every cloud shares.
Each cloud's module (`awscatalog`, `gkecatalog`, `akscatalog`, `ocicatalog`) subclasses
`CatalogFeed` with its API clients and its `fetch_types`, which asks that cloud's APIs.

At start the kept catalog (`--catalog-cache DIR`, file `<cloud>-<region>.json`) is used
when it is younger than REFRESH_S; otherwise the APIs are asked then, before any decision.
After that a refresh runs every REFRESH_S on a thread of its own. When the cloud refuses or
cannot be reached the last good catalog stays (the kept one, else the built-in data), a
warning is logged and `gibbous_catalog_age_seconds` / `gibbous_catalog_stale_seconds` say
what is in use and since when: never a stop.
"""

from __future__ import annotations

import datetime
import logging
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.keptcatalog import CLOUD_NAMES, catalog_document, read_kept_catalog
from gibbous.core.errors import CatalogError

REFRESH_S = 6 * 3600.0
RETRY_S = 600.0
MAX_KEPT_BYTES = 64 * 1024 * 1024


def builtin_date(types: list[InstanceType]) -> float | None:
    """When the built-in data was priced (its newest price date; a year alone counts from
    its first day), or None when it says nothing readable."""
    dates = sorted(t.price_date for t in types if t.price_date)
    full = [d for d in dates if len(d) == 10]
    if not dates:
        return None
    text = full[-1] if full else dates[-1]
    try:
        day = datetime.date.fromisoformat(text if len(text) > 4 else f"{text}-01-01")
    except ValueError:
        return None
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


@dataclass(eq=False, kw_only=True)  # registered as a Prometheus collector: hashed by identity
class CatalogFeed(Collector):
    """The catalog in use: `source` is `api` (fetched by this process), `kept` (read from
    the cache directory) or `built-in`; `current()` never blocks on the network.

    A cloud's subclass names the cloud (`cloud`: its label and kept file's prefix), its
    APIs for the warnings (`api_names`), the errors its SDK raises when the APIs refuse or
    cannot be reached (`api_errors`), its logger, and implements `fetch_types`."""

    cloud: ClassVar[str]
    api_names: ClassVar[str]
    api_errors: ClassVar[tuple[type[Exception], ...]] = ()
    unit: ClassVar[str] = "types"
    log: ClassVar[logging.Logger]

    region: str
    builtin: list[InstanceType]
    clock: Callable[[], float]
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
        self.fetched_at = builtin_date(self.builtin)

    @abstractmethod
    def fetch_types(self, now: float) -> list[InstanceType]:
        """The region's catalog as the cloud's APIs give it now; raises one of
        `api_errors`, CatalogError or OSError when they cannot."""

    @property
    def name(self) -> str:
        return CLOUD_NAMES.get(self.cloud, self.cloud)

    @property
    def kept_path(self) -> Path | None:
        if not self.cache_dir:
            return None
        return Path(self.cache_dir) / f"{self.cloud}-{self.region}.json"

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
                    target=self._refresh, name=f"{self.cloud}-catalog", daemon=True
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
        labels = [self.cloud, self.region, self.source]
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
            fetched_at, types = read_kept_catalog(path.read_text("utf-8"), self.cloud, self.region)
        except (OSError, UnicodeDecodeError, CatalogError) as error:
            self.log.warning("kept %s catalog %s not used (%s)", self.name, path, error)
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, fetched_at, "kept"
            self.version += 1
        self.log.info(
            "%s catalog of %s kept on %s: %d %s",
            self.name,
            self.region,
            path,
            len(types),
            self.unit,
        )

    def _refresh(self) -> None:
        started = self.clock()
        refusals: tuple[type[Exception], ...] = (*self.api_errors, CatalogError, OSError)
        try:
            types = self.fetch_types(started)
        except refusals as error:
            with self._lock:
                self.stale_since = self.stale_since or started
                self._next_try = self.clock() + self.retry_s
                self._running = None
                source, fetched_at = self.source, self.fetched_at
            age = "unknown" if fetched_at is None else f"{(started - fetched_at) / 3600:.1f} h"
            self.log.warning(
                "%s catalog of %s not refreshed from %s (%s); "
                "keeping the %s catalog (age %s); next try in %.0f s",
                self.name,
                self.region,
                self.api_names,
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
        self.log.info(
            "%s catalog of %s from the APIs: %d %s", self.name, self.region, len(types), self.unit
        )
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
            self.log.warning("%s catalog not kept in %s (%s)", self.name, path, error)
