"""`--provider gcp`: node pools on GKE (google-cloud-container and -compute, the `gcp` extra)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from gibbous.autoscaler.providers.spec import ProviderSpec, StartedProvider, own_cloud
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


def build(
    args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
) -> StartedProvider:
    """The GKE provider, its SDK clients pointed at --gcp-endpoint or at Google's APIs."""
    try:
        from gibbous.autoscaler.cloud.gke import discover, sdk_clients
    except ImportError:
        raise ConfigError(
            "--provider gcp needs google-cloud-container and google-cloud-compute: "
            "pip install -e '.[gcp]' in a checkout of Gibbous"
        ) from None

    with own_cloud("gcp", config):
        try:
            container, compute, adc_project = sdk_clients(args.gcp_endpoint or "")
        except Exception as error:  # google.auth's DefaultCredentialsError and kin
            raise ConfigError(f"--provider gcp: no Google credentials ({error})") from None
        project = config.gcp.project or adc_project
        if not project:
            raise ConfigError("--provider gcp: set gcp.project (the credentials name none)")
        catalog_feed = None
        if not args.catalog:
            from gibbous.autoscaler.cloud.gkecatalog import GcpCatalogFeed, catalog_apis

            catalog_feed = GcpCatalogFeed(
                apis=catalog_apis(project, args.gcp_endpoint or ""),
                region=config.effective_region,
                builtin=catalog,
                clock=time.time,
                cache_dir=args.catalog_cache,
            )
            catalog_feed.start()
        return StartedProvider(
            discover(
                container=container,
                compute=compute,
                config=config.gcp,
                cluster_id=config.cluster_id,
                region=config.effective_region,
                project=project,
                catalog=catalog,
                clock=time.time,
                empty_pool_s=config.scale_down.unneeded_time_s,
                catalog_feed=catalog_feed,
            ),
            collectors=(catalog_feed,) if catalog_feed else (),
        )


PROVIDER = ProviderSpec("gcp", "node pools on GKE", build)
