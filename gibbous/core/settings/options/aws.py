"""Luna's `aws:` values: how EC2 nodes are launched and join the cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.errors import ConfigError
from gibbous.core.settings.option import Option, Section, ValueType, as_list, unchanged
from gibbous.core.settings.userdata import UserDataType
from gibbous.core.settings.valuetypes import (
    BOOLEAN,
    TEXT,
    TRIMMED_TEXT,
    parse_number,
    parse_string_list,
    parse_whole_number,
)


@dataclass(frozen=True)
class AwsConfig:
    """Luna's `aws:` values: how EC2 nodes are launched and join the cluster."""

    cluster_name: str = ""  # the EKS cluster (eks:DescribeCluster); empty: clusterID
    subnets: tuple[str, ...] = ()  # empty on EKS: the cluster's tagged subnets
    security_groups: tuple[str, ...] = ()  # empty on EKS: the cluster security group
    node_instance_profile: str = ""
    ami_id_generic: str = ""
    ami_id_generic_arm: str = ""
    ami_id_gpu: str = ""
    image_ssm_query_generic: str = ""  # `%s` is the Kubernetes version
    image_ssm_query_generic_arm: str = ""
    image_ssm_query_gpu: str = ""
    is_bottlerocket_image: bool = False
    user_data_type: UserDataType = UserDataType.AL2023
    user_data: str = ""
    # A Secret holding the user data instead (key `userData`): only the autoscaler mounts it,
    # and reads it at start (the content is not part of this configuration).
    user_data_secret: str = ""
    block_device_mappings: tuple[Mapping[str, Any], ...] = ()
    use_spot_advisor: bool = False
    spot_advisor_file: str = ""
    # The advisor page's own data (see gibbous/autoscaler/cloud/spotadvisor.py).
    spot_advisor_url: str = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
    max_spot_interrupt_bucket: int | None = None
    max_spot_price_ratio: float | None = None

    @property
    def effective_user_data_type(self) -> UserDataType:
        """Luna's Bottlerocket setup names the image, not the user-data type."""
        if self.is_bottlerocket_image and self.user_data_type is UserDataType.AL2023:
            return UserDataType.BOTTLEROCKET
        return self.user_data_type


def aws_ids(prefix: str) -> ValueType:
    def parse(value: object, key: str) -> tuple[str, ...]:
        items = parse_string_list(value, key)
        bad = [item for item in items if not re.fullmatch(rf"{prefix}-[0-9a-f]{{8,17}}", item)]
        if bad:
            raise ConfigError(f"{key}: {bad[0]!r} is not an id of the form {prefix}-0123abcd")
        return items

    return ValueType(f"list of ids {prefix}-0123abcd", parse, as_list)


def _ami(value: object, key: str) -> str:
    text = str(value or "").strip()
    if text and not re.fullmatch(r"ami-[0-9a-f]{8,17}", text):
        raise ConfigError(f"{key}: {text!r} is not an AMI id of the form ami-0123abcd")
    return text


def _ssm_query(value: object, key: str) -> str:
    text = str(value or "").strip()
    if text and (not text.startswith("/") or text.count("%s") > 1 or "%" in text.replace("%s", "")):
        raise ConfigError(
            f"{key}: {text!r} is not an SSM parameter path with at most one %s "
            "(the Kubernetes version), e.g. /aws/service/bottlerocket/aws-k8s-%s/x86_64/latest/image_id"
        )
    return text


_EBS_FIELDS = {
    "DeleteOnTermination": bool,
    "Encrypted": bool,
    "Iops": int,
    "KmsKeyId": str,
    "SnapshotId": str,
    "Throughput": int,
    "VolumeSize": int,
    "VolumeType": str,
}
_VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")


def _block_device_mappings(value: object, key: str) -> tuple[Mapping[str, Any], ...]:
    """EC2's BlockDeviceMapping list (Luna's `--set-file aws.blockDeviceMappings=...json`),
    checked field by field, as RunInstances would refuse it."""
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ConfigError(f"{key}: not JSON: {error}") from None
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of block device mappings")
    out = []
    for index, mapping in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(mapping, Mapping) or not isinstance(mapping.get("DeviceName"), str):
            raise ConfigError(f"{where}: needs DeviceName (e.g. /dev/xvda)")
        unknown = set(mapping) - {"DeviceName", "Ebs", "NoDevice", "VirtualName"}
        if unknown:
            raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        ebs = mapping.get("Ebs")
        if ebs is not None:
            if not isinstance(ebs, Mapping):
                raise ConfigError(f"{where}.Ebs: expected a mapping")
            for field_name, field_value in ebs.items():
                wanted = _EBS_FIELDS.get(field_name)
                if wanted is None:
                    raise ConfigError(f"{where}.Ebs: unknown field {field_name!r}")
                if not isinstance(field_value, wanted) or (
                    wanted is int and isinstance(field_value, bool)
                ):
                    raise ConfigError(
                        f"{where}.Ebs.{field_name}: expected {wanted.__name__}, got {field_value!r}"
                    )
            if ebs.get("VolumeType", "gp3") not in _VOLUME_TYPES:
                raise ConfigError(
                    f"{where}.Ebs.VolumeType: {ebs['VolumeType']!r} is not one of {', '.join(_VOLUME_TYPES)}"
                )
            if "VolumeSize" in ebs and not 1 <= ebs["VolumeSize"] <= 65536:
                raise ConfigError(
                    f"{where}.Ebs.VolumeSize: {ebs['VolumeSize']} GiB is out of range"
                )
        out.append(dict(mapping))
    return tuple(out)


def _user_data_type(value: object, key: str) -> UserDataType:
    try:
        return UserDataType(str(value).strip())
    except ValueError:
        accepted = ", ".join(t.value for t in UserDataType)
        raise ConfigError(
            f"{key}: unknown user-data type {value!r} (accepted: {accepted})"
        ) from None


def _secret_name(value: object, key: str) -> str:
    # A Secret's name is a DNS subdomain; checked here so a typo fails `gibbous config
    # --check` and the chart's render, not the autoscaler Pod's volume mount.
    name = str(TEXT.parse(value, key)).strip()
    if name and (
        len(name) > 253
        or not re.fullmatch(
            r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name
        )
    ):
        raise ConfigError(f"{key}: {name!r} is not a Secret name (a DNS subdomain)")
    return name


def _optional_bucket(value: object, key: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_whole_number(value, key, 0, 4)


def _optional_ratio(value: object, key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_number(value, key, 0.01, 1.0)


AMI_ID = ValueType("AMI id ami-0123abcd (empty: from SSM)", _ami, unchanged)
SSM_QUERY = ValueType("SSM parameter path, %s = Kubernetes version", _ssm_query, unchanged)
BLOCK_DEVICE_MAPPINGS = ValueType(
    "EC2 BlockDeviceMapping list (JSON)",
    _block_device_mappings,
    lambda v: [dict(m) for m in v],
)
USER_DATA_TYPE = ValueType(
    f"one of {', '.join(t.value for t in UserDataType)}", _user_data_type, str
)
SECRET_NAME = ValueType("Secret name (empty: none)", _secret_name, unchanged)
OPTIONAL_INTERRUPT_BUCKET = ValueType("whole number, 0 to 4, or null", _optional_bucket, unchanged)
OPTIONAL_PRICE_RATIO = ValueType("number, 0.01 to 1.0, or null", _optional_ratio, unchanged)

AWS = Section(
    "AWS",
    (
        Option(
            key="aws.clusterName",
            attribute="aws.cluster_name",
            value_type=TEXT,
            help="EKS cluster name for discovery (empty: clusterID)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.subnets",
            attribute="aws.subnets",
            value_type=aws_ids("subnet"),
            help="subnets for nodes (empty on EKS: the cluster's tagged subnets)",
            luna="aws.subnets",
            since="0.1.0",
        ),
        Option(
            key="aws.securityGroups",
            attribute="aws.security_groups",
            value_type=aws_ids("sg"),
            help="security groups for nodes (empty on EKS: the cluster security group)",
            luna="aws.securityGroups",
            since="0.1.0",
        ),
        Option(
            key="aws.nodeInstanceProfile",
            attribute="aws.node_instance_profile",
            value_type=TEXT,
            help="instance profile name for nodes (without a launch template: required)",
            luna="aws.nodeInstanceProfile",
            since="0.1.0",
        ),
        Option(
            key="aws.amiIdGeneric",
            attribute="aws.ami_id_generic",
            value_type=AMI_ID,
            help="AMI for x86-64 nodes (empty: the EKS-optimized AMI from SSM)",
            luna="aws.amiIdGeneric",
            since="0.1.0",
        ),
        Option(
            key="aws.amiIdGenericArm",
            attribute="aws.ami_id_generic_arm",
            value_type=AMI_ID,
            help="AMI for arm64 nodes (empty: from SSM)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.amiIdGpu",
            attribute="aws.ami_id_gpu",
            value_type=AMI_ID,
            help="AMI for GPU nodes (empty: the NVIDIA variant from SSM)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.imageSsmQueryGeneric",
            attribute="aws.image_ssm_query_generic",
            value_type=SSM_QUERY,
            help="SSM parameter of the x86-64 AMI; %s = Kubernetes version",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.imageSsmQueryGenericArm",
            attribute="aws.image_ssm_query_generic_arm",
            value_type=SSM_QUERY,
            help="SSM parameter of the arm64 AMI",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.imageSsmQueryGpu",
            attribute="aws.image_ssm_query_gpu",
            value_type=SSM_QUERY,
            help="SSM parameter of the GPU AMI",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.isBottlerocketImage",
            attribute="aws.is_bottlerocket_image",
            value_type=BOOLEAN,
            help="nodes run Bottlerocket (user data is TOML; AMIs from Bottlerocket's SSM parameters)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.userDataType",
            attribute="aws.user_data_type",
            value_type=USER_DATA_TYPE,
            help="AL2023, Bottlerocket, AL2, Template (aws.userData is a Go template over .Labels, .Taints, .MaxPods) or None",
            luna="aws.userDataType",
            since="0.1.0",
        ),
        Option(
            key="aws.userData",
            attribute="aws.user_data",
            value_type=TEXT,
            help="the operator's user data (kept), or the template",
            luna="aws.userData",
            since="0.1.0",
        ),
        Option(
            key="aws.userDataSecret",
            attribute="aws.user_data_secret",
            value_type=SECRET_NAME,
            help="a Secret in the release namespace whose key userData holds the user data "
            "(instead of aws.userData: only the autoscaler mounts it)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.blockDeviceMappings",
            attribute="aws.block_device_mappings",
            value_type=BLOCK_DEVICE_MAPPINGS,
            help="EC2 block device mappings (JSON list)",
            luna="aws.blockDeviceMappings",
            since="0.1.0",
        ),
        Option(
            key="aws.useSpotAdvisor",
            attribute="aws.use_spot_advisor",
            value_type=BOOLEAN,
            help="spot prices and interruption buckets from the Spot Instance Advisor's data "
            "(fetched from aws.spotAdvisorUrl daily, or read from aws.spotAdvisorFile)",
            luna="aws.useSpotAdvisor",
            since="0.1.0",
        ),
        Option(
            key="aws.spotAdvisorFile",
            attribute="aws.spot_advisor_file",
            value_type=TEXT,
            help="a copy of the Spot Instance Advisor's public JSON (spot-advisor-data.json), "
            "for clusters that cannot reach aws.spotAdvisorUrl",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.spotAdvisorUrl",
            attribute="aws.spot_advisor_url",
            value_type=TRIMMED_TEXT,
            help="where the autoscaler fetches the Spot Instance Advisor's JSON (daily; "
            "unreachable: live spot prices, with a warning)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="aws.maxSpotInterruptBucket",
            attribute="aws.max_spot_interrupt_bucket",
            value_type=OPTIONAL_INTERRUPT_BUCKET,
            help="with the advisor: highest interruption bucket allowed, 0 (<5%) to 4 (>20%)",
            luna="aws.maxSpotInterruptBucket",
            since="0.1.0",
        ),
        Option(
            key="aws.maxSpotPriceRatio",
            attribute="aws.max_spot_price_ratio",
            value_type=OPTIONAL_PRICE_RATIO,
            help="with the advisor: highest spot/on-demand price ratio allowed",
            luna="aws.maxSpotPriceRatio",
            since="0.1.0",
        ),
    ),
)
