"""The node agent of the OKE emulator: for every ACTIVE node of an emulated node pool, the
Node OKE's node bootstrap and kubelet would register, and nothing more.

Named by its private IP, as OKE's managed nodes register (the Container Engine API's
`Node.name`, `oke-c...-n...-s...-<slot>`, is the instance's display name, not the Node's),
`spec.providerID` the instance OCID (what cluster-autoscaler's OCI provider reads back as
the instance id, `getNodeInstanceID` in cloudprovider/oci/common). Labels:
the pool's `initialNodeLabels`; OKE's own (`name` = the pool's name, `displayName`,
`hostname`, `internal_addr`, `node-role.kubernetes.io/node`,
`oci.oraclecloud.com/fault-domain`, `node.info.ds_proxymux_client`); the kubelet's
(hostname, os, arch); the cloud controller manager's (instance-type = the shape, zone = the
availability domain without its tenancy prefix, region). Taints: only what the kubelet is
told, through the `--kubelet-extra-args` the pool's cloud-init (`user_data`) passes OKE's
bootstrap script (OKE node pools have no taints field; OKE documents this way, "Using
Custom Cloud-init Initialization Scripts"; the unverified metadata key
`kubelet-extra-args` that cluster-autoscaler's OCI provider reads is not honoured), and OKE's `nvidia.com/gpu:NoSchedule` on GPU shapes.
GPUs from the shape, times the device plugin's
time-slicing replicas. Allocatable: OKE's own reservations are not in our references, so
the agent takes the tiers GKE documents (`gke_reserved`; unverified for OKE), which is
also what the planner assumes by default. It reads the emulator's nodes through
`gibbous.devcluster.oci.state.EmulatedFleet`, never the emulator module.
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.gcp.agent import gke_reserved
from gibbous.devcluster.kubeletfleet import KubeletFleet
from gibbous.devcluster.oci.state import REGION, EmulatedFleet, OkeNode, OkePool, pod_capacity

log = logging.getLogger("gibbous.okenodeagent")

GIB = 2**30
# OKE taints its GPU nodes (cluster-autoscaler's OCI provider puts this taint on a GPU
# pool's template node, oci_manager.go buildNodeFromTemplate); GPU pods tolerate it through
# ExtendedResourceToleration, which OKE turns on ("Supported Admission Controllers").
GPU_TAINT = {"key": keys.NVIDIA_GPU, "value": "", "effect": "NoSchedule"}


def kubelet_taints(extra_args: str) -> list[dict[str, str]]:
    """The taints `--register-with-taints=k=v:Effect,...` gives the kubelet."""
    taints = []
    for argument in shlex.split(extra_args):
        match = re.fullmatch(r"--register-with-taints=(.*)", argument)
        if not match:
            continue
        for item in filter(None, match.group(1).split(",")):
            head, _, effect = item.rpartition(":")
            key, _, value = head.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
    return taints


def bootstrap_kubelet_args(node_metadata: Mapping[str, Any]) -> str:
    """The `--kubelet-extra-args` the pool's cloud-init (`user_data`, base64) gives OKE's
    bootstrap (`bash /var/run/oke-init.sh ...` on Oracle Linux images, `oke bootstrap ...`
    on Ubuntu ones); "" without one."""
    try:
        script = base64.b64decode(str(node_metadata.get("user_data") or "")).decode()
    except ValueError:
        return ""
    for line in script.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        bootstrap = words[:2] in (["bash", "/var/run/oke-init.sh"], ["oke", "bootstrap"])
        if bootstrap and "--kubelet-extra-args" in words[:-1]:
            return words[words.index("--kubelet-extra-args") + 1]
    return ""


def kubelet_labels(extra_args: str) -> dict[str, str]:
    """The labels `--node-labels=k=v,...` gives the kubelet."""
    labels = {}
    for argument in shlex.split(extra_args):
        if argument.startswith("--node-labels="):
            for item in filter(None, argument.split("=", 1)[1].split(",")):
                key, _, value = item.partition("=")
                labels[key] = value
    return labels


@dataclass
class OkeNodeAgent(KubeletFleet):
    emulator: EmulatedFleet = field(kw_only=True)  # what it reads: the emulator, in process
    boot_s: float = 60.0  # realistic (docs/clouds); the CLI and tests set a scaled one
    gpu_time_slices: int = 1  # the NVIDIA device plugin's time-slicing replicas
    seen_running: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.catalog = load_catalog(None, "oci", REGION)

    def _type(self, pool: OkePool) -> InstanceType | None:
        shape = str(pool.body.get("nodeShape", ""))
        config = pool.body.get("nodeShapeConfig") or {}
        if config:
            name = f"{shape}-{float(config['ocpus']):g}-{float(config['memoryInGBs']):g}"
            return next((t for t in self.catalog if t.name == name), None)
        return next((t for t in self.catalog if t.name == shape), None)

    def step(self) -> None:
        now = self.clock()
        active = self.emulator.active_nodes()
        ids = {node.id for _, node in active}
        self.seen_running = {n: t for n, t in self.seen_running.items() if n in ids}
        self.forget_gone(ids)
        for pool, node in active:
            since = self.seen_running.setdefault(node.id, now)
            if node.id not in self.registered and now - since >= self.boot_s:
                self._register(pool, node, now)
        self.heartbeats(now)

    def _register(self, pool: OkePool, node: OkeNode, now: float) -> None:
        instance_type = self._type(pool)
        if instance_type is None:
            log.warning(
                "node %s: shape %s is not in the catalog", node.id, pool.body.get("nodeShape")
            )
            return
        extra_args = bootstrap_kubelet_args(pool.body.get("nodeMetadata") or {})
        labels = {
            **{str(kv["key"]): str(kv["value"]) for kv in pool.body.get("initialNodeLabels") or []},
            **kubelet_labels(extra_args),
            "name": str(pool.body.get("name", "")),
            "displayName": node.name,
            "hostname": node.private_ip,
            "internal_addr": node.private_ip,
            "node-role.kubernetes.io/node": "",
            "oci.oraclecloud.com/fault-domain": "FAULT-DOMAIN-1",
            "node.info.ds_proxymux_client": "true",
            keys.HOSTNAME: node.private_ip,
            keys.OS: "linux",
            keys.ARCH: instance_type.arch,
            keys.INSTANCE_TYPE: str(pool.body.get("nodeShape", "")),
            keys.ZONE: node.availability_domain.split(":", 1)[-1],
            keys.REGION: REGION,
        }
        cpu = round(instance_type.vcpu * 1000)
        reserved_cpu, reserved_memory = gke_reserved(instance_type.vcpu, instance_type.memory_bytes)
        capacity = {
            "cpu": f"{cpu}m",
            "memory": str(instance_type.memory_bytes),
            "pods": str(pod_capacity(pool.body)),
            "ephemeral-storage": str(
                int((pool.body.get("nodeSourceDetails") or {}).get("bootVolumeSizeInGBs") or 50)
                * GIB
            ),
        }
        disk = int(capacity["ephemeral-storage"])
        allocatable = {
            **capacity,
            "cpu": f"{cpu - reserved_cpu}m",
            "memory": str(instance_type.memory_bytes - reserved_memory),
            # The kubelet's default nodefs.available<10% (OKE documents no storage reserve).
            "ephemeral-storage": str(disk - disk // 10),
        }
        if instance_type.gpu_count:
            gpus = str(instance_type.gpu_count * self.gpu_time_slices)
            capacity[keys.NVIDIA_GPU] = allocatable[keys.NVIDIA_GPU] = gpus
        taints = kubelet_taints(extra_args)
        if instance_type.gpu_count:
            taints.append(GPU_TAINT)
        self.register(
            node.id,
            node.private_ip,
            labels=labels,
            taints=taints,
            provider_id=node.id,
            capacity=capacity,
            allocatable=allocatable,
            arch=instance_type.arch,
            now=now,
        )
        log.info(
            "registered %s (%s, pool %s, %s)",
            node.private_ip,
            node.name,
            pool.body.get("name"),
            instance_type.name,
        )
