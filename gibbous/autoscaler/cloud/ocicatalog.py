"""The OCI catalog from OCI's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider oci` without `--catalog FILE`). The same design as the AWS
catalog (`awscatalog`, docs/decisions.md "Live AWS catalog").

Sources (see `gibbous.core.choice.ocilive` for the fields read): Compute `ListShapes` for
the cluster's compartment (paged with `opc-next-page`) and Oracle's public price list
(`oci.priceListUrl`, the cost estimator's API; no credentials). OCI's list prices are the
same in every commercial region, so one price list serves every region.

Kept on disk, refreshed and reported as every cloud's is: `gibbous.autoscaler.cloud.catalogfeed`.
"""

from __future__ import annotations

import datetime
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import oci

from gibbous.autoscaler.cloud.catalogfeed import CatalogFeed
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.ocilive import (
    live_catalog,
    parse_price_list,
    parse_shapes,
)
from gibbous.core.errors import CatalogError

log = logging.getLogger("gibbous.autoscaler.oke")

MAX_PAGES = 200  # bounded: a region lists about 100 shapes, 100 a page
MAX_PRICE_LIST_BYTES = 32 * 1024 * 1024  # the whole list was about 2 MB in 2025
FETCH_TIMEOUT_S = 20.0

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


@dataclass(eq=False, kw_only=True)  # registered as a Prometheus collector: hashed by identity
class OciCatalogFeed(CatalogFeed):
    """The OCI catalog in use (`CatalogFeed`), from ListShapes and the price list."""

    cloud: ClassVar[str] = "oci"
    api_names: ClassVar[str] = "ListShapes and the price list"
    api_errors: ClassVar[tuple[type[Exception], ...]] = (
        oci.exceptions.ServiceError,
        oci.exceptions.ClientError,
        ValueError,
    )
    log: ClassVar[logging.Logger] = logging.getLogger("gibbous.autoscaler.oke")
    unit: ClassVar[str] = "shapes"

    compute: Any  # oci.core.ComputeClient
    compartment_id: str
    price_list_url: str
    fetch: FetchJson = fetch_json

    def fetch_types(self, now: float) -> list[InstanceType]:
        return fetch_catalog(
            self.compute,
            compartment_id=self.compartment_id,
            price_list_url=self.price_list_url,
            fetch=self.fetch,
            region=self.region,
            builtin=self.builtin,
            now=now,
        )
