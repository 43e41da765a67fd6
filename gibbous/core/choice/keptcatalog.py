"""A live catalog as kept on disk (`--catalog-cache DIR`): one JSON document per cloud and
region, with the time its APIs gave it, written and read the same way for every cloud."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

DOCUMENT_VERSION = 1
CLOUD_NAMES = {"aws": "AWS", "gcp": "GCP", "azure": "Azure", "oci": "OCI"}


def catalog_document(types: Iterable[InstanceType], region: str, fetched_at: float) -> str:
    """The live catalog as kept on disk (JSON, with the time it was fetched)."""
    rows = []
    for t in types:
        row = dataclasses.asdict(t)
        row["zones"] = list(t.zones)
        rows.append(row)
    return json.dumps(
        {"version": DOCUMENT_VERSION, "region": region, "fetchedAt": fetched_at, "types": rows}
    )


def read_kept_catalog(text: str, cloud: str, region: str) -> tuple[float, list[InstanceType]]:
    """A kept catalog of `cloud` (aws, gcp, azure, oci): (when it was fetched, its types).
    Another cloud's, region's or version's, or a damaged one, raises CatalogError naming
    the cloud."""
    where = f"kept {CLOUD_NAMES.get(cloud, cloud)} catalog"
    try:
        document = json.loads(text)
        version, kept_region = document.get("version"), document.get("region")
    except (ValueError, AttributeError) as error:
        raise CatalogError(where, 0, f"unreadable: {error}") from None
    if version != DOCUMENT_VERSION or kept_region != region:
        raise CatalogError(
            where,
            0,
            f"version {version} of {kept_region}, not version {DOCUMENT_VERSION} of {region}",
        )
    try:
        fetched_at = float(document["fetchedAt"])
        types = [_kept_type(row) for row in document["types"]]
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CatalogError(where, 0, f"unreadable: {error}") from None
    if not types:
        raise CatalogError(where, 0, "no instance types")
    if any(t.cloud != cloud for t in types):
        raise CatalogError(where, 0, "rows of another cloud")
    return fetched_at, types


def _kept_type(kept: Mapping[str, Any]) -> InstanceType:
    row = dict(kept)
    row["zones"] = tuple(str(z) for z in row.get("zones") or ())
    instance = InstanceType(**row)
    if not instance.vcpu > 0 or not instance.memory_bytes > 0 or not instance.on_demand_price > 0:
        raise ValueError(f"{instance.name}: no size or price")
    return instance
