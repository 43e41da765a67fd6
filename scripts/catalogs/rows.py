"""Catalog rows and the gzip writer shared by scripts/catalogs/gcp.py and oci.py."""

from __future__ import annotations

import csv
import gzip
import io
import os
import urllib.request
from pathlib import Path

from gibbous.core.choice.catalog import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

HEADER = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
# Where downloaded public sources are kept (and looked for first): an offline run copies the
# pinned files here by hand.
SOURCE_DIR = Path(os.environ.get("GIBBOUS_CATALOG_SOURCES", Path.home() / ".cache/gibbous/sources"))


def row(
    cloud: str,
    region: str,
    name: str,
    vcpu: float,
    mem: float,
    price: float,
    source: str,
    date: str,
    *,
    gpus: int = 0,
    sku: str = "",
    arch: str = "amd64",
    zones: str = "",
    gpu_mem: object = "",
    max_pods: object = "",
) -> dict[str, object]:
    return {
        "cloud": cloud,
        "region": region,
        "instance_type": name,
        "vcpu": vcpu,
        "memory_gib": round(mem, 3),
        "gpu_count": gpus,
        "gpu_sku": sku,
        "arch": arch,
        "on_demand_usd_per_hour": round(price, 4),
        "spot_usd_per_hour": "",
        "zones": zones,
        "gpu_memory_gib": gpu_mem,
        "max_pods": max_pods,
        "price_date": date,
        "source": source,
    }


def source_file(name: str, url: str) -> Path:
    """The pinned public file `url`, from SOURCE_DIR/<name> or downloaded there once."""
    path = SOURCE_DIR / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response:
            path.write_bytes(response.read())
    return path


def write_gz(path: Path, rows: list[dict[str, object]]) -> None:
    """`rows` sorted by region then type, gzipped with mtime 0 so a rerun is byte-identical."""
    rows.sort(key=lambda r: (str(r["region"]), str(r["instance_type"])))
    text = io.StringIO()
    writer = csv.DictWriter(text, HEADER, lineterminator="\n")
    writer.writeheader()
    for entry in rows:
        writer.writerow({k: entry.get(k, "") for k in HEADER})
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.getvalue().encode())
    regions = len({r["region"] for r in rows})
    print(f"{path.name}: {len(rows)} types in {regions} regions")
