"""Issue #28: two installs in one cluster, each with its own `labels`, leave each other's
nodes alone. Before owner labels, install B found A's bin-pack node running none of *its*
managed pods and drained it (evicting A's pod) within ten minutes."""

from __future__ import annotations

from typing import Any

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.settings.config import Config
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod

FAST = {"scaleDown.unneededTime": "2m", "scaleDown.delayAfterAdd": "1m", "nodeTTL": "20m"}


class Install:
    def __init__(self, cfg: Config, cloud: FakeCloudProvider, clock: Clock, pods: Any) -> None:
        self.cluster = FakeCluster(cloud, cfg, pod_objects=pods)
        self.autoscaler = Autoscaler(
            cfg,
            cloud,
            self.cluster,
            clock=clock,
            new_token=Tokens(cfg.install_name),
            jitter=lambda: 0.5,
        )
        self.lifecycle = NodeLifecycle(self.autoscaler, self.cluster, clock=clock)


def two_installs() -> tuple[Install, Install, FakeCloudProvider, Clock]:
    clock = Clock()
    cfg_a = config(labels="team=a", installName="team-a", **FAST)
    cloud = FakeCloudProvider(catalog(cfg_a.cloud), clock, boot_s=20)
    pods: dict[str, dict[str, Any]] = {}
    a = Install(cfg_a, cloud, clock, pods)
    b = Install(config(labels="team=b", installName="team-b", **FAST), cloud, clock, pods)
    return a, b, cloud, clock


def run(installs: tuple[Install, ...], clock: Clock, seconds: float) -> None:
    end = clock.now + seconds
    while clock.now < end:
        for install in installs:
            install.autoscaler.step()
            install.lifecycle.step()
        installs[0].cluster.schedule()
        clock.advance(5)


def test_each_install_leaves_the_other_installs_nodes_alone() -> None:
    a, b, cloud, clock = two_installs()
    a.cluster.add(make_pod("a-small", managed=False, labels={"team": "a"}))
    run((a, b), clock, 60)
    (node,) = a.cluster.nodes()
    assert node["metadata"]["labels"][keys.OWNER] == "gibbous.team-a"
    assert node["metadata"]["labels"][keys.CREATED_BY] == "gibbous"  # Luna/Nova still see it
    run((a, b), clock, 600)  # B's unneeded time passes many times over
    assert cloud.delete_calls == [] and b.cluster.evictions == []
    assert [n["metadata"]["name"] for n in a.cluster.nodes()] == [node["metadata"]["name"]]
    run((a, b), clock, 900)  # past nodeTTL: only A cycles its node
    assert a.cluster.evictions == ["default/a-small"] and b.cluster.evictions == []
