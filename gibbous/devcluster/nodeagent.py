"""A node agent that plays the kubelet (and the cloud's node controller) for every running
instance of one cluster in an EC2 emulator.

Each running instance gets a Node once it has booted: named by its private DNS name, with
`spec.providerID` `aws:///<zone>/<id>`, the labels and taints its user data gives the
kubelet (`gibbous.devcluster.bootstrap`, read as the real bootstrap reads it), the kubelet's
own labels (hostname, os, arch), the cloud's (instance type, zone, region), and capacity and
allocatable from the instance type with EKS's reservation formula. Nothing else labels the
node: wrong user data makes a bare node. The agent keeps the Node Ready and its Lease
fresh, starts pods bound to it, finishes their deletion after the grace period, and
removes the Node when the instance terminates. It also does what the control plane's node
lifecycle controller would (the test control plane runs without it): takes the
`node.kubernetes.io/not-ready` taint the API server puts on new Nodes off once they are
Ready.
"""

from __future__ import annotations

import abc
import base64
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.bootstrap import read_bootstrap
from gibbous.kubeletsim import (
    clear_not_ready_taint,
    finish_deletions,
    node_status,
    renew_lease,
    run_pods,
)

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
class KubeletFleet(abc.ABC):
    """What every cloud's node agent does once it knows a machine runs: register its Node
    (only what the cloud's bootstrap and kubelet would put on it), keep it Ready and its
    Lease fresh, run and finish its pods, and delete it when the machine goes."""

    api: client.ApiClient
    clock: Callable[[], float]
    kubelet_version: str = "v1.37.2-emulated"
    registered: dict[str, str] = field(default_factory=dict)  # machine id -> node name

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def register(
        self,
        machine_id: str,
        name: str,
        *,
        labels: Mapping[str, str],
        taints: list[dict[str, str]],
        provider_id: str,
        capacity: Mapping[str, str],
        allocatable: Mapping[str, str],
        arch: str,
        now: float,
    ) -> None:
        body = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"providerID": provider_id, "taints": taints or None},
        }
        try:
            self.core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
        self.core.patch_node_status(
            name,
            {
                "status": node_status(
                    capacity,
                    allocatable,
                    ready=True,
                    now=now,
                    architecture=arch,
                    kubelet=self.kubelet_version,
                )
            },
        )
        self.registered[machine_id] = name

    def heartbeats(self, now: float) -> None:
        for name in self.registered.values():
            self._heartbeat(name, now)

    def forget_gone(self, running: Iterable[str]) -> None:
        """Delete the Nodes of machines no longer running, as the cloud's node controller."""
        live = set(running)
        for machine_id, name in list(self.registered.items()):
            if machine_id not in live:
                self._remove(machine_id, name)

    def _heartbeat(self, name: str, now: float) -> None:
        try:
            node = self.core.read_node(name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        updated = self.core.patch_node_status(
            name,
            {
                "status": node_status(
                    dict(node.status.capacity or {}),
                    dict(node.status.allocatable or {}),
                    ready=True,
                    now=now,
                    architecture=node.status.node_info.architecture
                    if node.status.node_info
                    else "amd64",
                    kubelet=self.kubelet_version,
                )
            },
        )
        clear_not_ready_taint(self.core, updated)
        renew_lease(self.coordination, name, node.metadata.uid, now)
        run_pods(self.core, name, now)
        finish_deletions(self.core, name, now)

    def _remove(self, machine_id: str, name: str) -> None:
        try:
            self.core.delete_node(name)
        except ApiException as error:
            if error.status != 404:
                raise
        del self.registered[machine_id]
        log.info("removed node %s: machine %s is gone", name, machine_id)

    @abc.abstractmethod
    def step(self) -> None:
        """Register the machines that booted, keep the fleet's Nodes alive."""

    def run(self, stopped: threading.Event, period_s: float = 1.0) -> None:
        while not stopped.is_set():
            try:
                self.step()
            except Exception:
                log.exception("node agent step failed; retrying")
            stopped.wait(period_s)


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
