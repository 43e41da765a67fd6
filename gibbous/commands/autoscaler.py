"""`gibbous autoscaler`: the provisioning loop, launching nodes through a cloud provider."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gibbous.catalogs import load_catalog
from gibbous.commands.options import (
    EXIT_OK,
    add_config_options,
    add_log_level_option,
    config_epilog,
    server_setup,
)
from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config

if TYPE_CHECKING:
    from gibbous.commands.options import Subcommands
    from gibbous.core.choice.catalog import InstanceType

NAME = "autoscaler"


def add_parser(commands: Subcommands) -> argparse.ArgumentParser:
    scaler = commands.add_parser(
        NAME,
        help="run the provisioning loop: pending managed pods become the cheapest nodes",
        description=(
            "Watch pods and nodes, and launch the cheapest instance types that fit the managed pods "
            "nothing can hold, through a cloud provider: kwok (Node objects in the API server, no "
            "cloud), aws (EC2, joining EKS), gcp (node pools on GKE), azure (agent pools on AKS) "
            "or oci (node pools on OKE). "
            "One replica leads through a "
            "coordination.k8s.io Lease. Serves GET /healthz, /readyz and /metrics."
        ),
        epilog=config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(scaler)
    scaler.add_argument(
        "--provider",
        required=True,
        choices=("kwok", "aws", "gcp", "azure", "oci"),
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
        "--catalog", metavar="FILE", help="instance catalog CSV (default: the built-in one)"
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
    scaler.add_argument(
        "--scheduler-lease",
        default="gibbous/gibbous-scheduler",
        metavar="NAMESPACE/NAME",
        help="the Gibbous scheduler's leader-election Lease: while it is stale, managed pods "
        "waiting on that scheduler get a Warning event (and, with "
        "reroutePodsOfStoppedScheduler, are deleted for their controller to recreate) ('' "
        "to not watch it)",
    )
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
        "--oci-endpoint",
        metavar="URL",
        help="oci: serve Container Engine's and Identity's calls from this address (the OKE "
        "emulator of `gibbous dev-cluster up --cloud oci`), signing with the API key of "
        "--oci-config; default: OCI with OKE workload identity, else instance principals",
    )
    scaler.add_argument(
        "--oci-config",
        metavar="FILE",
        help="oci: an OCI SDK config file (user, tenancy, fingerprint, key_file, region) whose "
        "API key signs the requests",
    )
    add_log_level_option(scaler)
    return scaler


@contextlib.contextmanager
def _provider_setup(provider: str, config: Config) -> Iterator[None]:
    """What `--provider gcp|azure|oci` share: the provider runs on its own cloud, and its
    configuration errors (found as it reads the cluster) stop the start, named."""
    from gibbous.autoscaler.cloud.base import FatalConfigurationError

    if config.cloud != provider:
        raise ConfigError(
            f"--provider {provider} needs cloudProvider {provider} (it is {config.cloud})"
        )
    try:
        yield
    except FatalConfigurationError as error:
        raise ConfigError(f"--provider {provider}: {error}") from None


def _gcp_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The GKE provider, its SDK clients pointed at --gcp-endpoint or at Google's APIs."""
    import time

    try:
        from gibbous.autoscaler.cloud.gke import discover, sdk_clients
    except ImportError:
        raise ConfigError(
            "--provider gcp needs google-cloud-container and google-cloud-compute: "
            "pip install 'gibbous[gcp]'"
        ) from None

    with _provider_setup("gcp", config):
        try:
            container, compute, adc_project = sdk_clients(args.gcp_endpoint or "")
        except Exception as error:  # google.auth's DefaultCredentialsError and kin
            raise ConfigError(f"--provider gcp: no Google credentials ({error})") from None
        project = config.gcp.project or adc_project
        if not project:
            raise ConfigError("--provider gcp: set gcp.project (the credentials name none)")
        return discover(
            container=container,
            compute=compute,
            config=config.gcp,
            cluster_id=config.cluster_id,
            region=config.effective_region,
            project=project,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def _azure_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The AKS provider, its ARM client pointed at --azure-endpoint or at Azure."""
    import os
    import time

    try:
        from gibbous.autoscaler.cloud.aks import discover, sdk_client
    except ImportError:
        raise ConfigError(
            "--provider azure needs azure-mgmt-containerservice and azure-identity: "
            "pip install 'gibbous[azure]'"
        ) from None

    with _provider_setup("azure", config):
        subscription = config.azure.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not subscription:
            raise ConfigError(
                "--provider azure: set azure.subscriptionId (or AZURE_SUBSCRIPTION_ID)"
            )
        client = sdk_client(subscription, args.azure_endpoint or "", args.azure_ca or "")
        return discover(
            client=client,
            config=config.azure,
            cluster_id=config.cluster_id,
            region=config.effective_region,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def _oci_provider(args: argparse.Namespace, config: Config, catalog: list[InstanceType]) -> Any:
    """The OKE provider, signing with --oci-config's key or OCI's workload identity."""
    import time

    try:
        import oci

        from gibbous.autoscaler.cloud.oke import discover, sdk_clients
    except ImportError:
        raise ConfigError("--provider oci needs the oci SDK: pip install 'gibbous[oci]'") from None

    with _provider_setup("oci", config):
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
        return discover(
            container=container,
            identity=identity,
            config=config.oci,
            cluster_id=config.cluster_id,
            catalog=catalog,
            clock=time.time,
            empty_pool_s=config.scale_down.unneeded_time_s,
        )


def run(args: argparse.Namespace, stdout: TextIO, stdin: TextIO) -> int:
    import logging
    import os
    import socket
    import time

    import uvicorn
    from kubernetes import client

    from gibbous.autoscaler.cloud.base import CloudProvider
    from gibbous.autoscaler.kube import KubeCluster
    from gibbous.autoscaler.leader import LeaderElector
    from gibbous.autoscaler.lifecycle import NodeLifecycle
    from gibbous.autoscaler.loop import Autoscaler
    from gibbous.autoscaler.process import AutoscalerService
    from gibbous.kubeapi import load_client_config, server_version
    from gibbous.kubecache import register_cache_metrics
    from gibbous.serving import server_config

    config, listen = server_setup(args)
    if args.period <= 0:
        raise ConfigError("--period must be > 0")
    catalog = load_catalog(args.catalog, config.cloud, config.effective_region)
    api = client.ApiClient(load_client_config(args.kubeconfig))
    identity = args.identity or f"{socket.gethostname()}_{os.getpid()}"
    provider: CloudProvider
    kubelet = None
    if args.provider == "kwok":
        from gibbous.autoscaler.cloud.kwok import KwokCloudProvider

        kwok = KwokCloudProvider(api, catalog, config, time.time, boot_s=args.kwok_boot_seconds)
        provider = kwok

        def kubelet() -> None:
            kwok.heartbeat(config.cluster_id, mark_pods_running=args.kwok_run_pods)
    elif args.provider == "gcp":
        provider = _gcp_provider(args, config, catalog)
    elif args.provider == "azure":
        provider = _azure_provider(args, config, catalog)
    elif args.provider == "oci":
        provider = _oci_provider(args, config, catalog)
    else:
        try:
            import boto3
        except ImportError:
            raise ConfigError("--provider aws needs boto3: pip install 'gibbous[aws]'") from None
        import json

        from gibbous.autoscaler.cloud.aws import discover
        from gibbous.autoscaler.cloud.base import FatalConfigurationError

        if not args.aws_launch_template and not config.aws.node_instance_profile:
            # Checked here, not at the first launch: an instance without a node role runs
            # and is paid for, but never becomes a Node.
            raise ConfigError(
                "--provider aws: set aws.nodeInstanceProfile (the instance profile of the "
                "nodes' IAM role) or pass --aws-launch-template: without either, EC2 "
                "instances cannot join the cluster"
            )
        subnets = {}
        for item in args.aws_subnet:
            zone, sep, subnet = item.partition("=")
            if not sep or not zone or not subnet:
                raise ConfigError(f"--aws-subnet {item!r}: expected ZONE=SUBNET")
            subnets[zone] = subnet
        # boto3 takes AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_EC2, ...) from the environment,
        # which is how the dev cluster points it at the EC2 emulator.
        region = config.effective_region
        advisor: object = None
        if config.aws.use_spot_advisor:
            try:
                advisor = json.loads(Path(config.aws.spot_advisor_file).read_text())
            except (OSError, ValueError) as error:
                raise ConfigError(f"aws.spotAdvisorFile: {error}") from None
        try:
            provider = discover(
                ec2=boto3.client("ec2", region_name=region),
                eks=boto3.client("eks", region_name=region),
                ssm=boto3.client("ssm", region_name=region),
                config=config,
                catalog=catalog,
                clock=time.time,
                launch_template=args.aws_launch_template or "",
                subnet_overrides=subnets,
                spot_advisor=advisor,
            )
        except (FatalConfigurationError, ConfigError) as error:
            raise ConfigError(f"--provider aws: {error}") from None
        if config.aws.effective_user_data_type == "None":
            logging.getLogger("gibbous.autoscaler").warning(
                "aws.userDataType None: nodes register without Gibbous's labels and taints; "
                "the autoscaler patches them on after registration, so pods may land on a "
                "spot node before its taint is there"
            )
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
        provider,
        cluster,
        clock=time.time,
        scheduler_lease=(lease_namespace, lease_name) if args.scheduler_lease else None,
    )
    register_cache_metrics(autoscaler.metrics.registry, "gibbous_autoscaler", cluster.informers)
    service = AutoscalerService(
        autoscaler,
        cluster,
        period_s=args.period,
        elector=elector,
        kubelet=kubelet,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time),
    )
    server = uvicorn.Server(server_config(service.app(), listen, log_level=args.log_level))
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
