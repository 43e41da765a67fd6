"""The node agent of the AKS emulator: for every running VM of an emulated agent pool, the
Node AKS's node bootstrap and kubelet would register, and nothing more.

Named as the VM's computer name, `spec.providerID`
`azure:///subscriptions/.../virtualMachineScaleSets/<vmss>/virtualMachines/<n>`. Labels:
the pool's `nodeLabels`; AKS's own (`kubernetes.azure.com/agentpool` and the legacy
`agentpool`, `kubernetes.azure.com/mode`, `role`, `cluster`, `os-sku`,
`node-image-version`, `kubernetes.azure.com/accelerator=nvidia` on GPU sizes); the
kubelet's (hostname, os, arch); the cloud controller manager's (instance-type = the VM
size, zone `<region>-<zone>` or `0` outside zones, region). Taints: the pool's
`nodeTaints`. AKS's spot label and taint are in the pool's own `nodeLabels` and
`nodeTaints` (the emulator puts them there as AKS does), so a PUT that dropped the label
gives nodes without it, as Azure/AKS#3152 reports. Capacity from
the VM size; allocatable by AKS's documented reservations (written out here, apart from the
planner's copy): CPU 6/1/0.5/0.25% tiers, memory the lesser of 20 MiB x max pods + 50 MiB
and 25% of the VM, plus the 100 MiB eviction threshold. It reads the emulator's machines
through `gibbous.devcluster.azure.state.EmulatedFleet`, never the emulator module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.devcluster.azure.state import AgentPool, EmulatedFleet, Machine
from gibbous.devcluster.kubeletfleet import KubeletFleet

log = logging.getLogger("gibbous.aksnodeagent")

MIB = 2**20
MAX_PODS = 110  # kubenet's; the emulator puts the network plugin's on each pool


def aks_reserved(vcpu: float, memory: int, max_pods: int = MAX_PODS) -> tuple[int, int]:
    """AKS's kube-reserved CPU (millicores) and memory plus the 100 MiB eviction threshold."""
    cpu, left = 0.0, vcpu
    for cores, share in ((1, 0.06), (1, 0.01), (2, 0.005)):
        cpu += min(left, cores) * 1000 * share
        left = max(0.0, left - cores)
    cpu += left * 1000 * 0.0025
    reserved_memory = min(20 * MIB * max_pods + 50 * MIB, memory // 4)
    return round(cpu), reserved_memory + 100 * MIB


@dataclass
class AksNodeAgent(KubeletFleet):
    emulator: EmulatedFleet = field(kw_only=True)  # what it reads: the emulator, in process
    boot_s: float = 60.0  # realistic (docs/clouds); the CLI and tests set a scaled one
    gpu_time_slices: int = 1  # the NVIDIA device plugin's time-slicing replicas
    seen_running: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sizes = {t.name: t for t in load_catalog(None, "azure", self.emulator.location)}

    def step(self) -> None:
        now = self.clock()
        running = self.emulator.running_machines()
        ids = {self.emulator.resource_id(pool, machine) for pool, machine in running}
        self.seen_running = {n: t for n, t in self.seen_running.items() if n in ids}
        self.forget_gone(ids)
        for pool, machine in running:
            resource_id = self.emulator.resource_id(pool, machine)
            since = self.seen_running.setdefault(resource_id, now)
            if resource_id not in self.registered and now - since >= self.boot_s:
                self._register(pool, machine, resource_id, now)
        self.heartbeats(now)

    def _register(self, pool: AgentPool, machine: Machine, resource_id: str, now: float) -> None:
        properties = pool.properties
        size = self.sizes.get(str(properties.get("vmSize", "")))
        if size is None:
            log.warning(
                "machine %s: VM size %s is not in the catalog",
                machine.name,
                properties.get("vmSize"),
            )
            return
        region = self.emulator.location
        labels = {
            **(properties.get("nodeLabels") or {}),
            "kubernetes.azure.com/agentpool": pool.name,
            "agentpool": pool.name,
            "kubernetes.azure.com/mode": str(properties.get("mode", "User")).lower(),
            "kubernetes.azure.com/role": "agent",
            "kubernetes.azure.com/cluster": self.emulator.node_resource_group,
            "kubernetes.azure.com/os-sku": "Ubuntu",
            "kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202611.01.0",
            keys.HOSTNAME: machine.name,
            keys.OS: "linux",
            keys.ARCH: size.arch,
            keys.INSTANCE_TYPE: size.name,
            keys.ZONE: f"{region}-{machine.zone}" if machine.zone else "0",
            keys.REGION: region,
        }
        taints = []
        for text in properties.get("nodeTaints") or []:
            head, _, effect = str(text).rpartition(":")
            key, _, value = head.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
        if size.gpu_count:
            labels["kubernetes.azure.com/accelerator"] = "nvidia"
        max_pods = int(properties.get("maxPods") or MAX_PODS)
        cpu_reserved, memory_reserved = aks_reserved(size.vcpu, size.memory_bytes, max_pods)
        capacity = {
            "cpu": f"{round(size.vcpu * 1000)}m",
            "memory": str(size.memory_bytes),
            "pods": str(max_pods),
            "ephemeral-storage": str(int(properties.get("osDiskSizeGB") or 128) * 2**30),
        }
        disk = int(capacity["ephemeral-storage"])
        allocatable = {
            **capacity,
            "cpu": f"{round(size.vcpu * 1000) - cpu_reserved}m",
            "memory": str(size.memory_bytes - memory_reserved),
            # AKS's kubelet: --eviction-hard nodefs.available<10%, no storage kube-reserved.
            "ephemeral-storage": str(disk - disk // 10),
        }
        if size.gpu_count:
            gpus = str(size.gpu_count * self.gpu_time_slices)
            capacity[keys.NVIDIA_GPU] = allocatable[keys.NVIDIA_GPU] = gpus
        self.register(
            resource_id,
            machine.name,
            labels=labels,
            taints=taints,
            provider_id=f"azure://{resource_id}",
            capacity=capacity,
            allocatable=allocatable,
            arch=size.arch,
            now=now,
        )
        log.info("registered %s (pool %s, %s)", machine.name, pool.name, size.name)
