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
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.bootstrap import read_bootstrap
from gibbous.devcluster.kubeletfleet import KubeletFleet

log = logging.getLogger("gibbous.nodeagent")

MiB = 2**20
_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def eks_allocatable(instance_type: InstanceType, max_pods: int, gpus: int) -> dict[str, str]:
    """Capacity minus what an EKS-optimized AMI reserves: kube-reserved CPU 6% of the first
    core, 1% of the second, 0.5% of the next two, 0.25% of the rest; memory 255 MiB + 11 MiB
    per pod; 100 MiB hard eviction threshold."""
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
        "ephemeral-storage": str(18 * 2**30),
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
    boot_s: float = 2.0
    gpu_time_slices: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.types = {t.name: t for t in self.catalog}

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
            if age >= self.boot_s:
                self._register(instance, now)
        self.heartbeats(now)

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
        capacity = {
            "cpu": f"{round(instance_type.vcpu * 1000)}m",
            "memory": str(instance_type.memory_bytes),
            "pods": str(max_pods),
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
            allocatable=eks_allocatable(instance_type, max_pods, gpus),
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
