"""The GCP catalog from Google's own APIs, kept on disk with its date and refreshed off the
loop's thread (`--provider gcp` without `--catalog FILE`).

Sources (see `gibbous.core.choice.gcplive` for the fields read): Compute Engine's
`machineTypes.aggregatedList` and `acceleratorTypes.aggregatedList` (compute_v1, the
project's view, zones of the cluster's region) and the Cloud Billing Catalog API's
`services/6F81-5844-456A/skus` (Compute Engine's SKUs, USD), read over REST with the same
credentials (google-auth's AuthorizedSession; the Catalog API needs no role, only an
authenticated caller with the API enabled).

Kept on disk, refreshed and reported as every cloud's is: `gibbous.autoscaler.cloud.catalogfeed`.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import google.auth
import requests
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_errors
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1

from gibbous.autoscaler.cloud.catalogfeed import CatalogFeed
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.gcplive import (
    live_catalog,
    parse_accelerator_types,
    parse_machine_types,
    parse_skus,
)
from gibbous.core.errors import CatalogError

MAX_PAGES = 500
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


@dataclass(eq=False, kw_only=True)  # registered as a Prometheus collector: hashed by identity
class GcpCatalogFeed(CatalogFeed):
    """The GCP catalog in use (`CatalogFeed`), from Compute Engine and the Billing Catalog."""

    cloud: ClassVar[str] = "gcp"
    api_names: ClassVar[str] = "the Compute and Cloud Billing APIs"
    api_errors: ClassVar[tuple[type[Exception], ...]] = (
        google_errors.GoogleAPIError,
        auth_errors.GoogleAuthError,
        ValueError,
        TypeError,  # a number field that is not one
    )
    log: ClassVar[logging.Logger] = logging.getLogger("gibbous.autoscaler.gke")

    apis: GcpCatalogApis

    def fetch_types(self, now: float) -> list[InstanceType]:
        return self.apis.fetch(self.region, now)


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
