"""Built-in instance catalogs (package data) and loading of user catalogs from files.

A cloud's built-in file is `<cloud>.csv`, or `<cloud>.csv.gz` when it holds every region (see
SOURCES.md). A `.csv.gz` is written as one gzip member per region, each member's header naming its
region and its length in an extra field (subfield `RG`, RFC 1952 2.3.1.1), so loading a region
inflates that member alone and the other regions' rows are never read, let alone made objects
(start-up time and memory stay those of one region). `zcat` still reads the whole file as one CSV;
a `.csv.gz` without the field is read line by line, keeping the region's rows.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from gibbous.core.choice.catalog import InstanceType, parse_catalog_csv, select_region
from gibbous.core.errors import CatalogError

_FEXTRA = 4
_RECORD = b"RG"
# Where the built-in files are (the package's data; a test points it at its own files).
_DATA = resources.files(__package__)


def _region_members(raw: bytes) -> Iterator[tuple[str, memoryview]] | None:
    """(region, raw deflate data) per member of an indexed `.csv.gz`; None when not indexed.
    The header line's member has region ""."""
    view = memoryview(raw)
    members: list[tuple[str, int, int]] = []
    position = 0
    while position < len(raw):
        # ID1 ID2 CM FLG MTIME(4) XFL OS, then XLEN and the extra field (FLG: FEXTRA alone).
        if raw[position : position + 2] != b"\x1f\x8b" or raw[position + 3] != _FEXTRA:
            return None
        (extra_length,) = struct.unpack_from("<H", raw, position + 10)
        extra = raw[position + 12 : position + 12 + extra_length]
        region, _, length = extra[4:].decode("ascii", "replace").partition(" ")
        if extra[:2] != _RECORD or not length.isdigit():
            return None
        start = position + 12 + extra_length
        members.append((region, start, start + int(length) - 8))  # 8: CRC32 and ISIZE
        position = start + int(length)
    return ((region, view[start:end]) for region, start, end in members)


def _builtin_text(cloud: str, region: str | None) -> Iterator[str]:
    """The built-in catalog's header line, then its lines of `region` (all lines when None)."""
    gzipped = _DATA.joinpath(f"{cloud}.csv.gz")
    if not gzipped.is_file():
        yield from _DATA.joinpath(f"{cloud}.csv").read_text(encoding="utf-8").splitlines(True)
        return
    raw = gzipped.read_bytes()
    members = _region_members(raw)
    if members is not None:
        for name, deflated in members:
            if name in ("", region) or region is None:
                yield from zlib.decompress(deflated, -15).decode("utf-8").splitlines(True)
        return
    prefix = f"{cloud},{region},"
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="utf-8") as text:
        yield next(text, "")
        yield from (line for line in text if region is None or line.startswith(prefix))


def builtin_catalog(cloud: str, region: str) -> list[InstanceType]:
    """The built-in types of `cloud` in `region`, parsing only that region's rows."""
    header, *rows = _builtin_text(cloud, region)
    rows = [line for line in rows if line.startswith(f"{cloud},{region},")]
    return parse_catalog_csv(header + "".join(rows), f"built-in {cloud} catalog") if rows else []


def builtin_regions(cloud: str) -> list[str]:
    """The regions the built-in catalog of `cloud` has types for."""
    gzipped = _DATA.joinpath(f"{cloud}.csv.gz")
    members = _region_members(gzipped.read_bytes()) if gzipped.is_file() else None
    if members is not None:
        return sorted({region for region, _ in members if region})
    lines = (line.split(",", 2) for line in list(_builtin_text(cloud, None))[1:])
    return sorted({fields[1] for fields in lines if fields[0] == cloud and len(fields) > 2})


def load_catalog(path: str | None, cloud: str, region: str) -> list[InstanceType]:
    """The types offered in `cloud`/`region`: from `path` when given, else built in."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise CatalogError(path, 0, f"cannot read catalog: {error.strerror}") from None
        parsed = parse_catalog_csv(text, path)
        types = select_region(parsed, cloud, region)
        source = path
    else:
        types = builtin_catalog(cloud, region)
        source = f"built-in {cloud} catalog"
    if not types:
        regions = (
            sorted({t.region for t in parsed if t.cloud == cloud})
            if path
            else builtin_regions(cloud)
        )
        raise CatalogError(
            source,
            0,
            f"no instance types for {cloud}/{region}; regions present: {', '.join(regions) or 'none'}",
        )
    return types
