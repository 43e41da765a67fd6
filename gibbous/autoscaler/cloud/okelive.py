"""The OKE provider following the live catalog (`ocicatalog.OciCatalogFeed`): the pool
logic is `SizedPoolProvider`'s; this takes the feed's catalog when it changed, as this
cluster can launch it (its availability domains, its pod network's max pods)."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gibbous.autoscaler.cloud.ocicatalog import OciCatalogFeed
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.core.choice.catalog import InstanceType

log = logging.getLogger("gibbous.autoscaler.oke")

Launchable = Callable[[builtins.list[InstanceType]], builtins.list[InstanceType]]


@dataclass
class FollowingPoolProvider(SizedPoolProvider):
    feed: OciCatalogFeed | None = None
    launchable: Launchable = field(default=lambda found: found)
    catalog_version: int = 0  # the feed's version `catalog` is

    def instance_types(self) -> builtins.list[InstanceType]:
        if self.feed is not None:
            self._follow(self.feed)
        return super().instance_types()

    def _follow(self, feed: OciCatalogFeed) -> None:
        version, found = feed.current()
        if version == self.catalog_version:
            return
        self.catalog_version = version
        usable = self.launchable(found)
        if not usable:
            log.warning("the refreshed OCI catalog has no shape; ignored")
            return
        with self.lock:
            self.catalog = usable
            self.types = {t.name: t for t in usable}
            # The pools' calls describe a shape by its catalog entry: new names join, and
            # the names of pools made before stay describable.
            described = getattr(self.cloud, "types", None)
            if isinstance(described, dict):
                described.update(self.types)
