"""`--provider aws`: EC2 instances joining EKS (boto3, the `aws` extra)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gibbous.autoscaler.cloud.base import FatalConfigurationError
from gibbous.autoscaler.providers.spec import ProviderSpec, StartedProvider
from gibbous.core.errors import ConfigError, GibbousError
from gibbous.core.settings.userdata import check_user_data

if TYPE_CHECKING:
    from gibbous.core.choice.catalog import InstanceType
    from gibbous.core.settings.config import Config


def build(
    args: argparse.Namespace, config: Config, catalog: list[InstanceType], api: Any
) -> StartedProvider:
    try:
        import boto3
    except ImportError:
        raise ConfigError(
            "--provider aws needs boto3: pip install -e '.[aws]' in a checkout of Gibbous"
        ) from None

    from gibbous.autoscaler.cloud.aws import discover

    if not args.aws_launch_template and not config.aws.node_instance_profile:
        # Checked here, not at the first launch: an instance without a node role runs
        # and is paid for, but never becomes a Node.
        raise ConfigError(
            "--provider aws: set aws.nodeInstanceProfile (the instance profile of the "
            "nodes' IAM role) or pass --aws-launch-template: without either, EC2 "
            "instances cannot join the cluster"
        )
    config = with_secret_user_data(config, args.aws_user_data_file)
    subnets = _subnets(args.aws_subnet)
    # boto3 takes AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_EC2, ...) from the environment,
    # which is how the dev cluster points it at the EC2 emulator.
    region = config.effective_region
    advisor = _spot_advisor(config)
    feed = None
    if config.aws.use_spot_advisor and advisor is None:
        from gibbous.autoscaler.cloud.spotadvisor import SpotAdvisorFeed

        feed = SpotAdvisorFeed(config.aws.spot_advisor_url, region, time.time)
        feed.start()
    catalog_feed = None
    if not args.catalog:
        from botocore.config import Config as BotoConfig

        from gibbous.autoscaler.cloud.awscatalog import AwsCatalogFeed, pricing_region

        # Bounded: the first fetch runs before the first decision, and an API that cannot
        # be reached (no egress to the Price List endpoint) must not hold the start for
        # botocore's default 60 s connect timeout times its retries.
        bounded = BotoConfig(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})
        catalog_feed = AwsCatalogFeed(
            ec2=boto3.client("ec2", region_name=region, config=bounded),
            pricing=boto3.client("pricing", region_name=pricing_region(region), config=bounded),
            region=region,
            builtin=catalog,
            clock=time.time,
            cache_dir=args.catalog_cache,
        )
        catalog_feed.start()
    try:
        provider = discover(
            ec2=boto3.client("ec2", region_name=region),
            eks=boto3.client("eks", region_name=region),
            ssm=boto3.client("ssm", region_name=region),
            iam=boto3.client("iam", region_name=region),
            config=config,
            catalog=catalog,
            clock=time.time,
            launch_template=args.aws_launch_template or "",
            subnet_overrides=subnets,
            spot_advisor=advisor,
            spot_advisor_feed=feed,
            read_aws_auth=lambda: _aws_auth_map_roles(api),
            catalog_feed=catalog_feed,
        )
    except (FatalConfigurationError, ConfigError) as error:
        raise ConfigError(f"--provider aws: {error}") from None
    if config.aws.effective_user_data_type == "None":
        logging.getLogger("gibbous.autoscaler").warning(
            "aws.userDataType None: nodes register without Gibbous's labels and taints; "
            "the autoscaler patches them on after registration, so pods may land on a "
            "spot node before its taint is there"
        )
    return StartedProvider(provider, collectors=(catalog_feed,) if catalog_feed else ())


def with_secret_user_data(config: Config, path: str | None) -> Config:
    """The configuration with aws.userData read from the mounted aws.userDataSecret (at
    `path`), checked as aws.userData is at start: it renders, and within EC2's 16 KB."""
    secret = config.aws.user_data_secret
    if not path:
        if secret:
            raise ConfigError(
                f"aws.userDataSecret {secret!r}: pass --aws-user-data-file with the Secret's "
                "key userData mounted there (the chart does)"
            )
        return config
    if config.aws.user_data:
        raise ConfigError(
            "--aws-user-data-file and aws.userData are both set: keep the user data in one place"
        )
    where = f"aws.userDataSecret {secret!r}" if secret else "--aws-user-data-file"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read {path}: {error}") from None
    try:
        check_user_data(config.aws.effective_user_data_type, text)
    except GibbousError as error:
        raise ConfigError(f"{where}: {error}") from None
    return dataclasses.replace(config, aws=dataclasses.replace(config.aws, user_data=text))


def _aws_auth_map_roles(api: Any) -> str | None:
    """kube-system/aws-auth's mapRoles: "" when absent, None when it may not be read."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        found = client.CoreV1Api(api).read_namespaced_config_map("aws-auth", "kube-system")
    except ApiException as error:
        return "" if error.status == 404 else None
    return str((found.data or {}).get("mapRoles") or "")


def _subnets(items: list[str]) -> dict[str, str]:
    """--aws-subnet ZONE=SUBNET, repeated."""
    subnets = {}
    for item in items:
        zone, sep, subnet = item.partition("=")
        if not sep or not zone or not subnet:
            raise ConfigError(f"--aws-subnet {item!r}: expected ZONE=SUBNET")
        subnets[zone] = subnet
    return subnets


def _spot_advisor(config: Config) -> object:
    """The Spot Instance Advisor data of aws.spotAdvisorFile, when aws.useSpotAdvisor (None
    without a file: the provider fetches it from aws.spotAdvisorUrl)."""
    if not config.aws.use_spot_advisor or not config.aws.spot_advisor_file:
        return None
    try:
        return json.loads(Path(config.aws.spot_advisor_file).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"aws.spotAdvisorFile: {error}") from None


PROVIDER = ProviderSpec("aws", "EC2, joining EKS", build)
