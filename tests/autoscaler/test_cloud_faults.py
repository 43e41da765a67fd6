"""The loop and the node lifecycle against a cloud whose reads and deletes fail and lag (as
the clouds' APIs and Gibbous's emulators can): no step raises, nothing is launched twice,
and what was asked for happens once the cloud answers."""

from __future__ import annotations

from typing import Any

from gibbous.autoscaler.cloud.base import InstanceState, ThrottledError
from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod

OWN_POD = {"metadata": {"name": "gibbous-autoscaler-0", "namespace": "gibbous", "uid": "own"}}


class World:
    def __init__(self, **cloud: Any) -> None:
        cfg = config(**{"scaleDown.unneededTime": "2m", "scaleDown.delayAfterAdd": "1m"})
        self.clock = Clock()
        self.cloud = FakeCloudProvider(catalog("aws"), self.clock, boot_s=30, **cloud)
        self.cluster = FakeCluster(self.cloud, cfg)
        self.autoscaler = Autoscaler(
            cfg, self.cloud, self.cluster, clock=self.clock, new_token=Tokens(), jitter=lambda: 0.5
        )
        self.lifecycle = NodeLifecycle(
            self.autoscaler, self.cluster, clock=self.clock, own_pod=OWN_POD
        )

    def run(self, seconds: float, tick: float = 5.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.autoscaler.step()
            self.lifecycle.step()
            self.cluster.schedule()
            self.clock.advance(tick)

    def bound(self) -> dict[str, str]:
        return {
            key: pod["spec"].get("nodeName", "") for key, pod in self.cluster.pod_objects.items()
        }


def test_new_instances_unseen_for_a_while_are_not_launched_again() -> None:
    """EC2 may not list (or get) an instance for seconds after RunInstances; the loop waits
    for the launch it made rather than making another."""
    w = World(visibility_lag_s=25)
    w.cluster.add(*(make_pod(f"big-{i}", cpu="3", memory="4Gi") for i in range(3)))
    w.run(120)
    assert len(w.cloud.instances) == 3  # one node per bin-select pod, no more
    assert len({r.token for r in w.cloud.create_calls}) == 3
    nodes = w.bound()
    assert all(nodes.values()) and len(set(nodes.values())) == 3, nodes


def test_failing_lists_and_gets_are_survived_and_retried() -> None:
    errors: list[Exception] = [ThrottledError(1.0), RuntimeError("500 InternalError")] * 3
    w = World(list_errors=list(errors), get_errors=list(errors))
    w.cluster.add(*(make_pod(f"big-{i}", cpu="3", memory="4Gi") for i in range(2)))
    w.run(150)
    # Every failing list was retried; polls failed too (the launch may come up before the
    # last queued get error is reached: once its node is listed no get is needed).
    assert not w.cloud.list_errors and len(w.cloud.get_errors) < len(errors)
    assert len(w.cloud.instances) == 2
    assert all(w.bound().values())


def test_a_failing_then_lagging_delete_ends_with_the_node_gone_once() -> None:
    """An empty node is scaled down although its first delete fails and the cloud keeps
    listing the instance, terminating, for a minute after the delete is accepted."""
    w = World(delete_errors=[RuntimeError("503 ServiceUnavailable")], delete_lag_s=60)
    w.cluster.add(make_pod("job", cpu="3"))
    w.run(60)
    ((instance_id, instance),) = w.cloud.instances.items()
    assert instance.state is InstanceState.RUNNING
    del w.cluster.pod_objects["default/job"]  # the job finished
    w.run(400)
    assert w.cloud.instances[instance_id].state is InstanceState.TERMINATED
    assert not w.cloud.delete_errors and w.cloud.delete_calls[0] == instance_id
    assert set(w.cloud.delete_calls) == {instance_id}
    assert len(w.cloud.instances) == 1  # nothing launched in its place
    assert w.cluster.nodes() == []


def test_nodes_smaller_than_planned_leave_pods_the_loop_then_places() -> None:
    """Kubelets that reserve more than the planner's model (here 1.5 CPU more per node) take
    fewer pods than planned: those stay Unschedulable and get another node."""
    planned = World()
    small = World()
    small.cluster.kubelet_extra_reserved = (1500, 0)
    for w in (planned, small):
        w.cluster.add(*(make_pod(f"web-{i}", cpu="500m", memory="256Mi") for i in range(24)))
        w.run(240)
        assert all(w.bound().values()), w.bound()
    assert len(small.cloud.instances) > len(planned.cloud.instances)
