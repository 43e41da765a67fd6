"""What an EC2 node needs to join an EKS cluster, found once at start: the cluster's endpoint,
CA and service CIDR (`eks:DescribeCluster`), its subnets and security groups (configured, or
found by the cluster's discovery tags), and the AMI per architecture and GPU (configured, or
the EKS-optimized or Bottlerocket image from the public SSM parameters). A refused call names
the IAM action, since that is what an operator must grant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gibbous.autoscaler.cloud.base import FatalConfigurationError
from gibbous.core.settings.options.aws import AwsConfig
from gibbous.core.settings.userdata import ClusterInfo, UserDataType

log = logging.getLogger("gibbous.autoscaler.eks")

DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"}
)


def refused(action: str, error: ClientError) -> FatalConfigurationError:
    """The refusal of an AWS call as an error naming what to grant (or what was wrong)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", ""))
    if code in DENIED:
        return FatalConfigurationError(
            f"{action} was refused ({code}): grant {action} to Gibbous's role; {message}"
        )
    return FatalConfigurationError(f"{action} failed ({code}): {message}")


def call(action: str, function: Callable[..., Any], **arguments: Any) -> Any:
    try:
        return function(**arguments)
    except ClientError as error:
        raise refused(action, error) from None
    except BotoCoreError as error:  # no credentials, no route, a bad endpoint
        raise FatalConfigurationError(f"{action} failed: cannot reach AWS: {error}") from None


@dataclass(frozen=True)
class NodeImages:
    """AMI ids by (architecture, GPU), resolved once per process."""

    by_kind: dict[tuple[str, bool], str] = field(default_factory=dict)

    def for_instance(self, arch: str, gpu: bool) -> str:
        # A GPU node never takes the plain image: it has no NVIDIA driver, so the node
        # would register without its GPUs (g5g got the arm64 standard AMI this way).
        image = self.by_kind.get((arch, gpu))
        if not image:
            kind = f"{arch}{' GPU' if gpu else ''}"
            raise FatalConfigurationError(
                f"no AMI for {kind} nodes: set aws.amiIdGeneric/amiIdGenericArm/amiIdGpu "
                "(arm64 GPU nodes take the EKS-optimized AL2023 or Bottlerocket NVIDIA image)"
            )
        return image


def describe_cluster(eks: Any, name: str) -> tuple[ClusterInfo, str, str, str]:
    """(what kubelets need, the Kubernetes version `1.37`, the cluster security group, the
    authentication mode: accessConfig.authenticationMode, "" when the cluster says none)."""
    reply = call("eks:DescribeCluster", eks.describe_cluster, name=name)["cluster"]
    network = reply.get("kubernetesNetworkConfig") or {}
    info = ClusterInfo(
        name=name,
        endpoint=str(reply.get("endpoint") or ""),
        certificate_authority=str((reply.get("certificateAuthority") or {}).get("data") or ""),
        service_cidr=str(network.get("serviceIpv4Cidr") or network.get("serviceIpv6Cidr") or ""),
    )
    security_group = str(
        (reply.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId") or ""
    )
    mode = str((reply.get("accessConfig") or {}).get("authenticationMode") or "")
    return info, str(reply.get("version") or ""), security_group, mode


def discovery_filters(cluster_name: str) -> list[list[dict[str, Any]]]:
    """The tag filters that find a cluster's node subnets, one DescribeSubnets each (EC2
    ANDs the filters of one call): `kubernetes.io/cluster/<name>` (owned or shared), which
    EKS put on subnets only for clusters of Kubernetes 1.18 and earlier, and Karpenter's
    `karpenter.sh/discovery=<name>`, what eksctl and Karpenter's guides tag now."""
    return [
        [{"Name": f"tag:kubernetes.io/cluster/{cluster_name}", "Values": ["owned", "shared"]}],
        [{"Name": "tag:karpenter.sh/discovery", "Values": [cluster_name]}],
    ]


def subnets_by_zone(ec2: Any, config: AwsConfig, cluster_name: str) -> dict[str, list[str]]:
    """Configured subnets, or those with a discovery tag (`discovery_filters`), grouped by
    zone."""
    found: dict[str, dict[str, Any]] = {}
    if config.subnets:
        reply = call("ec2:DescribeSubnets", ec2.describe_subnets, SubnetIds=list(config.subnets))
        found = {s["SubnetId"]: s for s in reply.get("Subnets", [])}
    else:
        for filters in discovery_filters(cluster_name):
            reply = call("ec2:DescribeSubnets", ec2.describe_subnets, Filters=filters)
            found.update({s["SubnetId"]: s for s in reply.get("Subnets", [])})
    out: dict[str, list[str]] = {}
    for subnet in sorted(found.values(), key=lambda s: -int(s.get("AvailableIpAddressCount", 0))):
        out.setdefault(subnet["AvailabilityZone"], []).append(subnet["SubnetId"])
    if not out:
        raise FatalConfigurationError(
            "no subnets for nodes: no subnet is tagged "
            f"kubernetes.io/cluster/{cluster_name} (owned or shared) or "
            f"karpenter.sh/discovery={cluster_name} (EKS does not tag subnets itself since "
            "Kubernetes 1.19); set aws.subnets or tag the node subnets: aws ec2 create-tags "
            f"--resources <subnet ids> --tags Key=karpenter.sh/discovery,Value={cluster_name}"
        )
    return out


def security_groups(
    ec2: Any, config: AwsConfig, cluster_name: str, cluster_group: str
) -> tuple[str, ...]:
    if config.security_groups:
        return config.security_groups
    found: list[str] = []
    for filters in discovery_filters(cluster_name):
        reply = call("ec2:DescribeSecurityGroups", ec2.describe_security_groups, Filters=filters)
        found.extend(g["GroupId"] for g in reply.get("SecurityGroups", []))
    groups = tuple(dict.fromkeys([*([cluster_group] if cluster_group else []), *found]))
    if not groups:
        raise FatalConfigurationError(
            "no security groups for nodes: the cluster reports no cluster security group and "
            f"none is tagged kubernetes.io/cluster/{cluster_name} or "
            f"karpenter.sh/discovery={cluster_name}; set aws.securityGroups"
        )
    return groups


_ARCH = {"amd64": "x86_64", "arm64": "arm64"}


def _ssm_paths(config: AwsConfig, version: str) -> dict[tuple[str, bool], str]:
    """SSM parameters of the node images by (architecture, GPU)."""
    kind = config.effective_user_data_type
    if config.is_bottlerocket_image or kind is UserDataType.BOTTLEROCKET:
        defaults = {
            ("amd64", False): "/aws/service/bottlerocket/aws-k8s-%s/x86_64/latest/image_id",
            ("arm64", False): "/aws/service/bottlerocket/aws-k8s-%s/arm64/latest/image_id",
            ("amd64", True): "/aws/service/bottlerocket/aws-k8s-%s-nvidia/x86_64/latest/image_id",
            ("arm64", True): "/aws/service/bottlerocket/aws-k8s-%s-nvidia/arm64/latest/image_id",
        }
    elif kind is UserDataType.AL2:
        defaults = {
            (
                "amd64",
                False,
            ): "/aws/service/eks/optimized-ami/%s/amazon-linux-2/recommended/image_id",
            (
                "arm64",
                False,
            ): "/aws/service/eks/optimized-ami/%s/amazon-linux-2-arm64/recommended/image_id",
            (
                "amd64",
                True,
            ): "/aws/service/eks/optimized-ami/%s/amazon-linux-2-gpu/recommended/image_id",
        }
    else:
        base = "/aws/service/eks/optimized-ami/%s/amazon-linux-2023"
        defaults = {
            ("amd64", False): f"{base}/x86_64/standard/recommended/image_id",
            ("arm64", False): f"{base}/arm64/standard/recommended/image_id",
            ("amd64", True): f"{base}/x86_64/nvidia/recommended/image_id",
            ("arm64", True): f"{base}/arm64/nvidia/recommended/image_id",
        }
    configured = {
        ("amd64", False): config.image_ssm_query_generic,
        ("arm64", False): config.image_ssm_query_generic_arm,
        ("amd64", True): config.image_ssm_query_gpu,
    }
    # AL2 has no arm64 GPU image: g5g nodes need AL2023 or Bottlerocket.
    return {
        kind_key: (configured.get(kind_key) or path).replace("%s", version)
        for kind_key, path in defaults.items()
    }


def node_images(ssm: Any | None, config: AwsConfig, version: str) -> NodeImages:
    """Configured AMIs first; the rest from SSM (skipped when the template or the operator
    names every image)."""
    images = {
        ("amd64", False): config.ami_id_generic,
        ("arm64", False): config.ami_id_generic_arm,
        ("amd64", True): config.ami_id_gpu,
    }
    paths = _ssm_paths(config, version)
    for kind, image in list(images.items()) + [(k, "") for k in paths if k not in images]:
        if image or ssm is None or not version:
            continue
        try:
            reply = ssm.get_parameter(Name=paths[kind])
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code == "ParameterNotFound":
                log.warning("no image for %s nodes at %s", kind, paths[kind])
                continue
            raise refused("ssm:GetParameter", error) from None
        images[kind] = str(reply["Parameter"]["Value"])
    return NodeImages({kind: image for kind, image in images.items() if image})
