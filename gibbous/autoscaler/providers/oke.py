"""`--provider oci`: node pools on OKE (the `oci` SDK, the `oci` extra)."""

from __future__ import annotations

import argparse
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from gibbous.autoscaler.providers.spec import ProviderSpec, StartedProvider, own_cloud
from gibbous.catalogs import load_catalog
from gibbous.core.errors import ConfigError
from gibbous.core.settings.options.oci import OciConfig

if TYPE_CHECKING:
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


def build(
    args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
) -> StartedProvider:
    """The OKE provider, signing with --oci-config's key or OCI's workload identity."""
    try:
        import oci

        from gibbous.autoscaler.cloud.oke import discover, sdk_clients
    except ImportError:
        raise ConfigError(
            "--provider oci needs the oci SDK: pip install -e '.[oci]' in a checkout of Gibbous"
        ) from None

    with own_cloud("oci", config):
        sdk_config = None
        if args.oci_config:
            try:
                sdk_config = oci.config.from_file(args.oci_config)
            except (oci.exceptions.ConfigFileNotFound, oci.exceptions.InvalidConfig) as error:
                raise ConfigError(f"--oci-config {args.oci_config}: {error}") from None
        try:
            container, identity = sdk_clients(sdk_config, args.oci_endpoint or "")
        except Exception as error:  # no workload identity, no instance principal
            raise ConfigError(f"--provider oci: no OCI credentials ({error})") from None
        # The region the credentials are for: the SDK config file's, else the signer's.
        region = str(
            (sdk_config or {}).get("region")
            or getattr(container.base_client.signer, "region", "")
            or ""
        )
        catalog_region = config.effective_region
        if not config.region and region and region != config.effective_region:
            # No region configured: the catalog is that of the cluster's region.
            catalog = load_catalog(args.catalog, "oci", region)
            catalog_region = region
        catalog_feed = None
        if not args.catalog and config.oci.compartment_id:  # without it: discover says so
            from gibbous.autoscaler.cloud.ocicatalog import OciCatalogFeed, compute_client

            catalog_feed = OciCatalogFeed(
                compute=compute_client(container, sdk_config, args.oci_endpoint or ""),
                compartment_id=config.oci.compartment_id,
                price_list_url=_price_list_url(config, args.oci_endpoint or ""),
                region=catalog_region,
                builtin=catalog,
                clock=time.time,
                cache_dir=args.catalog_cache,
            )
            catalog_feed.start()
        return StartedProvider(
            discover(
                container=container,
                identity=identity,
                config=config.oci,
                cluster_id=config.cluster_id,
                catalog=catalog,
                clock=time.time,
                empty_pool_s=config.scale_down.unneeded_time_s,
                catalog_feed=catalog_feed,
            ),
            collectors=(catalog_feed,) if catalog_feed else (),
        )


def _price_list_url(config: Config, endpoint: str) -> str:
    """oci.priceListUrl; left at Oracle's public URL with --oci-endpoint (the emulator),
    the emulator's own price list."""
    default = OciConfig().price_list_url
    if endpoint and config.oci.price_list_url == default:
        query = urllib.parse.urlsplit(default).query
        return f"{endpoint.rstrip('/')}/cetools/api/v1/products/?{query}"
    return config.oci.price_list_url


PROVIDER = ProviderSpec("oci", "node pools on OKE", build)
