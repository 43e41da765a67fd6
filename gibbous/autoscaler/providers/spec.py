"""What every provider module declares (`ProviderSpec`) and returns (`StartedProvider`), and
the setup the providers that run on their own cloud share (`own_cloud`)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gibbous.autoscaler.cloud.base import FatalConfigurationError
from gibbous.core.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from gibbous.autoscaler.cloud.base import CloudProvider
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


@dataclass(frozen=True)
class StartedProvider:
    provider: CloudProvider
    # Called every few seconds beside the loop: the kwok provider's kubelet heartbeat.
    kubelet: Callable[[], None] | None = None
    # Prometheus collectors of the provider's own (the live catalog's age), registered
    # with the autoscaler's metrics.
    collectors: tuple[Collector, ...] = ()


class Build(Protocol):
    """Start the provider from `gibbous autoscaler`'s options, the configuration, the instance
    catalog and the Kubernetes API client; a setup it cannot work with raises ConfigError,
    its message naming the provider or the option."""

    def __call__(
        self, args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
    ) -> StartedProvider: ...


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # the --provider value
    summary: str  # what `gibbous autoscaler --help` says of it, e.g. "node pools on GKE"
    build: Build


@contextlib.contextmanager
def own_cloud(provider: str, config: Config) -> Iterator[None]:
    """What `--provider gcp|azure|oci` share: the provider runs on its own cloud, and its
    configuration errors (found as it reads the cluster) stop the start, named."""
    if config.cloud != provider:
        raise ConfigError(
            f"--provider {provider} needs cloudProvider {provider} (it is {config.cloud})"
        )
    try:
        yield
    except FatalConfigurationError as error:
        raise ConfigError(f"--provider {provider}: {error}") from None
