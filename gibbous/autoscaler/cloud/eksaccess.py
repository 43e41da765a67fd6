"""Whether EC2 nodes may join an EKS cluster at all: checked once at start.

A kubelet authenticates to EKS as the IAM role of its instance profile, and EKS lets that
role in only through an access entry of type `EC2_LINUX` (authentication modes `API` and
`API_AND_CONFIG_MAP`) or a `mapRoles` entry of the `aws-auth` ConfigMap in kube-system
(modes `CONFIG_MAP` and `API_AND_CONFIG_MAP`). Without either, every instance Gibbous
launches runs, is billed, and never becomes a Node; so the autoscaler refuses to start and
says the command that fixes it (docs/install/eks.md, docs/clouds/aws.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from botocore.exceptions import ClientError

from gibbous.autoscaler.cloud.base import FatalConfigurationError
from gibbous.autoscaler.cloud.eks import call, refused

log = logging.getLogger("gibbous.autoscaler.eks")

NODE_ENTRY_TYPE = "EC2_LINUX"
NODE_GROUPS = ("system:bootstrappers", "system:nodes")
API_MODES = frozenset({"API", "API_AND_CONFIG_MAP"})
CONFIG_MAP_MODES = frozenset({"CONFIG_MAP", "API_AND_CONFIG_MAP"})

# Reads kube-system/aws-auth's `mapRoles`: "" when the ConfigMap or the key is absent,
# None when it could not be read (no RBAC right to it).
AwsAuthReader = Callable[[], str | None]


def profile_name(profile: str) -> str:
    """An instance profile's name from its name or ARN (`...:instance-profile/path/name`)."""
    return profile.rsplit("/", 1)[-1] if ":instance-profile/" in profile else profile


def node_role_arn(iam: Any, profile: str) -> str:
    """The ARN of the IAM role in the nodes' instance profile (iam:GetInstanceProfile)."""
    name = profile_name(profile)
    reply = call("iam:GetInstanceProfile", iam.get_instance_profile, InstanceProfileName=name)
    roles = (reply.get("InstanceProfile") or {}).get("Roles") or []
    if not roles:
        raise FatalConfigurationError(
            f"instance profile {name} has no IAM role: nodes launched with it cannot "
            f"authenticate to the cluster; aws iam add-role-to-instance-profile "
            f"--instance-profile-name {name} --role-name <node role>"
        )
    return str(roles[0]["Arn"])


def without_path(role_arn: str) -> str:
    """`arn:aws:iam::111:role/a/b/name` -> `arn:aws:iam::111:role/name`: aws-auth's
    `rolearn` may not carry a path."""
    head, sep, rest = role_arn.partition(":role/")
    return f"{head}{sep}{rest.rsplit('/', 1)[-1]}" if sep else role_arn


def mapped_in_aws_auth(map_roles: str, role_arn: str) -> bool:
    """Whether `mapRoles` maps the role into the groups a kubelet needs."""
    try:
        entries = yaml.safe_load(map_roles) or []
    except yaml.YAMLError:
        return False
    wanted = {role_arn, without_path(role_arn)}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or str(entry.get("rolearn", "")) not in wanted:
            continue
        groups = entry.get("groups") or []
        if "system:nodes" in groups:
            return True
    return False


def access_entry_type(eks: Any, cluster: str, role_arn: str) -> str:
    """The type of the role's access entry; "" when it has none."""
    try:
        reply = eks.describe_access_entry(clusterName=cluster, principalArn=role_arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return ""
        raise refused("eks:DescribeAccessEntry", error) from None
    return str((reply.get("accessEntry") or {}).get("type") or "STANDARD")


def check_node_access(
    *,
    eks: Any,
    iam: Any,
    cluster: str,
    profile: str,
    mode: str,
    read_aws_auth: AwsAuthReader | None,
) -> None:
    """Raise FatalConfigurationError, with the fix, when the role of `profile` cannot join
    `cluster`. `mode` is DescribeCluster's accessConfig.authenticationMode; a cluster that
    reports none predates access entries and is CONFIG_MAP."""
    mode = mode or "CONFIG_MAP"
    role = node_role_arn(iam, profile)
    found = ""
    if mode in API_MODES:
        found = access_entry_type(eks, cluster, role)
        if found == NODE_ENTRY_TYPE:
            return
        if found:
            raise FatalConfigurationError(
                f"the node role {role} has an EKS access entry of type {found}, not "
                f"{NODE_ENTRY_TYPE}: its kubelets are not let in as nodes. The type cannot "
                f"change: aws eks delete-access-entry --cluster-name {cluster} "
                f"--principal-arn {role} && {create_entry_command(cluster, role)}"
            )
    if mode in CONFIG_MAP_MODES:
        map_roles = read_aws_auth() if read_aws_auth is not None else None
        if map_roles is None:
            log.warning(
                "could not read kube-system/aws-auth to check that node role %s may join "
                "%s (authentication mode %s); nodes of a role it does not map never register",
                role,
                cluster,
                mode,
            )
            return
        if mapped_in_aws_auth(map_roles, role):
            return
    raise FatalConfigurationError(no_access_message(cluster, role, mode))


def create_entry_command(cluster: str, role: str) -> str:
    return (
        f"aws eks create-access-entry --cluster-name {cluster} --principal-arn {role} "
        f"--type {NODE_ENTRY_TYPE}"
    )


def no_access_message(cluster: str, role: str, mode: str) -> str:
    lead = (
        f"nodes cannot join EKS cluster {cluster}: their IAM role {role} has no "
        f"{NODE_ENTRY_TYPE} access entry"
    )
    aws_auth = (
        f"- rolearn: {without_path(role)}, username: system:node:{{{{EC2PrivateDNSName}}}}, "
        f"groups: [{', '.join(NODE_GROUPS)}]"
    )
    if mode == "CONFIG_MAP":
        return (
            f"nodes cannot join EKS cluster {cluster} (authentication mode CONFIG_MAP): the "
            f"aws-auth ConfigMap in kube-system does not map their IAM role {role}; add to "
            f"its mapRoles `{aws_auth}`, or switch the cluster to access entries (aws eks "
            f"update-cluster-config --name {cluster} --access-config "
            f"authenticationMode=API_AND_CONFIG_MAP) and run "
            f"{create_entry_command(cluster, role)}"
        )
    if mode == "API_AND_CONFIG_MAP":
        lead += " and the aws-auth ConfigMap does not map it"
    return (
        f"{lead} (authentication mode {mode}); EC2 would bill instances that never become "
        f"Nodes. Fix: {create_entry_command(cluster, role)}"
    )
