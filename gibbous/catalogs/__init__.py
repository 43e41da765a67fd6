"""Built-in instance catalogs (package data) and loading of user catalogs from files."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

from gibbous.core.choice.catalog import InstanceType, parse_catalog_csv, select_region
from gibbous.core.errors import CatalogError


def _builtin_text(cloud: str, region: str | None) -> str:
    """The built-in CSV of `cloud` (`<cloud>.csv`, or `<cloud>.csv.gz` when large), only the
    header and `region`'s rows when a region is given: a catalog of every region is parsed
    one region at a time (rows start `cloud,region,`)."""
    files = resources.files(__package__)
    packed = files.joinpath(f"{cloud}.csv.gz")
    if packed.is_file():
        text = gzip.decompress(packed.read_bytes()).decode("utf-8")
    else:
        text = files.joinpath(f"{cloud}.csv").read_text(encoding="utf-8")
    if region is None:
        return text
    header, _, body = text.partition("\n")
    prefix = f"{cloud},{region},"
    return "\n".join([header, *(line for line in body.split("\n") if line.startswith(prefix))])


def builtin_catalog(cloud: str, region: str | None = None) -> list[InstanceType]:
    """The built-in types of `cloud`, of `region` only when given ([] for a region it lacks)."""
    text = _builtin_text(cloud, region)
    if region is not None and "\n" not in text:
        return []  # the header alone
    return parse_catalog_csv(text, f"built-in {cloud} catalog")


def builtin_regions(cloud: str) -> list[str]:
    """The regions the built-in catalog of `cloud` has types for."""
    lines = _builtin_text(cloud, None).split("\n")[1:]
    return sorted({line.split(",", 2)[1] for line in lines if line.startswith(f"{cloud},")})


def load_catalog(path: str | None, cloud: str, region: str) -> list[InstanceType]:
    """The types offered in `cloud`/`region`: from `path` when given, else built in."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise CatalogError(path, 0, f"cannot read catalog: {error.strerror}") from None
        types = parse_catalog_csv(text, path)
        source = path
    else:
        types = builtin_catalog(cloud, region)
        source = f"built-in {cloud} catalog"
    selected = select_region(types, cloud, region)
    if not selected:
        if path:
            regions = sorted({t.region for t in types if t.cloud == cloud})
        else:
            regions = builtin_regions(cloud)
        raise CatalogError(
            source,
            0,
            f"no instance types for {cloud}/{region}; regions present: {', '.join(regions) or 'none'}",
        )
    return selected
