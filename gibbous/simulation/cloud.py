"""The simulated cloud: the fake provider (boot time, stock-outs, launches that hang, quota,
spot interruption notices), remembering what each launch asked its node to register
with, and billing what runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gibbous.autoscaler.cloud.base import Instance, InstanceState, LaunchRequest
from gibbous.autoscaler.cloud.fake import FakeCloudProvider


@dataclass
class SimCloud(FakeCloudProvider):
    name: str = "simulated"
    launch_taints: dict[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)

    def create(self, request: LaunchRequest) -> Instance:
        instance = super().create(request)
        self.launch_taints[instance.id] = tuple(request.taints)
        return instance

    def running(self) -> list[Instance]:
        """Instances billed now: running, not yet terminated."""
        return [i for i in self.instances.values() if i.state is InstanceState.RUNNING]
