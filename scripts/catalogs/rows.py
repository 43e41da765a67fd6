"""Catalog rows and the indexed gzip writer every cloud's generator shares."""

from __future__ import annotations

import csv
import io
import os
import struct
import urllib.request
import zlib
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
    """`rows` sorted by region then type into `path` (`<cloud>.csv.gz`): one gzip member for
    the header line, then one per region, each member's header naming its region and length
    in an extra field (subfield RG, RFC 1952 2.3.1.1) so that the loader inflates one
    region's member only; mtime 0, so a rerun is byte-identical. `zcat` reads it as one CSV."""
    rows.sort(key=lambda r: (str(r["region"]), str(r["instance_type"])))
    blocks: dict[str, io.StringIO] = {"": io.StringIO()}
    csv.DictWriter(blocks[""], HEADER, lineterminator="\n").writeheader()
    for entry in rows:
        block = blocks.setdefault(str(entry["region"]), io.StringIO())
        writer = csv.DictWriter(block, HEADER, lineterminator="\n")
        writer.writerow({k: entry.get(k, "") for k in HEADER})
    out = bytearray()
    for region, block in blocks.items():
        data = block.getvalue().encode()
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = compressor.compress(data) + compressor.flush()
        body += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
        record = f"{region} {len(body)}".encode()
        extra = b"RG" + struct.pack("<H", len(record)) + record
        # ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=2 (best compression) OS=255 (unknown)
        header = b"\x1f\x8b\x08\x04" + struct.pack("<I", 0) + b"\x02\xff"
        out += header + struct.pack("<H", len(extra)) + extra + body
    path.write_bytes(bytes(out))
    print(f"{path.name}: {len(rows)} types in {len(blocks) - 1} regions")
