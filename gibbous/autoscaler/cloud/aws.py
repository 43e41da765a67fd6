"""AWS EC2 provider (boto3).

Nodes are launched from the user's launch template (bootstrap user data stays the user's),
with the instance type set per launch, spot through `InstanceMarketOptions`, the zone
through the template's network settings or `Placement`, and tags that let a restarted
autoscaler find every instance it owns. EC2's `ClientToken` makes `create` idempotent.
EC2 error codes become the typed failures of `base`.
"""

from __future__ import annotations

import builtins
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

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
from gibbous.core.catalog import InstanceType

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
THROTTLE_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
FATAL_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidSubnetID.NotFound",
        "InvalidParameterValue",
        "InvalidParameterCombination",
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
    if code in FATAL_CODES:
        return FatalConfigurationError(f"{code}: {message}")
    return CloudError(f"{code}: {message}")


@dataclass
class AwsCloudProvider:
    ec2: Any  # a boto3 EC2 client
    catalog: builtins.list[InstanceType]
    launch_template: str  # name or lt-... id
    clock: Callable[[], float]
    subnets_by_zone: dict[str, str] = field(default_factory=dict)
    launch_template_version: str = "$Default"
    name: str = "aws"

    def instance_types(self) -> builtins.list[InstanceType]:
        return builtins.list(self.catalog)

    def _template(self) -> dict[str, str]:
        key = "LaunchTemplateId" if self.launch_template.startswith("lt-") else "LaunchTemplateName"
        return {key: self.launch_template, "Version": self.launch_template_version}

    def create(self, request: LaunchRequest) -> Instance:
        # Idempotency twice over: an instance already tagged with this token is returned,
        # and EC2's ClientToken covers a crash between launch and tagging becoming visible.
        existing = self._by_token(request.cluster_id, request.token)
        if existing is not None:
            return existing
        zones = builtins.list(request.zones) or [""]
        last: CloudError | None = None
        for zone in zones:
            arguments: dict[str, Any] = {
                "LaunchTemplate": self._template(),
                "InstanceType": request.instance_type,
                "MinCount": 1,
                "MaxCount": 1,
                # EC2 idempotency: the same token within 24 h returns the same instance.
                "ClientToken": f"{request.token}-{zone}"[:64],
                "TagSpecifications": [
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": CLUSTER_TAG, "Value": request.cluster_id},
                            {"Key": TOKEN_TAG, "Value": request.token},
                            {"Key": "Name", "Value": f"gibbous-{request.token[-12:]}"},
                            *(
                                {"Key": k, "Value": v}
                                for k, v in sorted(request.labels.items())[:40]
                            ),
                        ],
                    }
                ],
            }
            if zone:
                if zone in self.subnets_by_zone:
                    arguments["SubnetId"] = self.subnets_by_zone[zone]
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
        for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                out.extend(self._instance(i) for i in reservation.get("Instances", []))
        return out

    def _by_token(self, cluster_id: str, token: str) -> Instance | None:
        reply = self.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_id]},
                {"Name": f"tag:{TOKEN_TAG}", "Values": [token]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
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
            failure_reason=f"{reason.get('Code')}: {reason.get('Message', '')}" if failure else "",
            created_at=launched.timestamp()
            if isinstance(launched, datetime.datetime)
            else self.clock(),
            node_name=raw.get("PrivateDnsName", ""),
            labels={k: v for k, v in tags.items() if k not in (CLUSTER_TAG, TOKEN_TAG, "Name")},
        )
