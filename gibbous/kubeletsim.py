"""A kubelet's visible behaviour, for Nodes that have no kubelet (the kwok provider, the EC2
emulator's node agent): node status and Ready condition, the `kube-node-lease` heartbeat,
pods bound to the node started, and pods being deleted finished once their grace period is
over, as the kubelet does (it deletes them with grace 0 once their containers stopped).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.core import keys
from gibbous.kubeapi import rfc3339


def node_status(
    capacity: Mapping[str, str],
    allocatable: Mapping[str, str],
    *,
    ready: bool,
    now: float,
    architecture: str = "amd64",
    kubelet: str = "kwok",
) -> dict[str, Any]:
    """The status a kubelet reports: capacity, allocatable, the Ready condition, nodeInfo."""
    stamp = rfc3339(now)
    return {
        "capacity": dict(capacity),
        "allocatable": dict(allocatable),
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": f"{kubelet}: node is ready" if ready else f"{kubelet}: booting",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        ],
        "nodeInfo": {
            "kubeletVersion": kubelet,
            "architecture": architecture,
            "operatingSystem": "linux",
            "containerRuntimeVersion": kubelet,
            "kernelVersion": kubelet,
            "osImage": kubelet,
            "kubeProxyVersion": kubelet,
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def renew_lease(coordination: client.CoordinationV1Api, name: str, uid: str, now: float) -> None:
    """Keep the node's `kube-node-lease` Lease fresh, as the kubelet's heartbeat does."""
    # MicroTime must carry a fractional part; the client drops a zero one when it
    # re-serialises the body, so keep it at least one microsecond.
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    stamp = moment.replace(microsecond=max(moment.microsecond, 1))
    body = {
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp},
    }
    try:
        coordination.patch_namespaced_lease(name, "kube-node-lease", {"spec": body["spec"]})
    except ApiException as error:
        if error.status != 404:
            raise
        coordination.create_namespaced_lease("kube-node-lease", body)


def run_pods(core: client.CoreV1Api, node_name: str, now: float) -> None:
    """Pods bound to the node start Running (Ready, with container statuses)."""
    pods = core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node_name},status.phase=Pending"
    ).items
    stamp = rfc3339(now)
    for pod in pods:
        status = {
            "phase": "Running",
            "startTime": stamp,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                {"type": "Ready", "status": "True", "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            ],
            # What kubectl's READY column counts.
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}},
                }
                for container in pod.spec.containers or []
            ],
        }
        core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )


def finish_deletions(core: client.CoreV1Api, node_name: str, now: float) -> None:
    """Pods on the node whose deletion was asked for and whose grace period is over are
    removed, as a kubelet does once their containers have stopped (with grace 0: the
    grace was already served)."""
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node_name}").items
    for pod in pods:
        deleting = pod.metadata.deletion_timestamp
        if deleting is None or deleting.timestamp() > now:
            continue
        try:
            core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )
        except ApiException as error:
            if error.status != 404:
                raise


def clear_not_ready_taint(core: client.CoreV1Api, node: Any) -> None:
    """Take `node.kubernetes.io/not-ready` off a Ready node, as the node lifecycle
    controller does (the test control plane runs without it: no kubelets to watch)."""
    taints = [t.to_dict() for t in node.spec.taints or []]
    if not any(t["key"] == keys.NOT_READY_TAINT for t in taints):
        return
    kept = [
        {k: v for k, v in t.items() if v is not None and k != "time_added"}
        for t in taints
        if t["key"] != keys.NOT_READY_TAINT
    ]
    # The taint list is atomic: replace it whole, guarded by the version we hold; if
    # someone wrote in between, the next heartbeat tries again.
    try:
        core.patch_node(
            node.metadata.name,
            {
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": kept or None},
            },
        )
    except ApiException as error:
        if error.status != 409:
            raise
