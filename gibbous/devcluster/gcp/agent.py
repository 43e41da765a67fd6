"""The node agent of the GKE emulator: for every instance running in an emulated node pool,
the Node GKE's node bootstrap and kubelet would register, and nothing more.

Named as the instance, `spec.providerID` `gce://<project>/<zone>/<instance>`. Labels: the
node pool's Kubernetes labels; GKE's own (`cloud.google.com/gke-nodepool`, machine
family, OS distribution, boot disk, `gke-spot` and `gke-provisioning`, and on GPU pools
`gke-accelerator`, the GPU driver version and, with time-sharing,
`gke-gpu-sharing-strategy` / `gke-max-shared-clients-per-gpu`); the kubelet's (hostname,
os, arch); the cloud controller manager's (instance-type = the machine type, zone,
region). Taints: the node pool's, and GKE's `nvidia.com/gpu=present:NoSchedule` on GPU
nodes (the ExtendedResourceToleration admission plugin, which GKE enables, gives GPU
pods the toleration). Capacity from the machine type and its accelerators
(`nvidia.com/gpu` = GPUs x clients per GPU under time-sharing); allocatable by GKE's
documented reservations (written out here, apart from the planner's copy, so each checks
the other). The agent keeps the Nodes Ready, runs and finishes their pods, and deletes a
Node when its instance goes. It reads the emulator's instances through
`gibbous.devcluster.gcp.state.EmulatedFleet`, never the emulator module.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.machinelabels import GKE_METADATA_SERVER, gke_accelerator
from gibbous.devcluster.gcp.state import EmulatedFleet, ManagedInstance
from gibbous.devcluster.kubeletfleet import KubeletFleet

log = logging.getLogger("gibbous.gkenodeagent")

GIB = 2**30
MIB = 2**20
EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
    "NO_EXECUTE": "NoExecute",
}


def gke_reserved(vcpu: float, memory: int) -> tuple[int, int]:
    """GKE's kube-reserved CPU (millicores) and memory plus the 100 MiB eviction threshold,
    from the table in GKE's "node allocatable" documentation."""
    cpu, left = 0.0, vcpu
    for cores, share in ((1, 0.06), (1, 0.01), (2, 0.005)):
        cpu += min(left, cores) * 1000 * share
        left = max(0.0, left - cores)
    cpu += left * 1000 * 0.0025
    reserved: float = 255 * MIB
    if memory >= GIB:
        reserved, rest = 0.0, float(memory)
        for size, share in ((4 * GIB, 0.25), (4 * GIB, 0.2), (8 * GIB, 0.1), (112 * GIB, 0.06)):
            reserved += min(rest, size) * share
            rest = max(0.0, rest - size)
        reserved += rest * 0.02
    return round(cpu), round(reserved) + 100 * MIB


def gke_storage_reserved(disk: int) -> int:
    """What GKE keeps of the boot disk from pods' ephemeral storage ("Plan node sizes",
    local ephemeral storage reservation): the 10% eviction threshold plus
    min(50%, 6 GiB + 35%, 100 GiB)."""
    return disk // 10 + min(disk // 2, 6 * GIB + disk * 35 // 100, 100 * GIB)


def pod_capacity(pool: dict[str, Any]) -> int:
    """The kubelet's max-pods on GKE: the pool's maxPodsConstraint (the cluster's default
    when the pool has none, which the emulator writes into the pool as GKE does)."""
    constraint = pool.get("maxPodsConstraint") or {}
    return int(constraint.get("maxPodsPerNode") or 110)


# GKE installs the default NVIDIA driver on its own from this version when the pool does
# not say gpuDriverVersion; older clusters install none unless asked.
AUTO_DRIVER_SINCE = (1, 30, 1, 1156000)


def _gke_version(text: str) -> tuple[int, ...]:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    return tuple(numbers[:3] + numbers[-1:]) if len(numbers) >= 4 else tuple(numbers)


def driver_installed(accelerator: dict[str, Any], version: str) -> bool:
    """Whether GKE installs the NVIDIA driver on the node, without which the device plugin
    advertises no nvidia.com/gpu: DEFAULT or LATEST, never INSTALLATION_DISABLED, and when
    unset only on versions that install it by default."""
    driver = str(
        (accelerator.get("gpuDriverInstallationConfig") or {}).get("gpuDriverVersion") or ""
    )
    if driver in ("DEFAULT", "LATEST"):
        return True
    if driver == "INSTALLATION_DISABLED":
        return False
    return _gke_version(version) >= AUTO_DRIVER_SINCE


@dataclass
class GkeNodeAgent(KubeletFleet):
    emulator: EmulatedFleet = field(kw_only=True)  # what it reads: the emulator, in process
    boot_s: float = 60.0  # realistic (docs/clouds); the CLI and tests set a scaled one
    seen_running: dict[str, float] = field(default_factory=dict)  # instance -> since

    def __post_init__(self) -> None:
        super().__post_init__()
        self.machines: dict[tuple[str, str, int], InstanceType] = {}
        for instance_type in load_catalog(None, "gcp", self.emulator.region):
            accelerator = gke_accelerator(instance_type) if instance_type.gpu_count else ""
            key = (instance_type.machine_type, accelerator, instance_type.gpu_count)
            self.machines.setdefault(key, instance_type)

    def step(self) -> None:
        now = self.clock()
        running = self.emulator.running_nodes()
        names = {instance.name for _, instance in running}
        self.seen_running = {n: t for n, t in self.seen_running.items() if n in names}
        self.forget_gone(names)
        for pool, instance in running:
            since = self.seen_running.setdefault(instance.name, now)
            if instance.name not in self.registered and now - since >= self.boot_s:
                self._register(pool, instance, now)
        self.heartbeats(now)

    def _register(self, pool: dict[str, Any], instance: ManagedInstance, now: float) -> None:
        config = pool.get("config") or {}
        machine = str(config.get("machineType", ""))
        accelerators = config.get("accelerators") or []
        accelerator = accelerators[0] if accelerators else {}
        accelerator_type = str(accelerator.get("acceleratorType", ""))
        gpus = int(accelerator.get("acceleratorCount", 0) or 0)
        instance_type = self.machines.get((machine, accelerator_type, gpus)) or self.machines.get(
            (machine, "", 0)
        )
        if instance_type is None:
            log.warning("instance %s: machine %s is not in the catalog", instance.name, machine)
            return
        sharing = accelerator.get("gpuSharingConfig") or {}
        clients = int(sharing.get("maxSharedClientsPerGpu", 0) or 0)
        spot = bool(config.get("spot"))
        labels = {
            **(config.get("labels") or {}),
            "cloud.google.com/gke-nodepool": str(pool["name"]),
            "cloud.google.com/gke-os-distribution": "cos",
            "cloud.google.com/gke-container-runtime": "containerd",
            "cloud.google.com/gke-boot-disk": str(config.get("diskType") or "pd-balanced"),
            "cloud.google.com/machine-family": machine.split("-", 1)[0],
            "cloud.google.com/gke-provisioning": "spot" if spot else "standard",
            keys.HOSTNAME: instance.name,
            keys.OS: "linux",
            keys.ARCH: instance_type.arch,
            keys.INSTANCE_TYPE: machine,
            keys.ZONE: instance.zone,
            keys.REGION: self.emulator.region,
        }
        if spot:
            labels[keys.GKE_SPOT] = "true"
        if (config.get("workloadMetadataConfig") or {}).get("mode") == "GKE_METADATA":
            labels[GKE_METADATA_SERVER] = "true"
        taints = [
            {"key": t["key"], "value": t.get("value", ""), "effect": EFFECTS[t["effect"]]}
            for t in config.get("taints") or []
        ]
        slices = 1
        if gpus:
            labels["cloud.google.com/gke-accelerator"] = accelerator_type
            driver = (accelerator.get("gpuDriverInstallationConfig") or {}).get("gpuDriverVersion")
            if driver and driver != "GPU_DRIVER_VERSION_UNSPECIFIED":
                labels["cloud.google.com/gke-gpu-driver-version"] = str(driver).lower()
            if sharing.get("gpuSharingStrategy") == "TIME_SHARING" and clients:
                labels[keys.GKE_GPU_SHARING_STRATEGY] = "time-sharing"
                labels[keys.GKE_MAX_SHARED_CLIENTS] = str(clients)
                slices = clients
            taints.append({"key": keys.NVIDIA_GPU, "value": "present", "effect": "NoSchedule"})
        cpu_reserved, memory_reserved = gke_reserved(instance_type.vcpu, instance_type.memory_bytes)
        capacity = {
            "cpu": f"{round(instance_type.vcpu * 1000)}m",
            "memory": str(instance_type.memory_bytes),
            "pods": str(pod_capacity(pool)),
            "ephemeral-storage": str(int(config.get("diskSizeGb") or 100) * GIB),
        }
        disk = int(capacity["ephemeral-storage"])
        allocatable = {
            **capacity,
            "cpu": f"{round(instance_type.vcpu * 1000) - cpu_reserved}m",
            "memory": str(instance_type.memory_bytes - memory_reserved),
            "ephemeral-storage": str(disk - gke_storage_reserved(disk)),
        }
        if gpus and driver_installed(accelerator, self.emulator.version):
            capacity[keys.NVIDIA_GPU] = allocatable[keys.NVIDIA_GPU] = str(gpus * slices)
        elif gpus:
            log.warning(
                "%s: no NVIDIA driver installed; its GPUs are not advertised", instance.name
            )
        self.register(
            instance.name,
            instance.name,
            labels=labels,
            taints=taints,
            provider_id=f"gce://{self.emulator.project}/{instance.zone}/{instance.name}",
            capacity=capacity,
            allocatable=allocatable,
            arch=instance_type.arch,
            now=now,
        )
        log.info("registered %s (pool %s, %s)", instance.name, pool["name"], machine)
