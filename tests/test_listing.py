"""One-shot commands read every pod and node in one list, decoded to the fields the
autoscaler's records keep (`gibbous.listing`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from gibbous.core.podmodel.slim import slim_node, slim_pod
from gibbous.listing import decode_nodes, decode_pods, list_nodes, list_pods

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_pod() -> dict[str, Any]:
    pod: dict[str, Any] = json.loads((FIXTURES / "admissionreview_pod_create.json").read_text())[
        "request"
    ]["object"]
    return pod


def every_rule_field_pod() -> dict[str, Any]:
    """The fixture pod with every field a scheduling rule or the lifecycle reads."""
    pod = copy.deepcopy(fixture_pod())
    pod["metadata"] |= {
        "name": "rich",
        "namespace": "team-a",
        "uid": "uid-rich",
        "resourceVersion": "7",
        "deletionTimestamp": "2026-12-06T10:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"},
    }
    pod["spec"] |= {
        "nodeName": "node-1",
        "priority": 1000,
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "zone"}
                ]
            }
        },
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
        ],
        "schedulingGates": [{"name": "gate"}],
        "overhead": {"cpu": "250m"},
        "resources": {"requests": {"cpu": "1"}},
        "runtimeClassName": "kata",
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "image": "x", "env": [{"name": "A"}]}
        ],
    }
    pod["status"] = {
        "phase": "Running",
        "nominatedNodeName": "node-2",
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}],
        "containerStatuses": [{"name": "trainer", "ready": True}],
    }
    return pod


def test_pods_keep_what_the_autoscaler_keeps_and_nothing_it_never_reads() -> None:
    whole = [fixture_pod(), every_rule_field_pod()]
    decoded = decode_pods(json.dumps({"kind": "PodList", "items": whole}).encode())
    assert [slim_pod(pod) for pod in decoded] == [slim_pod(pod) for pod in whole]
    for pod in decoded:
        assert "managedFields" not in pod["metadata"]
        assert "volumes" not in pod["spec"]
        assert all(
            set(c) <= {"name", "resources", "restartPolicy"} for c in pod["spec"]["containers"]
        )
    # The fixture's trainer container asks for 2 CPUs, 12Gi and one GPU.
    assert decoded[0]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "2",
        "memory": "12Gi",
        "nvidia.com/gpu": "1",
    }
    assert "containerStatuses" not in decoded[1]["status"]


def test_nodes_keep_what_the_autoscaler_keeps() -> None:
    whole = json.loads((FIXTURES / "extender_filter_args_full.json").read_text())["Nodes"]
    decoded = decode_nodes(json.dumps(whole).encode())
    assert [slim_node(node) for node in decoded] == [slim_node(node) for node in whole["items"]]
    assert decoded[0]["metadata"]["name"] == "ip-10-0-12-34.ec2.internal"
    assert decoded[0]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]


def test_a_list_the_typed_decoder_refuses_is_read_whole() -> None:
    odd = {"metadata": {"name": "odd", "namespace": "default"}, "spec": {"containers": "one"}}
    items = [fixture_pod(), odd]
    assert decode_pods(json.dumps({"items": items}).encode()) == items
    assert decode_pods(b'{"items": null}') == []


class Reply:
    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document).encode()


class RecordingCore:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list_pod_for_all_namespaces(self, **arguments: Any) -> Reply:
        self.calls.append(("pods", arguments))
        return Reply({"items": [fixture_pod()]})

    def list_node(self, **arguments: Any) -> Reply:
        self.calls.append(("nodes", arguments))
        return Reply({"items": []})


def test_lists_are_asked_of_the_watch_cache_in_one_request() -> None:
    core = RecordingCore()
    assert [pod["metadata"]["generateName"] for pod in list_pods(core, "status.phase!=Failed")] == [
        fixture_pod()["metadata"]["generateName"]
    ]
    assert list_nodes(core) == []
    assert core.calls == [
        (
            "pods",
            {
                "field_selector": "status.phase!=Failed",
                "resource_version": "0",
                "_preload_content": False,
            },
        ),
        ("nodes", {"resource_version": "0", "_preload_content": False}),
    ]
