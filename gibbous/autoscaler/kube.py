"""The loop's view of the API server: list + watch caches of pods, nodes and our
`NodeCostEstimate` events, and the few writes it makes (events, gate release).

Reads come from the caches only (no per-pod polling). Writes are small: one Event per pod
and reason, and one JSON Patch per released pod, guarded by a `test` of its gates.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kubernetes import client

from gibbous.core import keys
from gibbous.core.mutation import plan_release
from gibbous.core.pods import Pod, name_of, namespace_of, uid_of
from gibbous.kubecache import Informer

log = logging.getLogger("gibbous.autoscaler")

COMPONENT = "gibbous-autoscaler"


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeCluster:
    def __init__(self, api: client.ApiClient, *, identity: str = COMPONENT) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.identity = identity
        self.pod_cache = Informer(self.core.list_pod_for_all_namespaces, name="pods")
        self.node_cache = Informer(self.core.list_node, name="nodes")
        self.event_cache = Informer(
            self.core.list_event_for_all_namespaces,
            name="estimate-events",
            field_selector=f"reason={keys.EVENT_NODE_COST_ESTIMATE}",
        )
        self.informers = (self.pod_cache, self.node_cache, self.event_cache)

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()

    def ready(self) -> bool:
        return all(informer.ready.is_set() for informer in self.informers)

    def wait_ready(self, timeout_s: float) -> bool:
        return all(informer.wait_ready(timeout_s) for informer in self.informers)

    # --- the Cluster protocol --------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return self.pod_cache.values()

    def nodes(self) -> list[dict[str, Any]]:
        return self.node_cache.values()

    def pods_with_event(self, reason: str) -> frozenset[str]:
        if reason != keys.EVENT_NODE_COST_ESTIMATE:
            return frozenset()
        return frozenset(
            str((event.get("involvedObject") or {}).get("uid") or "")
            for event in self.event_cache.values()
        )

    def emit_event(self, pod: Pod, reason: str, message: str, *, warning: bool) -> None:
        stamp = _now_rfc3339()
        namespace = namespace_of(pod)
        body = {
            "metadata": {"generateName": f"{name_of(pod)}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": name_of(pod),
                "uid": uid_of(pod),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.core.create_namespaced_event(namespace, body)

    def release_pod(self, pod: Pod, hostname: str | None) -> None:
        operations = plan_release(pod, hostname)
        if not operations:
            return
        # The client picks the patch type from the body: a list is sent as a JSON Patch.
        self.core.patch_namespaced_pod(name_of(pod), namespace_of(pod), operations)
        log.info(
            "released %s/%s%s",
            namespace_of(pod),
            name_of(pod),
            f" to {hostname}" if hostname else "",
        )
