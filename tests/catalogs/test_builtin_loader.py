"""The built-in `.csv.gz` loader: a region's gzip member alone is inflated, the file stays one
ordinary gzip stream for other readers, and a plain (unindexed) gzip is told apart."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from importlib import resources
from pathlib import Path

import pytest

from gibbous.catalogs import _region_members, builtin_regions, load_catalog
from gibbous.core.errors import CatalogError
from tests.factories import csv_catalog


def test_every_member_holds_one_region_and_the_whole_file_is_one_csv_for_zcat() -> None:
    raw = resources.files("gibbous.catalogs").joinpath("azure.csv.gz").read_bytes()
    members = _region_members(raw)
    assert members is not None
    whole = ""
    for region, deflated in members:
        text = zlib.decompress(deflated, -15).decode()
        lines = text.splitlines()
        if region:
            assert all(line.startswith(f"azure,{region},") for line in lines)
        else:
            assert lines == [lines[0]] and lines[0].startswith("cloud,region,instance_type")
        whole += text
    assert gzip.decompress(raw).decode() == whole


def test_a_plain_gzip_is_not_taken_for_an_indexed_one() -> None:
    assert _region_members(gzip.compress(b"cloud,region\n", mtime=0)) is None


def test_loading_one_region_allocates_for_that_region_only() -> None:
    tracemalloc.start()
    types = load_catalog(None, "azure", "westeurope")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # ~900 rows; the file holds ~40,000 (6 MB of text): inflating it all would peak past that.
    assert 500 < len(types) < 1500
    assert peak < 3_000_000


def test_a_plain_gzip_or_csv_file_still_loads_one_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cloud whose built-in file is a plain `.csv.gz` (one member) or `.csv` loads as well."""
    rows = csv_catalog(
        "gcp,us-central1,e2-standard-2,2,8,0,,amd64,0.067,",
        "gcp,europe-west4,e2-standard-2,2,8,0,,amd64,0.073,",
    )
    (tmp_path / "gcp.csv.gz").write_bytes(gzip.compress(rows.encode(), mtime=0))
    (tmp_path / "oci.csv").write_text(rows.replace("gcp,", "oci,"))
    monkeypatch.setattr("gibbous.catalogs._DATA", tmp_path)
    for cloud in ("gcp", "oci"):
        (found,) = load_catalog(None, cloud, "europe-west4")
        assert (found.cloud, found.region, found.on_demand_price) == (cloud, "europe-west4", 0.073)
        assert builtin_regions(cloud) == ["europe-west4", "us-central1"]
        with pytest.raises(CatalogError, match=f"no instance types for {cloud}/mars-1"):
            load_catalog(None, cloud, "mars-1")
