"""An EC2 and EKS emulator on loopback: moto's server, seeded as an EKS cluster's account
looks, with what moto lacks added the way AWS does it.

Seeded: a VPC with a subnet per zone tagged `kubernetes.io/cluster/<name>=shared`, a
security group tagged `owned`, the node instance profile, the EKS cluster, and one AMI per
node kind published under the public SSM parameters Gibbous reads (EKS-optimized AL2023,
NVIDIA and arm64; Bottlerocket), which moto refuses to let anyone write (they are AWS's).
Requests are parsed by moto as AWS parses them: a misspelt field fails.

What moto does not do and EC2 does: `fail_spot_launches` makes EC2 take spot launches of a
type and then terminate them `after_s` later with `Server.InsufficientInstanceCapacity`,
keeping the terminated instance visible, as EC2 keeps it for about an hour; and
`DescribeSpotPriceHistory` answers with prices per type and zone (moto says $0.00001 for
everything): the catalog's spot price, or 40% of on-demand, a little higher in each
further zone.

Needs moto and flask (the `dev` or `emulator` extra: `.venv/bin/pip install -e '.[emulator]'` in a checkout).
`python -m gibbous.devcluster.aws` serves it with the node agent
(`gibbous.devcluster.aws.agent`) that plays the kubelet for the cluster's instances;
`gibbous dev-cluster up --cloud aws` uses that.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.spot_instances import SpotInstances
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ssm.models import Parameter, ssm_backends
from werkzeug.serving import make_server

from gibbous.catalogs import load_catalog
from gibbous.devcluster.aws.catalogapis import CatalogApiError, CatalogApis
from gibbous.devcluster.aws.frontdoor import SPOT_ROLE, FrontDoor
from gibbous.devcluster.aws.state import (
    ACCOUNT,
    INSTANCE_PROFILE,
    NODE_ROLE,
    ZONES,
    SeededCluster,
)


class FrontedMotoServer(ThreadedMotoServer):
    """moto's threaded server with `FrontDoor` in front of its application."""

    def __init__(self, front: FrontDoor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = front

    def _server_entry(self) -> None:
        self.front.app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address,
            self._port,
            self.front,
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@dataclass
class Ec2Emulator:
    region: str = "us-west-2"
    port: int = 0
    server: Any = None
    failing: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, market) -> s
    spot_prices: dict[str, float] = field(default_factory=dict)  # type -> $/hr in zone a
    # EC2's request token buckets, scaled (0: no throttling); see `frontdoor`.
    throttle_scale: float = 1.0

    def __post_init__(self) -> None:
        self.front = FrontDoor(lambda environ, start: [], throttle_scale=self.throttle_scale)

    @property
    def endpoint(self) -> str:
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> str:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.server = FrontedMotoServer(
            self.front, ip_address="127.0.0.1", port=self.port, verbose=False
        )
        self.server.start()
        # moto's backends are per process: a fresh emulator starts from an empty account.
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30
        ).close()
        for instance_type in load_catalog(None, "aws", self.region):
            self.spot_prices[instance_type.name] = instance_type.spot_price or round(
                instance_type.on_demand_price * 0.4, 4
            )
        self._original_prices = SpotInstances.describe_spot_price_history
        emulator = self

        def describe_spot_price_history(responses: Any) -> ActionResult:
            names = responses._get_param("InstanceTypes", []) or list(emulator.spot_prices)
            stamp = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
            return ActionResult(
                {
                    "SpotPriceHistory": [
                        {
                            "InstanceType": name,
                            "ProductDescription": "Linux/UNIX",
                            "SpotPrice": f"{emulator.spot_prices[name] * (1 + 0.02 * index):.6f}",
                            "AvailabilityZone": f"{emulator.region}{suffix}",
                            "Timestamp": stamp,
                        }
                        for name in names
                        if name in emulator.spot_prices
                        for index, suffix in enumerate(ZONES)
                    ]
                }
            )

        SpotInstances.describe_spot_price_history = describe_spot_price_history  # type: ignore[method-assign, assignment]
        self._serve_catalog_apis()
        return self.endpoint

    def _serve_catalog_apis(self) -> None:
        """DescribeInstanceTypes, DescribeInstanceTypeOfferings and the Price List API from
        the built-in catalog (see `catalogapis`)."""
        apis = self.catalog_apis = CatalogApis(self.region, load_catalog(None, "aws", self.region))
        self._original_catalog = (
            InstanceResponse.describe_instance_types,
            InstanceResponse.describe_instance_type_offerings,
        )

        def answer(call: Callable[[], dict[str, Any]]) -> ActionResult:
            try:
                return ActionResult(call())
            except CatalogApiError as error:
                raise EC2ClientError(error.code, str(error)) from None

        def describe_instance_types(responses: Any) -> ActionResult:
            return answer(
                lambda: apis.describe_instance_types(
                    responses._get_param("InstanceTypes", []) or [],
                    responses._get_param("NextToken"),
                    responses._get_int_param("MaxResults"),
                )
            )

        def describe_instance_type_offerings(responses: Any) -> ActionResult:
            return answer(
                lambda: apis.describe_instance_type_offerings(
                    responses._get_param("LocationType") or "",
                    responses._get_param("NextToken"),
                    responses._get_int_param("MaxResults"),
                )
            )

        InstanceResponse.describe_instance_types = describe_instance_types  # type: ignore[method-assign, assignment]
        InstanceResponse.describe_instance_type_offerings = describe_instance_type_offerings  # type: ignore[method-assign, assignment]
        self.front.pricing = apis.get_products

    def set_on_demand_price(self, instance_type: str, usd: float) -> None:
        """What the Price List API answers for `instance_type` from now on."""
        self.catalog_apis.set_on_demand_price(instance_type, usd)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            SpotInstances.describe_spot_price_history = self._original_prices  # type: ignore[method-assign]
            (
                InstanceResponse.describe_instance_types,  # type: ignore[method-assign]
                InstanceResponse.describe_instance_type_offerings,  # type: ignore[method-assign]
            ) = self._original_catalog

    def client(self, service: str, config: Any = None) -> Any:
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def seed(
        self,
        name: str,
        version: str,
        *,
        authentication_mode: str = "API_AND_CONFIG_MAP",
        node_access: bool = True,
        spot_role: bool = True,
    ) -> SeededCluster:
        """The account as a working EKS cluster has it; `node_access=False` leaves the node
        role without an access entry and `spot_role=False` the account without the spot
        service-linked role, the two set-up steps a new account misses."""
        ec2, eks, iam = self.client("ec2"), self.client("eks"), self.client("iam")
        seeded = SeededCluster(name, self.region, version)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        for index, suffix in enumerate(ZONES):
            zone = f"{self.region}{suffix}"
            subnet = ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{index * 16}.0/20", AvailabilityZone=zone
            )["Subnet"]["SubnetId"]
            ec2.create_tags(
                Resources=[subnet],
                Tags=[{"Key": f"kubernetes.io/cluster/{name}", "Value": "shared"}],
            )
            seeded.subnets[zone] = subnet
        group = ec2.create_security_group(
            GroupName=f"eks-cluster-sg-{name}", Description="nodes", VpcId=vpc
        )["GroupId"]
        ec2.create_tags(
            Resources=[group], Tags=[{"Key": f"kubernetes.io/cluster/{name}", "Value": "owned"}]
        )
        seeded.security_group = group
        role = iam.create_role(RoleName=NODE_ROLE, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        seeded.node_role_arn = role
        iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE)
        iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE, RoleName=NODE_ROLE)
        if spot_role:
            iam.create_role(
                RoleName=SPOT_ROLE,
                Path="/aws-service-role/spot.amazonaws.com/",
                AssumeRolePolicyDocument="{}",
            )
        eks.create_cluster(
            name=name,
            version=version,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
            resourcesVpcConfig={
                "subnetIds": list(seeded.subnets.values()),
                "securityGroupIds": [group],
            },
        )
        self.front.authentication_modes[name] = authentication_mode
        if node_access and authentication_mode != "CONFIG_MAP":
            eks.create_access_entry(clusterName=name, principalArn=role, type="EC2_LINUX")
        base = f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023"
        for path, architecture in (
            (f"{base}/x86_64/standard/recommended/image_id", "x86_64"),
            (f"{base}/arm64/standard/recommended/image_id", "arm64"),
            (f"{base}/x86_64/nvidia/recommended/image_id", "x86_64"),
            (f"{base}/arm64/nvidia/recommended/image_id", "arm64"),
            (f"/aws/service/bottlerocket/aws-k8s-{version}/x86_64/latest/image_id", "x86_64"),
            (f"/aws/service/bottlerocket/aws-k8s-{version}/arm64/latest/image_id", "arm64"),
            (
                f"/aws/service/bottlerocket/aws-k8s-{version}-nvidia/x86_64/latest/image_id",
                "x86_64",
            ),
        ):
            image = ec2.register_image(
                Name=path.strip("/").replace("/", "-"),
                Architecture=architecture,
                RootDeviceName="/dev/xvda",
            )["ImageId"]
            self._publish_parameter(path, image)
            seeded.images[path] = image
        return seeded

    def _publish_parameter(self, path: str, value: str) -> None:
        """A public parameter, as AWS publishes it (PutParameter refuses /aws/ names)."""
        backend = ssm_backends[ACCOUNT][self.region]
        backend._parameters[path].append(
            Parameter(  # type: ignore[abstract]
                account_id=ACCOUNT,
                name=path,
                value=value,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.datetime.now(datetime.UTC),
                version=1,
                data_type="aws:ec2:image",
            )
        )

    # --- what EC2 does that moto does not ---------------------------------------------------

    def fail_spot_launches(self, instance_type: str, after_s: float = 3.0) -> None:
        """Spot launches of `instance_type` are accepted, then terminated `after_s` later
        with Server.InsufficientInstanceCapacity."""
        self.failing[(instance_type, "spot")] = after_s

    def advance(self) -> None:
        """Apply what EC2 would have done by now (call it periodically)."""
        if not self.failing:
            return
        now = datetime.datetime.now(datetime.UTC)
        backend = ec2_backends[ACCOUNT][self.region]
        for instance in backend.all_instances():
            after = self.failing.get((instance.instance_type, instance.lifecycle or "on-demand"))
            if after is None or instance._state.name != "running":
                continue
            launched = instance.launch_time
            if launched.tzinfo is None:
                launched = launched.replace(tzinfo=datetime.UTC)
            if (now - launched).total_seconds() >= after:
                instance.terminate()
                instance.state_reason = StateReason(
                    "Server.InsufficientInstanceCapacity: Server.InsufficientInstanceCapacity",
                    "Server.InsufficientInstanceCapacity",
                )

    def run(self, stopped: threading.Event, period_s: float = 0.5) -> None:
        while not stopped.is_set():
            try:
                self.advance()
            except Exception:
                logging.getLogger("gibbous.ec2emulator").exception("emulator step failed")
            stopped.wait(period_s)
