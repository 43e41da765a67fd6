"""The node-lifecycle controller's tainting, as a stand-in that does it for every node:
`node.kubernetes.io/not-ready:NoSchedule` on every Node that is not Ready, off once it is.

Not kube-controller-manager's `nodelifecycle` itself: it also *removes* that taint from a
Node with no Ready condition at all, which is what both kwok providers' Nodes have for a
moment after their creation (Gibbous's provider creates the Node, then posts its status;
Karpenter's KWOK provider creates it with none). Raced with it, kube-scheduler bound pods to
either system's nodes seconds before they were Ready (smoke: 2 s into a 6 s boot). A kubelet
registers its Node with the taint already on; this keeps it there until the node is Ready.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

NOT_READY = "node.kubernetes.io/not-ready"


def wanted_taints(node: Any) -> list[dict[str, Any]] | None:
    """The node's taints as they should be, or None when they already are."""
    ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    taints = [
        {"key": t.key, "value": t.value, "effect": t.effect} for t in (node.spec.taints or [])
    ]
    tainted = any(t["key"] == NOT_READY and t["effect"] == "NoSchedule" for t in taints)
    if ready and tainted:
        return [t for t in taints if not (t["key"] == NOT_READY and t["effect"] == "NoSchedule")]
    if not ready and not tainted and node.metadata.deletion_timestamp is None:
        return [*taints, {"key": NOT_READY, "effect": "NoSchedule"}]
    return None


class NotReadyTaints:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="not-ready-taints", daemon=True)

    def begin(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                listed = self.core.list_node()
                for node in listed.items:
                    self._keep(node)
                version = listed.metadata.resource_version
                try:
                    while not self._stop.is_set():
                        for event in watch.Watch().stream(
                            self.core.list_node, resource_version=version, timeout_seconds=5
                        ):
                            if event["type"] == "ERROR":
                                raise ApiException(status=410)
                            version = event["object"].metadata.resource_version
                            if event["type"] != "DELETED":
                                self._keep(event["object"])
                except ApiException as error:
                    if error.status != 410:
                        raise
        except BaseException as error:  # reported by the race's health check
            self.errors.append(error)

    def _keep(self, node: Any) -> None:
        taints = wanted_taints(node)
        if taints is None:
            return
        patch = {
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        }
        try:
            self.core.patch_node(node.metadata.name, patch)
        except ApiException as error:
            if error.status not in (404, 409):  # gone, or changed: the next event decides
                raise
