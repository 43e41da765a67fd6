"""The node agent of the EC2/EKS emulator: for every running instance of one cluster, the
Node EKS's node bootstrap and kubelet would register, and nothing more.

It reads the instances as anything outside EC2 does, through EC2's API (a boto3 client
pointed at the emulator): moto holds the cloud's state, so the agent imports nothing of the
emulator. Each running instance gets a Node once it has booted: named by its private DNS
name, with `spec.providerID` `aws:///<zone>/<id>`, the labels and taints its user data
gives the kubelet (`gibbous.devcluster.bootstrap`, read as the real bootstrap reads it),
the kubelet's own labels (hostname, os, arch), the cloud's (instance type, zone, region),
and capacity and allocatable from the instance type with EKS's reservation formula.
Nothing else labels the node: wrong user data makes a bare node. `KubeletFleet` keeps the
Node alive and removes it when the instance terminates.

A kubelet authenticates as its instance profile's IAM role, and EKS lets it in only when
that role has an `EC2_LINUX` access entry (authentication modes API, API_AND_CONFIG_MAP)
or an `aws-auth` mapRoles entry in the `system:nodes` group (CONFIG_MAP,
API_AND_CONFIG_MAP): an instance without either runs and never registers, as on EKS.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.bootstrap import read_bootstrap
from gibbous.devcluster.kubeletfleet import KubeletFleet

log = logging.getLogger("gibbous.nodeagent")

MiB = 2**20
_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def eks_allocatable(
    instance_type: InstanceType, max_pods: int, gpus: int, disk_gib: int = 20
) -> dict[str, str]:
    """Capacity minus what an EKS-optimized AMI reserves: kube-reserved CPU 6% of the first
    core, 1% of the second, 0.5% of the next two, 0.25% of the rest; memory 255 MiB + 11 MiB
    per pod; 100 MiB hard eviction threshold; of the root volume, kube-reserved
    ephemeral-storage 1Gi and the kubelet's `nodefs.available<10%` eviction threshold."""
    cores = instance_type.vcpu
    reserved = 1000 * (
        0.06 * min(cores, 1)
        + 0.01 * min(max(cores - 1, 0), 1)
        + 0.005 * min(max(cores - 2, 0), 2)
        + 0.0025 * max(cores - 4, 0)
    )
    memory = instance_type.memory_bytes - (255 + 11 * max_pods + 100) * MiB
    out = {
        "cpu": f"{int(cores * 1000 - reserved)}m",
        "memory": str(memory),
        "pods": str(max_pods),
        "ephemeral-storage": str(disk_gib * 2**30 - disk_gib * 2**30 // 10 - 2**30),
    }
    if gpus:
        out[keys.NVIDIA_GPU] = str(gpus)
    return out


@dataclass
class NodeAgent(KubeletFleet):
    ec2: Any = None  # a boto3 EC2 client pointed at the emulator
    catalog: list[InstanceType] = field(default_factory=list)
    cluster_name: str = ""
    region: str = ""
    boot_s: float = 60.0  # realistic (docs/clouds); the CLI and tests set a scaled one
    gpu_time_slices: int = 1
    eks: Any = None  # boto3 EKS and IAM clients: who may join is the cluster's to say
    iam: Any = None
    access_ttl_s: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.types = {t.name: t for t in self.catalog}
        self.access: dict[str, tuple[float, bool]] = {}  # profile ARN -> (when, may join)
        self.refused: set[str] = set()

    def may_join(self, instance: Mapping[str, Any]) -> bool:
        """Whether EKS would authenticate this instance's kubelet as a node."""
        profile = str((instance.get("IamInstanceProfile") or {}).get("Arn") or "")
        if not profile:
            return False  # no credentials at all: the kubelet cannot authenticate
        now = time.monotonic()
        cached = self.access.get(profile)
        if cached is not None and now - cached[0] < self.access_ttl_s:
            return cached[1]
        allowed = self._role_has_access(profile.rsplit("/", 1)[-1])
        self.access[profile] = (now, allowed)
        return allowed

    def _role_has_access(self, profile_name: str) -> bool:
        roles = self.iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"][
            "Roles"
        ]
        if not roles:
            return False
        role = str(roles[0]["Arn"])
        cluster = self.eks.describe_cluster(name=self.cluster_name)["cluster"]
        mode = str((cluster.get("accessConfig") or {}).get("authenticationMode") or "CONFIG_MAP")
        if mode in ("API", "API_AND_CONFIG_MAP"):
            try:
                entry = self.eks.describe_access_entry(
                    clusterName=self.cluster_name, principalArn=role
                )["accessEntry"]
                if entry.get("type") == "EC2_LINUX":
                    return True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
        if mode in ("CONFIG_MAP", "API_AND_CONFIG_MAP"):
            return self._mapped_in_aws_auth(role)
        return False

    def _mapped_in_aws_auth(self, role: str) -> bool:
        try:
            found = self.core.read_namespaced_config_map("aws-auth", "kube-system")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        entries = yaml.safe_load((found.data or {}).get("mapRoles") or "") or []
        # aws-auth ARNs carry no path: a role under a path is matched by its bare ARN.
        head, _, rest = role.partition(":role/")
        bare = f"{head}:role/{rest.rsplit('/', 1)[-1]}"
        return any(
            isinstance(e, dict)
            and e.get("rolearn") == bare
            and "system:nodes" in (e.get("groups") or [])
            for e in entries
        )

    def _instances(self) -> list[dict[str, Any]]:
        reply = self.ec2.describe_instances(
            Filters=[
                {
                    "Name": f"tag:kubernetes.io/cluster/{self.cluster_name}",
                    "Values": ["owned", "shared"],
                }
            ]
        )
        return [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]

    def step(self) -> None:
        now = self.clock()
        running = {}
        for instance in self._instances():
            state = instance.get("State", {}).get("Name")
            if state == "running":
                running[instance["InstanceId"]] = instance
        self.forget_gone(running)
        for instance_id, instance in running.items():
            if instance_id in self.registered:
                continue
            launched = instance.get("LaunchTime")
            age = now - launched.timestamp() if launched is not None else self.boot_s
            if age < self.boot_s:
                continue
            if self.eks is not None and not self.may_join(instance):
                if instance_id not in self.refused:
                    self.refused.add(instance_id)
                    log.warning(
                        "instance %s: its IAM role has no access to cluster %s; its kubelet "
                        "is refused (Unauthorized) and it never registers",
                        instance_id,
                        self.cluster_name,
                    )
                continue
            self._register(instance, now)
        self.heartbeats(now)

    def _root_volume_gib(self, instance: Mapping[str, Any]) -> int:
        """The size of the instance's root EBS volume (its RootDeviceName's mapping), which
        the kubelet's filesystem is on; 20 GiB when EC2 does not say."""
        root = instance.get("RootDeviceName")
        mappings = instance.get("BlockDeviceMappings") or []
        chosen = [m for m in mappings if m.get("DeviceName") == root] or mappings[:1]
        volume = (chosen[0].get("Ebs") or {}).get("VolumeId") if chosen else None
        if not volume:
            return 20
        volumes = self.ec2.describe_volumes(VolumeIds=[volume]).get("Volumes") or []
        return int(volumes[0].get("Size") or 20) if volumes else 20

    def _register(self, instance: Mapping[str, Any], now: float) -> None:
        instance_id = instance["InstanceId"]
        name = str(instance.get("PrivateDnsName") or instance_id)
        raw = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = (raw.get("UserData") or {}).get("Value") or ""
        registration = read_bootstrap(base64.b64decode(encoded).decode() if encoded else "")
        instance_type = self.types.get(instance.get("InstanceType", ""))
        if instance_type is None:
            log.warning("instance %s has a type outside the catalog; not registered", instance_id)
            return
        zone = instance.get("Placement", {}).get("AvailabilityZone", "")
        arch = _ARCH.get(str(instance.get("Architecture", "x86_64")), "amd64")
        max_pods = registration.max_pods or instance_type.max_pods or 110
        gpus = instance_type.gpu_count * self.gpu_time_slices
        disk_gib = self._root_volume_gib(instance)
        capacity = {
            "cpu": f"{round(instance_type.vcpu * 1000)}m",
            "memory": str(instance_type.memory_bytes),
            "pods": str(max_pods),
            "ephemeral-storage": str(disk_gib * 2**30),
        }
        if gpus:
            capacity[keys.NVIDIA_GPU] = str(gpus)
        labels = {
            **registration.labels,
            # the kubelet's own
            keys.HOSTNAME: name,
            "kubernetes.io/os": "linux",
            keys.ARCH: arch,
            # the cloud controller manager's
            keys.INSTANCE_TYPE: instance_type.name,
            keys.ZONE: zone,
            "topology.kubernetes.io/region": self.region,
        }
        self.register(
            instance_id,
            name,
            labels=labels,
            taints=list(registration.taints),
            provider_id=f"aws:///{zone}/{instance_id}",
            capacity=capacity,
            allocatable=eks_allocatable(instance_type, max_pods, gpus, disk_gib),
            arch=arch,
            now=now,
        )
        log.info(
            "registered %s for %s from %s user data (%d labels, %d taints)",
            name,
            instance_id,
            registration.source,
            len(registration.labels),
            len(registration.taints),
        )
