"""Cache records keep everything the rules read: each rule gives the same answer on the
record as on the object the API sent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from gibbous.core import keys
from gibbous.core.lifecycle.intake import decide_intake
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.placement import node_view
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.podmodel.pods import pod_requests
from gibbous.core.podmodel.podtopology import placed_pod_topology
from gibbous.core.podmodel.slim import slim_node, slim_pod
from gibbous.simulation.world import unschedulable_status
from tests.factories import config, make_pod

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "admissionreview_pod_create.json").read_text()
)["request"]["object"]


def api_pods() -> list[dict[str, Any]]:
    fixture = copy.deepcopy(FIXTURE)
    fixture["metadata"] |= {"name": "web-1", "uid": "u1", "resourceVersion": "7"}
    fixture["metadata"]["labels"]["elotl-luna"] = "true"
    fixture["status"] = unschedulable_status("0/3 nodes are available")
    rich = make_pod("rich", cpu="1", memory="1Gi", gpus=1, labels={"app": "rich"})
    rich["spec"] |= {
        "initContainers": [
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "init", "resources": {"requests": {"cpu": "3"}}, "env": [{"name": "X"}]},
        ],
        "overhead": {"cpu": "250m", "memory": "120Mi"},
        "resources": {"requests": {"cpu": "4"}},
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": "rich"}},
                        "topologyKey": keys.HOSTNAME,
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": keys.ZONE,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "rich"}},
            }
        ],
        "schedulingGates": [{"name": keys.PROVISIONING_GATE}],
        "priority": 7,
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    rich["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    rich["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}" * 500
    rich["metadata"]["annotations"][keys.INSTANCE_OFFERINGS] = "spot,on-demand"
    return [fixture, rich]


def test_pod_rules_read_the_record_as_the_object() -> None:
    cfg = config()
    for pod in api_pods():
        record = slim_pod(pod)
        assert pod_requests(record) == pod_requests(pod)
        assert decide_intake(record, cfg, 0.0) == decide_intake(pod, cfg, 0.0)
        assert describe_pod(record, cfg) == describe_pod(pod, cfg)
        assert placed_pod_topology(record) == placed_pod_topology(pod)
        text = json.dumps(record)
        assert "managedFields" not in text and "last-applied" not in text
        assert "env" not in text and "volumes" not in text


def test_node_rules_read_the_record_as_the_object() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "resourceVersion": "3",
            "labels": {keys.INSTANCE_TYPE: "m5.large", keys.ZONE: "us-west-2a"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {
            "providerID": "aws:///us-west-2a/i-1",
            "taints": [{"key": "a", "effect": "NoSchedule"}],
        },
        "status": {
            "allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"},
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "29"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "x"}],
            "images": [{"names": ["registry/image:tag"], "sizeBytes": 1}] * 50,
        },
    }
    record = slim_node(node)
    assert node_view(record) == node_view(node)
    assert "images" not in json.dumps(record)


def test_cluster_pods_aggregates_follow_every_change() -> None:
    # The incremental aggregates equal a fresh computation after any sequence of changes.
    cfg = config()
    index = ClusterPods(cfg.designation)
    pods = {}
    for i in range(12):
        pod = make_pod(f"p{i}", cpu=f"{100 * (i + 1)}m", managed=i % 3 != 0)
        if i % 4 == 1:
            pod["metadata"]["annotations"][keys.DO_NOT_EVICT] = "true"
        pod["metadata"]["resourceVersion"] = "1"
        pods[f"default/p{i}"] = pod
    index.sync(pods.values())
    for step in range(30):
        key = f"default/p{step % 12}"
        pod = copy.deepcopy(pods.get(key) or make_pod(f"p{step % 12}", cpu="50m"))
        pod["metadata"]["resourceVersion"] = str(step + 2)
        if step % 4 == 0:
            pod["spec"]["nodeName"] = f"n{step % 3}"
        elif step % 4 == 1:
            pod["status"] = {"phase": "Succeeded"}
        elif step % 4 == 2:
            pod["spec"].pop("nodeName", None)
        pods[key] = pod
        if step % 7 == 6:
            del pods[key]
        index.sync(pods.values())
        fresh = ClusterPods(cfg.designation)
        fresh.sync(pods.values())
        assert index.used == fresh.used
        assert index.managed_used == fresh.managed_used
        assert index.blocked == fresh.blocked
        assert index.managed_on == fresh.managed_on
        assert set(index.unbound) == set(fresh.unbound)
        assert {n: set(p) for n, p in index.on_node.items()} == {
            n: set(p) for n, p in fresh.on_node.items()
        }
