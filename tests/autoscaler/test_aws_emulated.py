"""The AWS provider against the EC2/EKS emulator (moto behind `frontdoor`), for what EC2 and
EKS do that moto alone does not: node access, ClientToken, spot's service-linked role,
read throttling, subnet discovery, the image of each node kind. Each expectation is the
cloud's documented behaviour (docs/clouds/aws.md), not the provider's."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from kubernetes import client

from gibbous.autoscaler.cloud.aws import AwsCloudProvider, discover
from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    LaunchRequest,
    ThrottledError,
)
from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.autoscaler.providers.aws import PROVIDER
from gibbous.cli import build_parser
from gibbous.core.settings.config import Config
from gibbous.devcluster.aws.agent import NodeAgent
from gibbous.devcluster.aws.emulator import Ec2Emulator
from gibbous.devcluster.aws.state import INSTANCE_PROFILE, SeededCluster
from tests.factories import catalog, config

CLUSTER = "emulated"


@pytest.fixture
def emulated() -> Iterator[Ec2Emulator]:
    emulator = Ec2Emulator(throttle_scale=0)
    emulator.start()
    yield emulator
    emulator.stop()


def settings(cluster_id: str = CLUSTER) -> Config:
    return config(
        clusterID=cluster_id,
        aws={"nodeInstanceProfile": INSTANCE_PROFILE, "clusterName": CLUSTER},
    )


def provider(emulator: Ec2Emulator, cfg: Config | None = None, **clients: Any) -> AwsCloudProvider:
    cfg = cfg or settings()
    return discover(
        ec2=clients.get("ec2") or emulator.client("ec2"),
        eks=emulator.client("eks"),
        ssm=emulator.client("ssm"),
        iam=emulator.client("iam"),
        config=cfg,
        catalog=catalog("aws"),
        clock=time.time,
        read_aws_auth=clients.get("read_aws_auth", lambda: ""),  # no aws-auth ConfigMap
    )


def seed(emulator: Ec2Emulator, **options: Any) -> SeededCluster:
    return emulator.seed(CLUSTER, "1.37", **options)


def launch(
    token: str, instance_type: str = "m5.large", category: str = "on-demand"
) -> LaunchRequest:
    return LaunchRequest(
        token=token,
        cluster_id=CLUSTER,
        instance_type=instance_type,
        category=category,
        zones=("us-west-2a",),
        labels={"gibbous.dev/placement": "bin-select"},
    )


# --- node access --------------------------------------------------------------------------


def test_a_node_role_without_an_access_entry_is_refused_at_start_with_the_fix(
    emulated: Ec2Emulator,
) -> None:
    seeded = seed(emulated, node_access=False)
    with pytest.raises(FatalConfigurationError) as refused:
        provider(emulated)
    message = str(refused.value)
    assert (
        f"aws eks create-access-entry --cluster-name {CLUSTER} "
        f"--principal-arn {seeded.node_role_arn} --type EC2_LINUX"
    ) in message
    # The fix works: with the entry, the same start succeeds.
    emulated.client("eks").create_access_entry(
        clusterName=CLUSTER, principalArn=seeded.node_role_arn, type="EC2_LINUX"
    )
    assert provider(emulated).instance_types()


def test_an_access_entry_of_the_wrong_type_is_refused(emulated: Ec2Emulator) -> None:
    seeded = seed(emulated, node_access=False)
    emulated.client("eks").create_access_entry(
        clusterName=CLUSTER, principalArn=seeded.node_role_arn, type="STANDARD"
    )
    with pytest.raises(FatalConfigurationError, match="type STANDARD, not EC2_LINUX"):
        provider(emulated)


def test_a_config_map_cluster_needs_the_role_in_aws_auth(emulated: Ec2Emulator) -> None:
    seeded = seed(emulated, authentication_mode="CONFIG_MAP")
    with pytest.raises(FatalConfigurationError, match="aws-auth ConfigMap"):
        provider(emulated, read_aws_auth=lambda: "")
    mapped = (
        f"- rolearn: {seeded.node_role_arn}\n"
        "  username: system:node:{{EC2PrivateDNSName}}\n"
        "  groups: [system:bootstrappers, system:nodes]\n"
    )
    assert provider(emulated, read_aws_auth=lambda: mapped).instance_types()


def test_the_emulated_kubelet_of_a_role_without_access_never_joins(
    emulated: Ec2Emulator,
) -> None:
    seeded = seed(emulated, node_access=False, authentication_mode="API")
    instance = emulated.client("ec2").run_instances(
        ImageId=next(iter(seeded.images.values())),
        MinCount=1,
        MaxCount=1,
        IamInstanceProfile={"Name": INSTANCE_PROFILE},
    )["Instances"][0]
    described = emulated.client("ec2").describe_instances(InstanceIds=[instance["InstanceId"]])
    raw = described["Reservations"][0]["Instances"][0]
    agent = NodeAgent(
        # No Kubernetes API behind it: the API-mode access check reads only the cloud's.
        client.ApiClient(client.Configuration(host="http://127.0.0.1:9")),
        time.time,
        ec2=emulated.client("ec2"),
        eks=emulated.client("eks"),
        iam=emulated.client("iam"),
        cluster_name=CLUSTER,
        access_ttl_s=0.0,
    )
    assert not agent.may_join(raw)
    emulated.client("eks").create_access_entry(
        clusterName=CLUSTER, principalArn=seeded.node_role_arn, type="EC2_LINUX"
    )
    assert agent.may_join(raw)


# --- launches -----------------------------------------------------------------------------


def test_long_cluster_ids_do_not_share_client_tokens(emulated: Ec2Emulator) -> None:
    seed(emulated)
    cluster_id = "x" * 63  # cluster IDs are free text; EC2's ClientToken holds 64 characters
    cloud = provider(emulated, settings(cluster_id))
    first = cloud.create(
        LaunchRequest(
            f"{cluster_id}-aaaaaaaaaaaaaaaaaaaa",
            cluster_id,
            "m5.large",
            "on-demand",
            ("us-west-2a",),
        )
    )
    second = cloud.create(
        LaunchRequest(
            f"{cluster_id}-bbbbbbbbbbbbbbbbbbbb",
            cluster_id,
            "m5.large",
            "on-demand",
            ("us-west-2a",),
        )
    )
    assert first.id != second.id
    assert {i.id for i in cloud.list(cluster_id)} == {first.id, second.id}


def test_an_invalid_parameter_fails_that_launch_only(emulated: Ec2Emulator) -> None:
    seed(emulated)
    cloud = provider(emulated)
    emulated.front.fail_next(
        "RunInstances",
        "InvalidParameterCombination",
        "The parameter iops is not supported for gp2 volumes.",
    )
    with pytest.raises(CloudError) as failed:
        cloud.create(launch("tok-invalid"))
    assert not isinstance(failed.value, FatalConfigurationError)
    assert "InvalidParameterCombination" in str(failed.value)
    assert cloud.create(launch("tok-next")).instance_type == "m5.large"  # the next one goes


def test_a_spot_launch_without_the_service_linked_role_names_it(emulated: Ec2Emulator) -> None:
    seed(emulated, spot_role=False)
    cloud = provider(emulated)
    assert cloud.create(launch("tok-od")).category == "on-demand"
    with pytest.raises(FatalConfigurationError) as refused:
        cloud.create(launch("tok-spot", category="spot"))
    message = str(refused.value)
    assert "AWSServiceRoleForEC2Spot" in message
    assert "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com" in message


def test_a_g5g_node_gets_the_arm64_nvidia_image(emulated: Ec2Emulator) -> None:
    seeded = seed(emulated)
    cloud = provider(emulated)
    arm_gpu = next(t for t in cloud.instance_types() if t.arch == "arm64" and t.gpu_count)
    created = cloud.create(launch("tok-g5g", arm_gpu.name))
    image = emulated.client("ec2").describe_instances(InstanceIds=[created.id])["Reservations"][0][
        "Instances"
    ][0]["ImageId"]
    path = "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/arm64/nvidia/recommended/image_id"
    assert image == seeded.images[path]


def test_subnets_tagged_for_karpenter_discovery_are_found(emulated: Ec2Emulator) -> None:
    seeded = seed(emulated)
    ec2 = emulated.client("ec2")
    subnets = list(seeded.subnets.values())
    ec2.delete_tags(Resources=subnets, Tags=[{"Key": f"kubernetes.io/cluster/{CLUSTER}"}])
    with pytest.raises(FatalConfigurationError) as refused:
        provider(emulated)
    assert f"kubernetes.io/cluster/{CLUSTER}" in str(refused.value)
    assert f"karpenter.sh/discovery={CLUSTER}" in str(refused.value)
    ec2.create_tags(Resources=subnets, Tags=[{"Key": "karpenter.sh/discovery", "Value": CLUSTER}])
    assert provider(emulated).subnets_by_zone == {z: [s] for z, s in seeded.subnets.items()}


# --- throttling ---------------------------------------------------------------------------


def test_throttled_reads_are_throttled_errors_not_failures() -> None:
    emulator = Ec2Emulator(throttle_scale=0.05)  # DescribeInstances: 5 tokens, 1 a second
    emulator.start()
    try:
        seed(emulator)
        cloud = provider(emulator)
        # Without botocore's own retries (which would mostly hide a short burst).
        cloud.ec2 = emulator.client("ec2", BotoConfig(retries={"max_attempts": 1}))
        for _ in range(10):
            try:
                cloud.list(CLUSTER)
            except ThrottledError:
                break
        else:
            raise AssertionError("ten DescribeInstances in a burst were never throttled")
        assert emulator.front.throttled.get("DescribeInstances")
    finally:
        emulator.stop()


def test_a_larger_root_volume_for_the_pods_ephemeral_storage(emulated: Ec2Emulator) -> None:
    # Karpenter's AL2023 root device /dev/xvda, gp3; EBS volume sizes are GiB.
    seed(emulated)
    cloud = provider(emulated)
    made = cloud.create(dataclasses.replace(launch("tok-disk"), disk_gib=890))
    ec2 = emulated.client("ec2")
    (reservation,) = ec2.describe_instances(InstanceIds=[made.id])["Reservations"]
    (instance,) = reservation["Instances"]
    volume_ids = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    sizes = {v["Size"] for v in ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]}
    assert 890 in sizes


# --- the catalog from the emulator's catalog APIs -----------------------------------------


def test_the_catalog_comes_from_the_apis_and_follows_a_price_change(
    emulated: Ec2Emulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--provider aws` as the autoscaler starts it (boto3 finds the emulator through
    AWS_ENDPOINT_URL, as in the dev cluster), with no built-in data in its way."""
    seed(emulated)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulated.endpoint)
    args = build_parser().parse_args(
        ["autoscaler", "--provider", "aws", "--catalog-cache", str(tmp_path)]
    )
    started = PROVIDER.build(args, settings(), [], None)
    aws = started.provider
    assert isinstance(aws, AwsCloudProvider)
    feed = aws.catalog_feed
    assert feed is not None
    assert feed.source == "api"
    metrics = AutoscalerMetrics()
    for collector in started.collectors:
        metrics.registry.register(collector)
    assert (
        metrics.registry.get_sample_value(
            "gibbous_catalog_age_seconds",
            {"cloud": "aws", "region": "us-west-2", "source": "api"},
        )
        is not None
    )
    types = {t.name: t for t in aws.instance_types()}
    # The built-in us-west-2 catalog's rows, as the emulator's APIs serve them:
    # m6i.large 2 vCPU, 8 GiB, $0.096/hr; g5.xlarge one A10G.
    assert (types["m6i.large"].vcpu, types["m6i.large"].memory_bytes) == (2, 8 << 30)
    assert types["m6i.large"].on_demand_price == 0.096
    assert (types["g5.xlarge"].gpu_count, types["g5.xlarge"].gpu_sku) == (1, "A10G")
    two_cpus = [t for t in types.values() if t.vcpu == 2 and t.memory_bytes == 8 << 30]
    assert min(two_cpus, key=lambda t: t.on_demand_price).name != "m6i.large"

    emulated.set_on_demand_price("m6i.large", 0.01)
    later = time.time() + 6 * 3600
    feed.clock = lambda: later
    aws.instance_types()  # starts the refresh beside the caller
    feed.wait(30)
    types = {t.name: t for t in aws.instance_types()}
    assert types["m6i.large"].on_demand_price == 0.01
    two_cpus = [t for t in types.values() if t.vcpu == 2 and t.memory_bytes == 8 << 30]
    assert min(two_cpus, key=lambda t: t.on_demand_price).name == "m6i.large"
