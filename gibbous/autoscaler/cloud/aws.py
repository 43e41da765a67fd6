"""AWS EC2 provider (boto3).

Every launch carries user data rendered for its node (`gibbous.core.settings.userdata`), so the
kubelet registers with Gibbous's labels, taints and max-pods. Without a launch template the
call carries everything else too: the AMI for the type's architecture and GPU, a subnet of
the zone, the security groups, the instance profile, the block devices and IMDSv2; with one,
Gibbous overrides only what it must (type, market, subnet, user data, tags) and what the
operator configured. Spot goes through `InstanceMarketOptions`; tags let a restarted
autoscaler find every instance it owns; EC2's `ClientToken` makes `create` idempotent. EC2
error codes become the typed failures of `base`, and a launch EC2 terminates after
accepting it (spot capacity) comes back from `get` with the reason.
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import datetime
import hashlib
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gibbous.autoscaler.cloud.awscatalog import AwsCatalogFeed
from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    Instance,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.eks import (
    NodeImages,
    call,
    describe_cluster,
    node_images,
    security_groups,
    subnets_by_zone,
)
from gibbous.autoscaler.cloud.eksaccess import AwsAuthReader, check_node_access
from gibbous.autoscaler.cloud.spotadvisor import SpotAdvisorFeed
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.spotprices import (
    AdvisorEntry,
    parse_spot_advisor,
    with_live_spot_prices,
    with_spot_advisor,
)
from gibbous.core.settings.config import Config
from gibbous.core.settings.options.aws import AwsConfig
from gibbous.core.settings.userdata import (
    ClusterInfo,
    NodeBootstrap,
    UserDataType,
    render_user_data,
)

log = logging.getLogger("gibbous.autoscaler.aws")

# How long live spot prices are used before they are asked for again.
SPOT_PRICES_TTL_S = 600.0
CLUSTER_TAG = "gibbous.dev/cluster-id"
TOKEN_TAG = "gibbous.dev/launch-token"

CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientCapacityOnOutpost",
        "InsufficientFreeAddressesInSubnet",
        "UnfulfillableCapacity",
        "SpotMaxPriceTooLow",
        "Unsupported",  # the type is not offered in that zone
    }
)
QUOTA_CODES = frozenset(
    {"InstanceLimitExceeded", "MaxSpotInstanceCountExceeded", "VcpuLimitExceeded"}
)
# Spot launches need the AWSServiceRoleForEC2Spot service-linked role; EC2 creates it on
# the first spot launch only when the caller may iam:CreateServiceLinkedRole.
SPOT_ROLE_CODE = "AuthFailure.ServiceLinkedRoleCreationNotPermitted"
THROTTLE_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
FATAL_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidSubnetID.NotFound",
        "OptInRequired",
    }
)
# Why EC2 terminated an instance it had accepted (StateReason.Code): for a launch still in
# flight, a failure of that (type, category, zone), as FailureKind spells it.
FAILED_LAUNCH_REASONS = {
    "Server.InsufficientInstanceCapacity": "insufficient-capacity",
    "Server.SpotInstanceTermination": "insufficient-capacity",
    "Server.InternalError": "insufficient-capacity",
    "Client.VolumeLimitExceeded": "quota",
}
STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "shutting-down": InstanceState.TERMINATING,
    "stopping": InstanceState.TERMINATING,
    "terminated": InstanceState.TERMINATED,
    "stopped": InstanceState.TERMINATED,
}


# The root device of the EKS optimized AL2023 AMIs, and Karpenter's default mapping for them
# (EC2NodeClass blockDeviceMappings: /dev/xvda, gp3, encrypted).
ROOT_DEVICE = "/dev/xvda"


def root_volume_sized(
    configured: tuple[Mapping[str, Any], ...], disk_gib: int
) -> builtins.list[dict[str, Any]]:
    """The BlockDeviceMappings of a launch: the configured ones, with the first EBS volume
    (the root, as Luna's and Karpenter's lists put it) grown to `disk_gib` when the node's
    pods need a larger one; without a configured list, the AMI's root device at that size."""
    mappings = [dict(m) for m in configured]
    if not disk_gib:
        return mappings
    for mapping in mappings:
        ebs = mapping.get("Ebs")
        if isinstance(ebs, Mapping):
            mapping["Ebs"] = {**ebs, "VolumeSize": disk_gib}
            return mappings
    return [
        *mappings,
        {
            "DeviceName": ROOT_DEVICE,
            "Ebs": {
                "VolumeSize": disk_gib,
                "VolumeType": "gp3",
                "Encrypted": True,
                "DeleteOnTermination": True,
            },
        },
    ]


def classify_error(
    error: ClientError, request: LaunchRequest | None = None, zone: str = ""
) -> CloudError:
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", "")) or code
    instance_type = request.instance_type if request else ""
    category = request.category if request else ""
    if code in CAPACITY_CODES:
        return InsufficientCapacityError(instance_type, category, zone, f"{code}: {message}")
    if code in QUOTA_CODES:
        return QuotaExceededError(instance_type, category, f"{code}: {message}")
    if code in THROTTLE_CODES:
        return ThrottledError(1.0, f"{code}: {message}")
    if code == SPOT_ROLE_CODE:
        return FatalConfigurationError(
            f"{code}: spot launches need the AWSServiceRoleForEC2Spot service-linked role, "
            "which Gibbous's role may not create; create it once: aws iam "
            "create-service-linked-role --aws-service-name spot.amazonaws.com "
            f"(or grant iam:CreateServiceLinkedRole for spot.amazonaws.com); {message}"
        )
    if code in ("UnauthorizedOperation", "AuthFailure"):
        return FatalConfigurationError(
            f"ec2:RunInstances (or the iam:PassRole it needs) was refused ({code}): {message}"
        )
    if code in FATAL_CODES:
        return FatalConfigurationError(f"{code}: {message}")
    # InvalidParameterValue, InvalidParameterCombination and the rest: this request was
    # wrong (a type without the zone's feature, a too-large volume), not the provider's
    # set-up; the launch fails and its pair backs off, other launches go on.
    return CloudError(f"{code}: {message}")


@dataclass
class AwsCloudProvider:
    ec2: Any  # a boto3 EC2 client
    catalog: builtins.list[InstanceType]
    clock: Callable[[], float]
    launch_template: str = ""  # name or lt-... id; empty: everything from the call
    subnets_by_zone: dict[str, builtins.list[str]] = field(default_factory=dict)
    launch_template_version: str = "$Default"
    config: AwsConfig = field(default_factory=AwsConfig)
    cluster: ClusterInfo = field(default_factory=lambda: ClusterInfo(""))
    images: NodeImages = field(default_factory=NodeImages)
    security_groups: tuple[str, ...] = ()
    # The operator's user data: aws.userData, else the launch template's (kept, never lost
    # to the per-launch UserData that replaces it).
    operator_user_data: str = ""
    # Spot Instance Advisor entries by type (aws.useSpotAdvisor with aws.spotAdvisorFile),
    # else the advisor's data fetched from aws.spotAdvisorUrl; neither: live prices.
    advisor: dict[str, AdvisorEntry] | None = None
    advisor_feed: SpotAdvisorFeed | None = None
    # The catalog from AWS's APIs (see `awscatalog`), followed as it is refreshed; None:
    # `catalog` as given (--catalog FILE).
    catalog_feed: AwsCatalogFeed | None = None
    name: str = "aws"
    launch_concurrency: int = 8  # boto3 clients are thread-safe
    cloud_label_keys: frozenset[str] = frozenset()
    late_label_keys: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.types = {t.name: t for t in self.catalog}
        self.rotation = itertools.count()
        self.priced: builtins.list[InstanceType] = builtins.list(self.catalog)
        self.priced_at = -float("inf")
        self.catalog_version = 0  # the feed's version `catalog` is (discover sets it)

    def instance_types(self) -> builtins.list[InstanceType]:
        """The catalog with AWS's spot prices: the advisor's, or live ones refreshed every
        SPOT_PRICES_TTL_S (a failed refresh keeps the last prices, or the estimate)."""
        if self.catalog_feed is not None:
            self._follow_catalog(self.catalog_feed)
        advisor = self.advisor
        if advisor is None and self.advisor_feed is not None:
            advisor = self.advisor_feed.current()  # None until a fetch succeeds: live prices
        if advisor is not None:
            return with_spot_advisor(
                self.catalog,
                advisor,
                max_bucket=self.config.max_spot_interrupt_bucket,
                max_ratio=self.config.max_spot_price_ratio,
            )
        now = self.clock()
        if now - self.priced_at >= SPOT_PRICES_TTL_S:
            try:
                self.priced = with_live_spot_prices(self.catalog, self._spot_prices(now))
                self.priced_at = now
            except (ClientError, BotoCoreError) as error:
                log.warning("spot prices not refreshed (%s); keeping the last ones", error)
                self.priced_at = now - SPOT_PRICES_TTL_S + 60  # try again in a minute
        return builtins.list(self.priced)

    def _follow_catalog(self, feed: AwsCatalogFeed) -> None:
        """Take the feed's catalog when it changed, as this cluster can launch it."""
        version, types = feed.current()
        if version == self.catalog_version:
            return
        self.catalog_version = version
        usable = offered_in(
            types if self.launch_template else with_images(types, self.images),
            self.subnets_by_zone,
        )
        if not usable:
            log.warning("the refreshed AWS catalog has no type this cluster can launch; ignored")
            return
        self.catalog = usable
        self.types = {t.name: t for t in usable}
        self.priced = builtins.list(usable)
        self.priced_at = -float("inf")  # spot prices for the new list, at once

    def _spot_prices(self, now: float) -> dict[tuple[str, str], float]:
        paginator = self.ec2.get_paginator("describe_spot_price_history")
        latest: dict[tuple[str, str], tuple[float, float]] = {}  # (type, zone) -> (when, $)
        names = sorted(self.types)
        for start in range(0, len(names), 100):
            pages = paginator.paginate(
                InstanceTypes=names[start : start + 100],
                ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                StartTime=datetime.datetime.fromtimestamp(now, datetime.UTC),
            )
            for page in pages:
                for entry in page.get("SpotPriceHistory", []):
                    key = (entry["InstanceType"], entry["AvailabilityZone"])
                    stamp = entry.get("Timestamp")
                    when = stamp.timestamp() if isinstance(stamp, datetime.datetime) else 0.0
                    if key not in latest or when >= latest[key][0]:
                        latest[key] = (when, float(entry["SpotPrice"]))
        return {key: price for key, (_, price) in latest.items()}

    def _template(self) -> dict[str, str]:
        key = "LaunchTemplateId" if self.launch_template.startswith("lt-") else "LaunchTemplateName"
        return {key: self.launch_template, "Version": self.launch_template_version}

    def _node_settings(self, request: LaunchRequest) -> dict[str, Any]:
        """What RunInstances needs beyond the type, market and zone: the user data always
        (unless `None`), and without a template the image, groups, profile and devices."""
        settings: dict[str, Any] = {}
        kind = self.config.effective_user_data_type
        instance_type = self.types.get(request.instance_type)
        if kind is not UserDataType.NONE or not self.launch_template:
            text = render_user_data(
                kind,
                self.operator_user_data or self.config.user_data,
                self.cluster,
                NodeBootstrap(
                    request.labels,
                    tuple(request.taints),
                    max_pods=(instance_type.max_pods or 0) if instance_type else 0,
                ),
            )
            if text:
                # As text: boto3 base64-encodes RunInstances' UserData itself (encoding it
                # here too would hand the node base64 instead of its bootstrap).
                settings["UserData"] = text
        arch = instance_type.arch if instance_type else "amd64"
        gpu = bool(instance_type and instance_type.gpu_count)
        if not self.launch_template:
            settings["ImageId"] = self.images.for_instance(arch, gpu)
            settings["MetadataOptions"] = {
                "HttpTokens": "required",
                "HttpEndpoint": "enabled",
                "HttpPutResponseHopLimit": 2,
            }
        elif self.images.by_kind:
            image = self.images.by_kind.get((arch, gpu))
            if image:
                settings["ImageId"] = image
        if self.security_groups:
            settings["SecurityGroupIds"] = builtins.list(self.security_groups)
        if self.config.node_instance_profile:
            settings["IamInstanceProfile"] = {"Name": self.config.node_instance_profile}
        mappings = root_volume_sized(self.config.block_device_mappings, request.disk_gib)
        if mappings:
            settings["BlockDeviceMappings"] = mappings
        return settings

    def _subnet(self, zone: str) -> str:
        """A subnet of `zone`, taking the zone's subnets in turn."""
        subnets = self.subnets_by_zone.get(zone) or []
        return subnets[next(self.rotation) % len(subnets)] if subnets else ""

    def create(self, request: LaunchRequest) -> Instance:
        # Idempotency twice over: an instance already tagged with this token is returned,
        # and EC2's ClientToken covers a crash between launch and tagging becoming visible.
        existing = self._by_token(request.cluster_id, request.token)
        if existing is not None:
            return existing
        zones = builtins.list(request.zones) or builtins.list(self.subnets_by_zone) or [""]
        last: CloudError | None = None
        settings = self._node_settings(request)
        tags = [
            {"Key": CLUSTER_TAG, "Value": request.cluster_id},
            {"Key": TOKEN_TAG, "Value": request.token},
            {"Key": "Name", "Value": f"gibbous-{request.token[-12:]}"},
            *({"Key": k, "Value": v} for k, v in sorted(request.labels.items())[:40]),
        ]
        if self.cluster.name:
            tags.append({"Key": f"kubernetes.io/cluster/{self.cluster.name}", "Value": "owned"})
        for zone in zones:
            arguments: dict[str, Any] = {
                **settings,
                "InstanceType": request.instance_type,
                "MinCount": 1,
                "MaxCount": 1,
                # EC2 idempotency: the same token within 24 h returns the same instance.
                "ClientToken": client_token(request.token, zone),
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags[:3]},
                ],
            }
            if self.launch_template:
                arguments["LaunchTemplate"] = self._template()
            if zone:
                subnet = self._subnet(zone)
                if subnet:
                    arguments["SubnetId"] = subnet
                else:
                    arguments["Placement"] = {"AvailabilityZone": zone}
            if request.category == "spot":
                arguments["InstanceMarketOptions"] = {
                    "MarketType": "spot",
                    "SpotOptions": {
                        "SpotInstanceType": "one-time",
                        "InstanceInterruptionBehavior": "terminate",
                    },
                }
            try:
                reply = self.ec2.run_instances(**arguments)
            except ClientError as error:
                last = classify_error(error, request, zone)
                if isinstance(last, InsufficientCapacityError):
                    continue  # try the next allowed zone
                raise last from None
            return self._instance(reply["Instances"][0])
        raise last or InsufficientCapacityError(request.instance_type, request.category)

    def delete(self, instance_id: str) -> None:
        current = self.get(instance_id)  # raises InstanceNotFoundError when already gone
        if current.state is InstanceState.TERMINATED:
            raise InstanceNotFoundError(instance_id)
        try:
            self.ec2.terminate_instances(InstanceIds=[instance_id])
        except ClientError as error:
            raise self._not_found_or(error, instance_id) from None

    def get(self, instance_id: str) -> Instance:
        try:
            reply = self.ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as error:
            raise self._not_found_or(error, instance_id) from None
        found = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
        if not found:
            raise InstanceNotFoundError(instance_id)
        return self._instance(found[0])

    def close(self) -> None:
        self.ec2.close()

    def list(self, cluster_id: str) -> builtins.list[Instance]:
        paginator = self.ec2.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_id]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "shutting-down", "stopping"],
            },
        ]
        out: builtins.list[Instance] = []
        try:
            for page in paginator.paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    out.extend(self._instance(i) for i in reservation.get("Instances", []))
        except ClientError as error:
            raise classify_error(error) from None
        return out

    def _by_token(self, cluster_id: str, token: str) -> Instance | None:
        try:
            reply = self.ec2.describe_instances(
                Filters=[
                    {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_id]},
                    {"Name": f"tag:{TOKEN_TAG}", "Values": [token]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]},
                ]
            )
        except ClientError as error:  # RequestLimitExceeded: a throttled launch, retried
            raise classify_error(error) from None
        found = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
        return self._instance(found[0]) if found else None

    @staticmethod
    def _not_found_or(error: ClientError, instance_id: str) -> CloudError:
        if str(error.response.get("Error", {}).get("Code", "")).startswith("InvalidInstanceID"):
            return InstanceNotFoundError(instance_id)
        return classify_error(error)

    def _instance(self, raw: dict[str, Any]) -> Instance:
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
        launched = raw.get("LaunchTime")
        state = STATES.get(raw.get("State", {}).get("Name", ""), InstanceState.PENDING)
        reason = raw.get("StateReason") or {}
        failure = (
            FAILED_LAUNCH_REASONS.get(str(reason.get("Code", "")), "")
            if state is InstanceState.TERMINATED
            else ""
        )
        return Instance(
            id=raw["InstanceId"],
            token=tags.get(TOKEN_TAG, ""),
            cluster_id=tags.get(CLUSTER_TAG, ""),
            instance_type=raw.get("InstanceType", ""),
            category="spot" if raw.get("InstanceLifecycle") == "spot" else "on-demand",
            zone=raw.get("Placement", {}).get("AvailabilityZone", ""),
            state=state,
            failure_kind=failure,
            failure_reason=_reason_text(reason) if failure else "",
            created_at=launched.timestamp()
            if isinstance(launched, datetime.datetime)
            else self.clock(),
            node_name=raw.get("PrivateDnsName", ""),
            labels={
                k: v
                for k, v in tags.items()
                if k not in (CLUSTER_TAG, TOKEN_TAG, "Name")
                and not k.startswith("kubernetes.io/cluster/")
            },
        )


def client_token(token: str, zone: str) -> str:
    """RunInstances' ClientToken for a launch in a zone: a digest, since EC2 takes at most
    64 ASCII characters and a cut token would make launches of long cluster IDs, or one
    launch's zones, share one."""
    return hashlib.sha256(f"{token}\0{zone}".encode()).hexdigest()


def with_images(
    catalog: builtins.list[InstanceType], images: NodeImages
) -> builtins.list[InstanceType]:
    """The types this cluster has a node image for (a GPU type needs a GPU image)."""
    out = []
    for instance_type in catalog:
        kind = (instance_type.arch, bool(instance_type.gpu_count))
        if kind in images.by_kind:
            out.append(instance_type)
    missing = sorted({(t.arch, bool(t.gpu_count)) for t in catalog} - set(images.by_kind))
    if missing:
        log.warning("no node image for %s: those instance types are not launched", missing)
    return out


def offered_in(
    catalog: builtins.list[InstanceType], subnets: dict[str, builtins.list[str]]
) -> builtins.list[InstanceType]:
    """The catalog as this cluster can launch it: each type's zones narrowed to those with a
    subnet for nodes (elsewhere EC2 would pick a subnet of another VPC), types offered in no
    such zone left out."""
    zones = tuple(sorted(subnets))
    out = []
    for instance_type in catalog:
        usable = (
            tuple(z for z in instance_type.zones if z in subnets) if instance_type.zones else zones
        )
        if usable:
            out.append(dataclasses.replace(instance_type, zones=usable))
    return out


def _reason_text(reason: dict[str, Any]) -> str:
    """EC2's StateReason: its Message already starts with the Code."""
    code, message = str(reason.get("Code", "")), str(reason.get("Message", ""))
    return message if message.startswith(code) else f"{code}: {message}"


def discover(
    *,
    ec2: Any,
    eks: Any,
    ssm: Any,
    iam: Any,
    config: Config,
    catalog: builtins.list[InstanceType],
    clock: Callable[[], float],
    launch_template: str = "",
    subnet_overrides: dict[str, str] | None = None,
    spot_advisor: object = None,
    read_aws_auth: AwsAuthReader | None = None,
    spot_advisor_feed: SpotAdvisorFeed | None = None,
    catalog_feed: AwsCatalogFeed | None = None,
) -> AwsCloudProvider:
    """The provider for this cluster, with everything found once at start (see `eks`).

    On EKS the cluster is described; elsewhere (RKE2 on EC2, Luna's P07) the user data must
    be a Template or None, and subnets and security groups must be configured.
    `spot_advisor` is the parsed JSON of aws.spotAdvisorFile (read by the caller), else
    `spot_advisor_feed` fetches the advisor's data (aws.spotAdvisorUrl);
    `read_aws_auth` reads kube-system/aws-auth's mapRoles (see `eksaccess`)."""
    aws = config.aws
    name = aws.cluster_name or config.cluster_id
    kind = aws.effective_user_data_type
    try:
        cluster, version, cluster_group, mode = describe_cluster(eks, name)
        eks_cluster = True
    except FatalConfigurationError as error:
        if kind not in (UserDataType.TEMPLATE, UserDataType.NONE) or "ResourceNotFound" not in str(
            error
        ):
            raise
        log.info("%s is not an EKS cluster; nodes join through the user data alone", name)
        cluster, version, cluster_group, mode = ClusterInfo(name), "", "", ""
        eks_cluster = False
    subnets = subnets_by_zone(ec2, aws, name)
    for zone, subnet in (subnet_overrides or {}).items():
        subnets[zone] = [subnet]
    operator = aws.user_data
    profile = aws.node_instance_profile
    if launch_template and (not operator or not profile):
        key = "LaunchTemplateId" if launch_template.startswith("lt-") else "LaunchTemplateName"
        reply = call(
            "ec2:DescribeLaunchTemplateVersions",
            ec2.describe_launch_template_versions,
            **{key: launch_template},
            Versions=["$Default"],
        )
        versions = reply.get("LaunchTemplateVersions") or [{}]
        data = versions[0].get("LaunchTemplateData") or {}
        encoded = data.get("UserData") or ""
        if not operator:
            operator = base64.b64decode(encoded).decode() if encoded else ""
        template_profile = data.get("IamInstanceProfile") or {}
        profile = profile or str(template_profile.get("Arn") or template_profile.get("Name") or "")
    if eks_cluster and profile:
        check_node_access(
            eks=eks,
            iam=iam,
            cluster=name,
            profile=profile,
            mode=mode,
            read_aws_auth=read_aws_auth,
        )
    elif eks_cluster:
        log.warning("the launch template names no instance profile: node access not checked")
    images = node_images(None if launch_template else ssm, aws, version)
    catalog_version = 0
    if catalog_feed is not None:
        catalog_version, catalog = catalog_feed.current()
    usable = offered_in(catalog if launch_template else with_images(catalog, images), subnets)
    provider = AwsCloudProvider(
        ec2=ec2,
        catalog=usable,
        clock=clock,
        launch_template=launch_template,
        subnets_by_zone=subnets,
        config=aws,
        cluster=cluster,
        images=images,
        security_groups=security_groups(ec2, aws, name, cluster_group)
        if not launch_template or aws.security_groups
        else (),
        operator_user_data=operator,
        advisor=parse_spot_advisor(spot_advisor, config.effective_region)
        if aws.use_spot_advisor and spot_advisor is not None
        else None,
        advisor_feed=spot_advisor_feed if aws.use_spot_advisor else None,
        catalog_feed=catalog_feed,
    )
    provider.catalog_version = catalog_version
    return provider
