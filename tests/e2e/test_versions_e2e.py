"""What depends on the Kubernetes version, on both releases the suite knows (the current one
and v1.20.2): whether scheduling gates are used, and which Eviction API drains speak."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.lifecycle import Eviction
from gibbous.kubeapi import SCHEDULING_GATES_SINCE, parse_version, supports_scheduling_gates
from tests.e2e.conftest import eventually, make_namespace
from tests.e2e.test_extender_e2e import node, register_node
from tests.factories import api_pod

pytestmark = pytest.mark.e2e
RELEASES = ("current", "1.20")


def running_and_ready() -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ],
        }
    }


def version_of(api: client.ApiClient) -> tuple[int, int]:
    info = client.VersionApi(api).get_code()
    version = parse_version(info.major, info.minor)
    assert version is not None
    return version


def test_gates_are_used_exactly_where_the_server_has_them(
    api: client.ApiClient, release: str
) -> None:
    version = version_of(api)
    assert (version >= (1, 30)) == (release == "current")
    assert supports_scheduling_gates(version) == (version >= SCHEDULING_GATES_SINCE)
    assert supports_scheduling_gates(version) == (release == "current")
    if release == "current":
        # The server keeps a gate it accepts; a 1.20 server would drop the field silently.
        make_namespace(api, "gates-kept")
        body = api_pod("gated", cpu="100m")
        body["spec"]["schedulingGates"] = [{"name": "gibbous.dev/provisioning"}]
        created = client.CoreV1Api(api).create_namespaced_pod("gates-kept", body)
        assert [g.name for g in created.spec.scheduling_gates] == ["gibbous.dev/provisioning"]


def test_drains_use_the_eviction_api_the_server_serves(api: client.ApiClient, release: str) -> None:
    version = version_of(api)
    cluster = KubeCluster(api, server_version=version)
    assert cluster.eviction_version == ("policy/v1" if release == "current" else "policy/v1beta1")
    namespace = "evictions"
    make_namespace(api, namespace)
    core = client.CoreV1Api(api)
    # A budget protects only running, Ready pods (a Pending pod may always be evicted), so
    # the pods run on a node, reported Ready as a kubelet would.
    register_node(api, node("evictions-node", {}))
    for name in ("free", "kept"):
        body = api_pod(name, cpu="100m", labels={"app": name})
        body["spec"]["nodeName"] = "evictions-node"
        core.create_namespaced_pod(namespace, body)
        core.patch_namespaced_pod_status(name, namespace, running_and_ready())
    budgets = DynamicClient(api).resources.get(
        api_version=cluster.eviction_version, kind="PodDisruptionBudget"
    )
    budgets.create(
        namespace=namespace,
        body={
            "apiVersion": cluster.eviction_version,
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "kept"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "kept"}}},
        },
    )
    eventually(
        lambda: budgets.get(name="kept", namespace=namespace).status.observedGeneration,
        what="the disruption controller to observe the budget",
    )
    free = api.sanitize_for_serialization(core.read_namespaced_pod("free", namespace))
    kept = api.sanitize_for_serialization(core.read_namespaced_pod("kept", namespace))
    assert cluster.evict(free) is Eviction.EVICTED
    assert cluster.evict(kept) is Eviction.BLOCKED  # 429 from the budget, never forced
    assert core.read_namespaced_pod("kept", namespace).metadata.deletion_timestamp is None
