"""The simulated cloud: the fake provider (boot time, stock-outs, launches that hang, quota,
spot interruption notices), remembering what each launch asked its node to register
with, and billing what runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gibbous.autoscaler.cloud.base import Instance, InstanceState, LaunchRequest
from gibbous.autoscaler.cloud.fake import FakeCloudProvider


@dataclass(frozen=True)
class StartingNode:
    """A node a scenario starts with (`--from-cluster`), running at time 0."""

    name: str
    instance_type: str  # the catalog's name
    category: str
    zone: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...] = ()


@dataclass
class SimCloud(FakeCloudProvider):
    name: str = "simulated"
    launch_taints: dict[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    # Each launch's boot time, drawn when it is made (a scenario's bootTime spread).
    draw_boot: Callable[[], float] | None = None
    boot_of: dict[str, float] = field(default_factory=dict)

    def create(self, request: LaunchRequest) -> Instance:
        known = {i.id for i in self.instances.values()}
        instance = super().create(request)
        self.launch_taints[instance.id] = tuple(request.taints)
        if self.draw_boot is not None and instance.id not in known:
            self.boot_of[instance.id] = self.draw_boot()
        return instance

    def _advance(self, instance: Instance) -> Instance:
        boot = self.boot_of.get(instance.id)
        if boot is None:
            return super()._advance(instance)
        usual, self.boot_s = self.boot_s, boot
        try:
            return super()._advance(instance)
        finally:
            self.boot_s = usual

    def start_running(self, node: StartingNode, cluster_id: str) -> Instance:
        """A node the scenario starts with: running already, under its own name."""
        instance = Instance(
            id=f"start-{node.name}",
            token=f"start-{node.name}",
            cluster_id=cluster_id,
            instance_type=node.instance_type,
            category=node.category,
            zone=node.zone,
            state=InstanceState.RUNNING,
            created_at=self.clock(),
            node_name=node.name,
            labels=dict(node.labels),
        )
        self.instances[instance.id] = instance
        self.launch_taints[instance.id] = node.taints
        return instance

    def running(self) -> list[Instance]:
        """Instances billed now: running, not yet terminated."""
        return [i for i in self.instances.values() if i.state is InstanceState.RUNNING]
