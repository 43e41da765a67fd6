"""`--provider kwok`: Node objects in the API server, no cloud."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from gibbous.autoscaler.providers.spec import ProviderSpec, StartedProvider

if TYPE_CHECKING:
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


def build(
    args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
) -> StartedProvider:
    from gibbous.autoscaler.cloud.kwok import KwokCloudProvider

    kwok = KwokCloudProvider(api, catalog, config, time.time, boot_s=args.kwok_boot_seconds)

    def kubelet() -> None:
        kwok.heartbeat(config.cluster_id, mark_pods_running=args.kwok_run_pods)

    return StartedProvider(kwok, kubelet=kubelet)


PROVIDER = ProviderSpec("kwok", "Node objects in the API server, no cloud", build)
