"""`--provider azure`: agent pools on AKS (azure-mgmt-containerservice and azure-identity, the
`azure` extra)."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

from gibbous.autoscaler.providers.spec import ProviderSpec, StartedProvider, own_cloud
from gibbous.catalogs import load_catalog
from gibbous.core.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


def build(
    args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
) -> StartedProvider:
    """The AKS provider, its ARM client pointed at --azure-endpoint or at Azure."""
    try:
        from gibbous.autoscaler.cloud.aks import discover, sdk_client
    except ImportError:
        raise ConfigError(
            "--provider azure needs azure-mgmt-containerservice and azure-identity: "
            "pip install -e '.[azure]' in a checkout of Gibbous"
        ) from None

    with own_cloud("azure", config):
        subscription = config.azure.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not subscription:
            raise ConfigError(
                "--provider azure: set azure.subscriptionId (or AZURE_SUBSCRIPTION_ID)"
            )
        client = sdk_client(subscription, args.azure_endpoint or "", args.azure_ca or "")
        feeds: list[Any] = []

        def live_catalog(location: str) -> Any:
            """The live catalog of the cluster's location (see `akscatalog`), started: the
            built-in data of that location until Azure's APIs answer."""
            from gibbous.autoscaler.cloud.akscatalog import (
                AksCatalogFeed,
                ResourceSkus,
                RetailPrices,
            )

            builtin = catalog
            if location != config.effective_region:
                try:
                    builtin = load_catalog(None, "azure", location)
                except CatalogError:
                    builtin = []
            feed = AksCatalogFeed(
                skus=ResourceSkus(client, subscription),
                prices=RetailPrices(
                    args.azure_prices_url,
                    # The emulator serves both; Azure's own prices need no CA of ours.
                    (args.azure_ca or "") if args.azure_endpoint else "",
                ),
                region=location,
                builtin=builtin,
                clock=time.time,
                cache_dir=args.catalog_cache,
            )
            feed.start()
            feeds.append(feed)
            return feed

        provider = discover(
            client=client,
            config=config.azure,
            cluster_id=config.cluster_id,
            region=config.effective_region,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
            # Without --catalog FILE the live catalog starts from the location's own
            # built-in data (none: nothing until Azure's APIs answer).
            catalog_for_location=None
            if config.region or not args.catalog
            else lambda location: load_catalog(args.catalog, "azure", location),
            catalog_feed_for=None if args.catalog else live_catalog,
        )
        return StartedProvider(provider, collectors=tuple(feeds))


PROVIDER = ProviderSpec("azure", "agent pools on AKS", build)
