"""The AWS provider against moto's EC2, with the error responses moto lacks injected."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason

from gibbous.autoscaler.cloud.aws import AwsCloudProvider
from gibbous.autoscaler.cloud.base import (
    FatalConfigurationError,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.providers.aws import with_secret_user_data
from gibbous.core.errors import ConfigError
from gibbous.core.settings.loader import build_config
from tests.factories import catalog


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    with mock_aws():
        client = boto3.client("ec2", region_name="us-west-2")
        client.create_launch_template(
            LaunchTemplateName="gibbous-nodes",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "UserData": "IyEvYmluL2Jhc2g="},
        )
        yield client


def provider(ec2: Any) -> AwsCloudProvider:
    return AwsCloudProvider(
        ec2=ec2, catalog=catalog("aws"), launch_template="gibbous-nodes", clock=lambda: 0.0
    )


def request(
    token: str, category: str = "on-demand", zones: tuple[str, ...] = ("us-west-2a",)
) -> LaunchRequest:
    return LaunchRequest(
        token=token,
        cluster_id="prod",
        instance_type="g4dn.xlarge",
        category=category,
        zones=zones,
        labels={"gibbous.dev/placement": "bin-select"},
    )


def test_create_get_list_delete(ec2: Any) -> None:
    cloud = provider(ec2)
    spot = cloud.create(request("tok-1", "spot"))
    assert (
        spot.instance_type == "g4dn.xlarge"
        and spot.category == "spot"
        and spot.zone == "us-west-2a"
    )
    assert spot.token == "tok-1" and spot.cluster_id == "prod"
    assert spot.labels["gibbous.dev/placement"] == "bin-select"
    on_demand = cloud.create(request("tok-2"))
    assert on_demand.category == "on-demand"
    assert {i.id for i in cloud.list("prod")} == {spot.id, on_demand.id}
    assert cloud.list("other") == []
    assert cloud.get(spot.id).state in (InstanceState.PENDING, InstanceState.RUNNING)
    cloud.delete(spot.id)
    assert cloud.get(spot.id).state in (InstanceState.TERMINATING, InstanceState.TERMINATED)
    assert {i.id for i in cloud.list("prod")} - {spot.id} == {on_demand.id}
    with pytest.raises(InstanceNotFoundError):
        cloud.get("i-0123456789abcdef0")


def test_create_is_idempotent_by_client_token(ec2: Any) -> None:
    cloud = provider(ec2)
    first = cloud.create(request("tok-same"))
    again = cloud.create(request("tok-same"))
    assert again.id == first.id
    assert len(cloud.list("prod")) == 1


def failing(ec2: Any, codes: list[str]) -> Any:
    """Wrap run_instances to fail with these EC2 error codes first (moto never returns them)."""
    original = ec2.run_instances

    def run_instances(**kwargs: Any) -> Any:
        if codes:
            code = codes.pop(0)
            raise ClientError(
                {"Error": {"Code": code, "Message": f"injected {code}"}}, "RunInstances"
            )
        return original(**kwargs)

    ec2.run_instances = run_instances
    return ec2


def test_capacity_in_one_zone_moves_to_the_next(ec2: Any) -> None:
    cloud = provider(failing(ec2, ["InsufficientInstanceCapacity"]))
    instance = cloud.create(request("tok-z", zones=("us-west-2a", "us-west-2b")))
    assert instance.zone == "us-west-2b"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("InsufficientInstanceCapacity", InsufficientCapacityError),
        ("SpotMaxPriceTooLow", InsufficientCapacityError),
        ("MaxSpotInstanceCountExceeded", QuotaExceededError),
        ("VcpuLimitExceeded", QuotaExceededError),
        ("RequestLimitExceeded", ThrottledError),
        ("UnauthorizedOperation", FatalConfigurationError),
        ("InvalidLaunchTemplateName.NotFoundException", FatalConfigurationError),
    ],
)
def test_ec2_error_codes_become_typed_failures(ec2: Any, code: str, error: type[Exception]) -> None:
    cloud = provider(failing(ec2, [code]))
    with pytest.raises(error, match=code):
        cloud.create(request("tok-e"))


def fail_after_acceptance(instance_id: str, code: str) -> None:
    """What EC2 does to a spot launch it cannot fill after all (moto never does it)."""
    instance = ec2_backends[DEFAULT_ACCOUNT_ID]["us-west-2"].get_instance(instance_id)
    instance.terminate()
    instance.state_reason = StateReason(f"{code}: Server.InsufficientInstanceCapacity", code)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("Server.InsufficientInstanceCapacity", "insufficient-capacity"),
        ("Server.SpotInstanceTermination", "insufficient-capacity"),
        ("Client.VolumeLimitExceeded", "quota"),
    ],
)
def test_a_launch_ec2_fails_after_accepting_it_says_why(ec2: Any, code: str, kind: str) -> None:
    cloud = provider(ec2)
    instance = cloud.create(request("t-async", category="spot"))
    fail_after_acceptance(instance.id, code)
    seen = cloud.get(instance.id)
    assert seen.state is InstanceState.TERMINATED
    assert seen.failure_kind == kind and code in seen.failure_reason
    assert cloud.list("prod") == []  # a failed launch is not a live instance


def test_an_instance_we_terminated_is_no_failure(ec2: Any) -> None:
    cloud = provider(ec2)
    instance = cloud.create(request("t-ours"))
    cloud.delete(instance.id)
    seen = cloud.get(instance.id)
    assert seen.state is InstanceState.TERMINATED and seen.failure_kind == ""


# aws.userDataSecret: the autoscaler reads the mounted key and checks it as aws.userData.
RKE2_TEMPLATE = (
    "#!/bin/bash\n"
    "cat > /etc/rancher/rke2/config.yaml <<EOF\n"
    'token: "K10secret::server:abc"\n'
    "node-label:\n"
    "{{- range $k, $v := .Labels }}\n"
    '- "{{ $k }}={{ $v }}"\n'
    "{{- end }}\n"
    "EOF\n"
)


def test_the_user_data_secret_is_read_from_its_mounted_file(tmp_path: Path) -> None:
    path = tmp_path / "userData"
    path.write_text(RKE2_TEMPLATE)
    config = build_config({"aws": {"userDataType": "Template", "userDataSecret": "rke2-join"}})
    read = with_secret_user_data(config, str(path))
    assert read.aws.user_data == RKE2_TEMPLATE
    assert read.aws.user_data_secret == "rke2-join" and read.cloud == config.cloud


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ if .Labels }}", "missing {{ end }}"),
        ("", "needs aws.userData"),
        ("#!/bin/bash\n" + "#" * 16_400 + "\n{{ .MaxPods }}", "limit of 16384 bytes"),
    ],
)
def test_the_secrets_user_data_is_checked_at_start(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "userData"
    path.write_text(text)
    config = build_config({"aws": {"userDataType": "Template", "userDataSecret": "rke2-join"}})
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        with_secret_user_data(config, str(path))
    assert "aws.userDataSecret 'rke2-join'" in str(raised.value)


def test_a_user_data_secret_without_its_file_or_beside_user_data_is_refused(
    tmp_path: Path,
) -> None:
    secret = build_config({"aws": {"userDataSecret": "rke2-join"}})
    with pytest.raises(ConfigError, match="pass --aws-user-data-file"):
        with_secret_user_data(secret, None)
    with pytest.raises(ConfigError, match="cannot read"):
        with_secret_user_data(secret, str(tmp_path / "missing"))
    path = tmp_path / "userData"
    path.write_text("#!/bin/bash\n")
    inline = build_config({"aws": {"userData": "#!/bin/bash\necho hi\n"}})
    with pytest.raises(ConfigError, match="both set"):
        with_secret_user_data(inline, str(path))
    # Without either, the configuration is left as it is.
    assert with_secret_user_data(inline, None) is inline
