"""`gibbous autoscaler`: the provisioning loop, launching nodes through a cloud provider."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any, TextIO

from gibbous.autoscaler.providers.registry import PROVIDERS, provider, provider_names
from gibbous.catalogs import load_catalog
from gibbous.commands.options import (
    EXIT_OK,
    add_config_options,
    add_log_level_option,
    config_epilog,
    server_setup,
)
from gibbous.configfile import with_cloud_region
from gibbous.core.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from gibbous.autoscaler.process import AutoscalerService
    from gibbous.autoscaler.providers.spec import StartedProvider
    from gibbous.commands.options import Subcommands
    from gibbous.core.settings.config import Config
    from gibbous.serving import Listen

NAME = "autoscaler"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    scaler = commands.add_parser(
        NAME,
        help="run the provisioning loop: pending managed pods become the cheapest nodes",
        description=(
            "Watch pods and nodes, and launch the cheapest instance types that fit the managed pods "
            f"nothing can hold, through a cloud provider: {_providers_described()}. "
            "One replica leads through a "
            "coordination.k8s.io Lease. Serves GET /healthz, /readyz and /metrics."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(scaler)
    _add_loop_options(scaler)
    _add_kwok_options(scaler)
    scaler.add_argument(
        "--scheduler-lease",
        default="gibbous/gibbous-scheduler",
        metavar="NAMESPACE/NAME",
        help="the Gibbous scheduler's leader-election Lease: while it is stale, managed pods "
        "waiting on that scheduler get a Warning event (and, with "
        "reroutePodsOfStoppedScheduler, are deleted for their controller to recreate) ('' "
        "to not watch it)",
    )
    _add_cloud_options(scaler)
    add_log_level_option(scaler)
    return scaler


def _providers_described() -> str:
    """The registry's providers as the description lists them: "kwok (Node objects in the
    API server, no cloud), aws (EC2, joining EKS), ... or oci (node pools on OKE)"."""
    described = [f"{p.name} ({p.summary})" for p in PROVIDERS]
    return ", ".join(described[:-1]) + " or " + described[-1]


def _add_loop_options(scaler: argparse.ArgumentParser) -> None:
    scaler.add_argument(
        "--provider",
        required=True,
        choices=provider_names(),
        help="where nodes come from",
    )
    scaler.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster, then ~/.kube/config)"
    )
    scaler.add_argument(
        "--listen",
        default="0.0.0.0:8080",
        metavar="HOST:PORT",
        help="health and metrics address (default 0.0.0.0:8080)",
    )
    scaler.add_argument(
        "--period", type=float, default=1.0, metavar="SECONDS", help="loop period (default 1)"
    )
    scaler.add_argument(
        "--catalog",
        metavar="FILE",
        help="instance catalog CSV (default: from the cloud's own APIs, refreshed every 6 h, "
        "the built-in data until then: aws from EC2 and the Price List API; gcp from Compute "
        "Engine's machine and accelerator types and the Cloud Billing Catalog; azure from "
        "Resource SKUs and the Retail Prices API; oci from ListShapes and Oracle's price list; "
        "kwok: the built-in one)",
    )
    scaler.add_argument(
        "--catalog-cache",
        metavar="DIR",
        help="writable directory where the catalog fetched from the cloud's APIs is kept with "
        "its date, so a restart does not depend on the APIs (the chart mounts an emptyDir; "
        "default: not kept)",
    )
    scaler.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="campaign for a Lease so one replica acts; back-offs pass to the next leader through it (default on)",
    )
    scaler.add_argument(
        "--lease-namespace",
        default="gibbous-system",
        help="Lease namespace (default gibbous-system)",
    )
    scaler.add_argument(
        "--lease-name", default="gibbous-autoscaler", help="Lease name (default gibbous-autoscaler)"
    )
    scaler.add_argument("--identity", help="leader-election identity (default: hostname_pid)")
    scaler.add_argument(
        "--status-configmap",
        default="gibbous-system/gibbous-autoscaler-status",
        metavar="NAMESPACE/NAME",
        help="the ConfigMap the leader keeps its status in, for `gibbous status` and "
        "`gibbous explain` (default gibbous-system/gibbous-autoscaler-status; '' for none)",
    )


# The providers' own options stay here, in the order `--help` has always listed them (kwok's
# before --scheduler-lease, the clouds' after it); each provider's module reads its own.
def _add_kwok_options(scaler: argparse.ArgumentParser) -> None:
    scaler.add_argument(
        "--kwok-boot-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="kwok: how long a node stays NotReady after launch (default 5)",
    )
    scaler.add_argument(
        "--kwok-run-pods",
        action="store_true",
        help="kwok: mark pods bound to kwok nodes Running, as a kubelet would",
    )


def _add_cloud_options(scaler: argparse.ArgumentParser) -> None:
    scaler.add_argument(
        "--aws-launch-template",
        metavar="NAME|lt-ID",
        help="aws: a launch template to launch from (optional: without one, every setting "
        "comes from the aws.* configuration and what EKS reports)",
    )
    scaler.add_argument(
        "--aws-subnet",
        action="append",
        default=[],
        metavar="ZONE=SUBNET",
        help="aws: subnet to use in a zone (repeatable; default: aws.subnets or the cluster's "
        "tagged subnets)",
    )
    scaler.add_argument(
        "--aws-user-data-file",
        metavar="FILE",
        help="aws: read the user data from FILE, the mounted key of aws.userDataSecret "
        "(required with it; the chart passes it)",
    )
    scaler.add_argument(
        "--gcp-endpoint",
        metavar="URL",
        help="gcp: serve GKE's and Compute's REST calls from this address, anonymously (the "
        "GKE emulator of `gibbous dev-cluster up --cloud gcp`; default: Google's APIs with "
        "Application Default Credentials)",
    )
    scaler.add_argument(
        "--azure-endpoint",
        metavar="URL",
        help="azure: serve ARM's calls from this HTTPS address with a static token (the AKS "
        "emulator of `gibbous dev-cluster up --cloud azure`; default: Azure with "
        "DefaultAzureCredential)",
    )
    scaler.add_argument(
        "--azure-ca", metavar="FILE", help="azure: CA bundle to trust for --azure-endpoint"
    )
    scaler.add_argument(
        "--azure-prices-url",
        metavar="URL",
        default="https://prices.azure.com/api/retail/prices",
        help="azure: the Retail Prices API the live catalog's prices come from (a mirror, or "
        "the AKS emulator's; default: Azure's public https://prices.azure.com/api/retail/prices)",
    )
    scaler.add_argument(
        "--oci-endpoint",
        metavar="URL",
        help="oci: serve Container Engine's, Identity's and Compute's calls from this address "
        "(the OKE emulator of `gibbous dev-cluster up --cloud oci`; also the price list's, "
        "unless oci.priceListUrl is set), signing with the API key of --oci-config; default: "
        "OCI with OKE workload identity, else instance principals",
    )
    scaler.add_argument(
        "--oci-config",
        metavar="FILE",
        help="oci: an OCI SDK config file (user, tenancy, fingerprint, key_file, region) whose "
        "API key signs the requests",
    )


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    from kubernetes import client

    from gibbous.kubeapi import load_client_config

    config, listen = server_setup(args)
    if args.period <= 0:
        raise ConfigError("--period must be > 0")
    config, region = with_cloud_region(config)
    logging.getLogger("gibbous.autoscaler").info(
        "region %s (from %s)", config.effective_region, region.source
    )
    try:
        catalog = load_catalog(args.catalog, config.cloud, config.effective_region)
    except CatalogError as error:
        if args.provider not in ("aws", "azure") or args.catalog:
            raise
        # The AWS and Azure providers build their catalog from the cloud's APIs; without
        # built-in data for the region they have nothing until those answer (retried
        # every 10 minutes).
        logging.getLogger("gibbous.autoscaler").warning("%s; asking the cloud's APIs", error)
        catalog = []
    api = client.ApiClient(load_client_config(args.kubeconfig))
    started = provider(args.provider).build(args, config, catalog, api)
    return _serve(_service(args, config, api, started), listen, args.log_level)


def _service(
    args: argparse.Namespace, config: Config, api: Any, started: StartedProvider
) -> AutoscalerService:
    """The loop on the started provider, its caches, leader election and node lifecycle."""
    import os
    import socket
    import time

    from gibbous.autoscaler.kube import KubeCluster
    from gibbous.autoscaler.leader import LeaderElector
    from gibbous.autoscaler.lifecycle import NodeLifecycle
    from gibbous.autoscaler.loop import Autoscaler
    from gibbous.autoscaler.process import AutoscalerService
    from gibbous.autoscaler.statuswriter import StatusWriter
    from gibbous.kubeapi import server_version
    from gibbous.kubecache import register_cache_metrics

    identity = args.identity or f"{socket.gethostname()}_{os.getpid()}"
    cluster = KubeCluster(api, identity=identity, server_version=server_version(args.kubeconfig))
    elector = (
        LeaderElector(api, namespace=args.lease_namespace, name=args.lease_name, identity=identity)
        if args.leader_elect
        else None
    )
    lease_namespace, _, lease_name = (args.scheduler_lease or "").partition("/")
    if args.scheduler_lease and not (lease_namespace and lease_name):
        raise ConfigError(f"--scheduler-lease {args.scheduler_lease!r}: expected NAMESPACE/NAME")
    autoscaler = Autoscaler(
        config,
        started.provider,
        cluster,
        clock=time.time,
        scheduler_lease=(lease_namespace, lease_name) if args.scheduler_lease else None,
    )
    register_cache_metrics(autoscaler.metrics.registry, "gibbous_autoscaler", cluster.informers)
    for collector in started.collectors:
        autoscaler.metrics.registry.register(collector)
    status_namespace, _, status_name = (args.status_configmap or "").partition("/")
    if args.status_configmap and not (status_namespace and status_name):
        raise ConfigError(f"--status-configmap {args.status_configmap!r}: expected NAMESPACE/NAME")
    status = (
        StatusWriter(cluster, config, status_namespace, status_name, clock=time.time)
        if args.status_configmap
        else None
    )
    return AutoscalerService(
        autoscaler,
        cluster,
        period_s=args.period,
        elector=elector,
        kubelet=started.kubelet,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time, own_pod=own_pod()),
        status=status,
    )


def _serve(service: AutoscalerService, listen: Listen, log_level: str) -> int:
    """Serve /healthz, /readyz and /metrics while the service runs; exit 1 when it lost the
    leadership (for a restart to campaign again)."""
    import uvicorn

    from gibbous.serving import server_config

    server = uvicorn.Server(server_config(service.app(), listen, log_level=log_level))
    lost = []

    def on_lost() -> None:
        lost.append(True)
        server.should_exit = True

    service.on_lost_leadership = on_lost
    service.start()
    try:
        server.run()
    finally:
        service.stop()
    return 1 if lost else EXIT_OK


def own_pod() -> dict[str, Any] | None:
    """The autoscaler's own pod, as the chart passes it through the downward API (POD_NAME,
    POD_NAMESPACE, POD_UID): the object its warnings about its own setup are events on."""
    import os

    name, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not name or not namespace:
        return None
    metadata = {"name": name, "namespace": namespace, "uid": os.environ.get("POD_UID", "")}
    return {"metadata": metadata}
