"""The AWS catalog from AWS's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider aws` without `--catalog FILE`).

Sources (see `gibbous.core.choice.awslive` for the fields read): `ec2:DescribeInstanceTypes`,
`ec2:DescribeInstanceTypeOfferings` (availability zones) and the Price List API's
`pricing:GetProducts` (on-demand Linux, no pre-installed software, capacity status Used;
shared tenancy, and bare metal's dedicated hosts). The Price List API answers only at three endpoints (us-east-1, eu-central-1,
ap-south-1; AWS's "Using the AWS Price List Query API"), so it is asked at the nearest one.

At start the kept catalog (`--catalog-cache DIR`) is used when it is younger than REFRESH_S;
otherwise the APIs are asked then, before any decision. After that a refresh runs every
REFRESH_S on a thread of its own. When AWS refuses or cannot be reached the last good
catalog stays (the kept one, else the built-in data), a warning is logged and
`gibbous_catalog_age_seconds` / `gibbous_catalog_stale` say what is in use and since when:
never a stop.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gibbous.core.choice.awslive import (
    catalog_document,
    live_catalog,
    parse_instance_types,
    parse_offerings,
    parse_price_list,
    read_catalog_document,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.aws")

REFRESH_S = 6 * 3600.0
RETRY_S = 600.0
MAX_PAGES = 500  # bounded: a region lists about 1,000 types, 100 a page
MAX_KEPT_BYTES = 64 * 1024 * 1024
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
PRICE_FILTERS = (
    ("regionCode", None),  # the cluster's region
    ("operatingSystem", "Linux"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("marketoption", "OnDemand"),
)
# The Price List files bare-metal types under their own product family and tenancy
# `Dedicated` (a whole host); the rest under `Compute Instance`, tenancy `Shared`. Karpenter
# asks for both the same way (aws/karpenter-provider-aws pkg/providers/pricing/pricing.go).
PRODUCT_QUERIES = (
    (("tenancy", "Shared"), ("productFamily", "Compute Instance")),
    (("tenancy", "Dedicated"), ("productFamily", "Compute Instance (bare metal)")),
)


def pricing_region(region: str) -> str:
    """The Price List API endpoint nearest to `region`."""
    if region.startswith("ap-"):
        return "ap-south-1"
    if region.startswith(("eu-", "me-", "af-", "il-")):
        return "eu-central-1"
    return "us-east-1"


def _pages(call: Callable[..., dict[str, Any]], **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a NextToken-paged call (at most MAX_PAGES)."""
    token = None
    for _ in range(MAX_PAGES):
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield page
        token = page.get("NextToken")
        if not token:
            return
    raise CatalogError("aws-api", 0, f"more than {MAX_PAGES} pages")


def fetch_catalog(
    ec2: Any, pricing: Any, region: str, builtin: list[InstanceType], now: float
) -> list[InstanceType]:
    """The region's catalog as the three APIs give it now."""
    specs = parse_instance_types(_pages(ec2.describe_instance_types, MaxResults=100))
    zones = parse_offerings(
        _pages(
            ec2.describe_instance_type_offerings,
            LocationType="availability-zone",
            MaxResults=1000,
        )
    )
    prices: dict[str, float] = {}
    for query in PRODUCT_QUERIES:
        filters = [
            {"Type": "TERM_MATCH", "Field": name, "Value": value or region}
            for name, value in (*PRICE_FILTERS, *query)
        ]
        found = parse_price_list(
            _pages(
                pricing.get_products,
                ServiceCode="AmazonEC2",
                Filters=filters,
                FormatVersion="aws_v1",
                MaxResults=100,
            )
        )
        prices.update({k: v for k, v in found.items() if k not in prices})
    date = datetime.datetime.fromtimestamp(now, datetime.UTC).date().isoformat()
    types = live_catalog(
        region, specs=specs, zones=zones, prices=prices, builtin=builtin, date=date
    )
    if not types:
        raise CatalogError(
            "aws-api",
            0,
            f"no priced type offered in {region} ({len(specs)} types, "
            f"{len(zones)} offered, {len(prices)} prices)",
        )
    return types


def _builtin_date(types: list[InstanceType]) -> float | None:
    dates = sorted(t.price_date for t in types if t.price_date)
    if not dates:
        return None
    day = datetime.date.fromisoformat(dates[-1])
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


@dataclass(eq=False)  # registered as a Prometheus collector: hashed by identity
class AwsCatalogFeed(Collector):
    """The catalog in use: `source` is `api` (fetched by this process), `kept` (read from
    the cache directory) or `built-in`; `current()` never blocks on the network."""

    ec2: Any
    pricing: Any
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
        self.fetched_at = _builtin_date(self.builtin)

    @property
    def kept_path(self) -> Path | None:
        return Path(self.cache_dir) / f"aws-{self.region}.json" if self.cache_dir else None

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
                    target=self._refresh, name="aws-catalog", daemon=True
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
            age.add_metric(["aws", self.region, self.source], max(0.0, now - self.fetched_at))
        stale = GaugeMetricFamily(
            "gibbous_catalog_stale_seconds",
            "Seconds since the catalog APIs first failed to refresh the catalog (0: the last "
            "refresh succeeded)",
            labels=["cloud", "region", "source"],
        )
        since = self.stale_since
        stale.add_metric(
            ["aws", self.region, self.source], 0.0 if since is None else max(0.0, now - since)
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
            log.warning("kept AWS catalog %s not used (%s)", path, error)
            return
        with self._lock:
            self.types, self.fetched_at, self.source = types, fetched_at, "kept"
            self.version += 1
        log.info("AWS catalog of %s kept on %s: %d types", self.region, path, len(types))

    def _refresh(self) -> None:
        started = self.clock()
        try:
            types = fetch_catalog(self.ec2, self.pricing, self.region, self.builtin, started)
        except (ClientError, BotoCoreError, CatalogError, OSError) as error:
            with self._lock:
                self.stale_since = self.stale_since or started
                self._next_try = self.clock() + self.retry_s
                self._running = None
                source, fetched_at = self.source, self.fetched_at
            age = "unknown" if fetched_at is None else f"{(started - fetched_at) / 3600:.1f} h"
            log.warning(
                "AWS catalog of %s not refreshed from the EC2 and Price List APIs (%s); "
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
        log.info("AWS catalog of %s from the APIs: %d types", self.region, len(types))
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
            log.warning("AWS catalog not kept in %s (%s)", path, error)
