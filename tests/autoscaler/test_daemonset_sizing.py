"""The loop sizes new nodes with what the cluster's DaemonSets run on them, and sizes its
offers again only when a DaemonSet's template changes."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

import gibbous.autoscaler.launchreview
from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core.choice.daemonsets import describe_daemonset
from gibbous.core.choice.selection import build_offers
from gibbous.core.settings.config import Config
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod

# Reservations off: a 4-vCPU node holds 4000m minus what its DaemonSets request.
CFG = config(
    cloudProvider="aws",
    nodeOverhead={"reservation": "none", "evictionMemory": 0, "daemonSetCpu": "100m"},
)


def agent(cpu: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "agent", "namespace": "kube-system", "resourceVersion": "7"},
        "spec": {
            "template": {
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}
                    ],
                }
            }
        },
    }


def setup(cfg: Config = CFG) -> tuple[Clock, FakeCloudProvider, FakeCluster, Autoscaler]:
    clock = Clock()
    provider = FakeCloudProvider(catalog(cfg.cloud), clock)
    cluster = FakeCluster(provider, cfg)
    autoscaler = Autoscaler(
        cfg, provider, cluster, clock=clock, new_token=Tokens(), jitter=lambda: 0.5
    )
    return clock, provider, cluster, autoscaler


def launched_vcpus(daemonsets: list[dict[str, Any]] | None) -> float:
    clock, provider, cluster, autoscaler = setup()
    cluster.daemonset_objects = daemonsets
    # 3800m: a bin-select pod (over 2 CPU) on its own node
    cluster.add(make_pod("big", cpu="3800m", memory="1Gi"))
    for _ in range(15):
        autoscaler.step()
        clock.advance(1)
    (request,) = provider.create_calls
    by_name = {t.name: t for t in provider.catalog}
    return by_name[request.instance_type].vcpu


def test_a_pod_that_fits_only_without_the_daemonsets_gets_a_bigger_node() -> None:
    # Configured overhead (100m): 4000 - 100 = 3900m >= 3800m, a 4-vCPU type.
    assert launched_vcpus(None) == 4
    # The cluster's DaemonSet asks 300m of every node: 4000 - 300 = 3700m < 3800m.
    vcpus = launched_vcpus([agent("300m")])
    assert vcpus > 4
    assert vcpus * 1000 - 300 >= 3800
    # A DaemonSet smaller than the configured figure: 4000 - 50 = 3950m, 4 vCPUs again.
    assert launched_vcpus([agent("50m")]) == 4


def test_offers_are_sized_again_only_when_a_template_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return build_offers(*args, **kwargs)

    monkeypatch.setattr(gibbous.autoscaler.launchreview, "build_offers", counting)
    clock, _provider, cluster, autoscaler = setup()
    cluster.daemonset_objects = [agent("300m")]
    for _ in range(30):
        autoscaler.step()
        clock.advance(1)
    assert len(calls) == 1
    cluster.daemonset_objects = [agent("400m")]
    for _ in range(30):
        autoscaler.step()
        clock.advance(1)
    assert len(calls) == 2


def test_kube_cluster_describes_each_daemonset_version_once_and_keeps_the_set() -> None:
    cluster = KubeCluster(client.ApiClient(client.Configuration()))
    assert cluster.daemonset_pods() is None  # not listed yet: the configured overhead
    informer = cluster.daemonset_cache
    informer._set("kube-system/agent", agent("300m"))
    informer.ready.set()
    first = cluster.daemonset_pods()
    assert first is not None and [d.requests.cpu_millis for d in first] == [300]
    assert cluster.daemonset_pods() is first
    status_only = agent("300m")
    status_only["metadata"]["resourceVersion"] = "8"
    status_only["status"] = {"numberReady": 3}
    informer._set("kube-system/agent", status_only)
    assert cluster.daemonset_pods() is first  # the same template: nothing to resize
    informer._set("kube-system/agent", agent("400m"))
    second = cluster.daemonset_pods()
    assert second is not first and second == (describe_daemonset(agent("400m")),)
    assert informer.decoded == 3  # one description per event
    informer._set("kube-system/agent", None)
    assert cluster.daemonset_pods() == ()


def test_unlisted_daemonsets_do_not_hold_readiness_once_their_list_failed() -> None:
    cluster = KubeCluster(client.ApiClient(client.Configuration()))
    for informer in (cluster.pod_cache, cluster.node_cache, cluster.event_cache):
        informer.ready.set()
    assert not cluster.ready()  # DaemonSets not listed yet
    cluster.daemonset_cache.failures = 1  # e.g. 403: the chart's RBAC lacks daemonsets
    assert cluster.ready()
    assert cluster.daemonset_pods() is None
