"""The autoscaler's DaemonSet cache against a real API server: a DaemonSet's template is
described from the list and each watch event, offers are sized with it, and a template
change or a deletion reaches the offers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.kube import KubeCluster
from gibbous.core.choice.daemonsets import DaemonSetPod
from gibbous.core.choice.selection import build_offers
from tests.e2e.conftest import eventually, make_namespace
from tests.factories import catalog, config

pytestmark = pytest.mark.e2e

NAMESPACE = "gibbous-daemonsets-e2e"


def agent(cpu: str) -> dict[str, Any]:
    labels = {"app": "agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "agent",
                            "image": "registry.k8s.io/pause:3.9",
                            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def cluster(api: client.ApiClient) -> Iterator[KubeCluster]:
    make_namespace(api, NAMESPACE)
    watched = KubeCluster(api)
    watched.start()
    yield watched
    watched.stop()


def agent_cpu(cluster: KubeCluster) -> int | None:
    described = cluster.daemonset_pods() or ()
    found = [d for d in described if d.name == f"{NAMESPACE}/agent"]
    return found[0].requests.cpu_millis if found else None


def test_a_daemonsets_requests_reach_the_offers_and_follow_its_changes(
    api: client.ApiClient, cluster: KubeCluster
) -> None:
    apps = client.AppsV1Api(api)
    assert eventually(cluster.ready, what="caches listed")
    apps.create_namespaced_daemon_set(NAMESPACE, agent("300m"))
    eventually(lambda: agent_cpu(cluster) == 300, what="the DaemonSet described")

    cfg = config(cloudProvider="aws", nodeOverhead={"reservation": "none", "evictionMemory": 0})
    types = [t for t in catalog("aws") if t.name == "m5.xlarge"]  # 4 vCPU, 16 GiB
    described = cluster.daemonset_pods()
    assert described is not None and all(isinstance(d, DaemonSetPod) for d in described)
    others = sum(d.requests.cpu_millis for d in described if d.name != f"{NAMESPACE}/agent")
    (on_demand, _spot) = build_offers(types, cfg, described)
    # 4000m minus the agent's 300m and whatever DaemonSets the control plane already has
    assert on_demand.allocatable.cpu_millis == 4000 - 300 - others

    apps.patch_namespaced_daemon_set(
        "agent",
        NAMESPACE,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "agent", "resources": {"requests": {"cpu": "500m"}}}
                        ]
                    }
                }
            }
        },
    )
    eventually(lambda: agent_cpu(cluster) == 500, what="the template change described")
    apps.delete_namespaced_daemon_set("agent", NAMESPACE)
    eventually(
        lambda: agent_cpu(cluster) is None and cluster.daemonset_pods() is not None,
        what="the DaemonSet gone",
    )
