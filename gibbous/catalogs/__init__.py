"""Built-in instance catalogs (package data) and loading of user catalogs from files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gibbous.core.choice.catalog import InstanceType, parse_catalog_csv, select_region
from gibbous.core.errors import CatalogError


def builtin_catalog(cloud: str) -> list[InstanceType]:
    text = resources.files(__package__).joinpath(f"{cloud}.csv").read_text(encoding="utf-8")
    return parse_catalog_csv(text, f"built-in {cloud} catalog")


def builtin_regions(cloud: str) -> list[str]:
    """The regions the built-in catalog of `cloud` has types for."""
    return sorted({t.region for t in builtin_catalog(cloud) if t.cloud == cloud})


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
        types = builtin_catalog(cloud)
        source = f"built-in {cloud} catalog"
    selected = select_region(types, cloud, region)
    if not selected:
        regions = sorted({t.region for t in types if t.cloud == cloud})
        raise CatalogError(
            source,
            0,
            f"no instance types for {cloud}/{region}; regions present: {', '.join(regions) or 'none'}",
        )
    return selected
