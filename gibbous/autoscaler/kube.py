"""The loop's view of the API server: list + watch caches of pods, nodes, DaemonSets and
our `NodeCostEstimate` events, and the few writes it makes (events, gate release).

Reads come from the caches only (no per-pod polling). Writes are small: one Event per pod
and reason, and one JSON Patch per released pod, guarded by a `test` of its gates.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.autoscaler.lifecycle import Eviction
from gibbous.core import keys
from gibbous.core.admission.mutation import plan_release
from gibbous.core.choice.daemonsets import DaemonSetPod, describe_daemonset
from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.pods import Pod, name_of, namespace_of, uid_of
from gibbous.core.podmodel.slim import slim_node, slim_pod
from gibbous.kubeapi import read_lease, rfc3339
from gibbous.kubecache import Informer

log = logging.getLogger("gibbous.autoscaler")

COMPONENT = "gibbous-autoscaler"


def _slim_event(event: dict[str, Any]) -> dict[str, Any]:
    """What `pods_with_event` reads of an Event."""
    involved = event.get("involvedObject") or {}
    return {"involvedObject": {"uid": involved.get("uid")}, "reason": event.get("reason")}


def _describe_daemonset(daemonset: dict[str, Any]) -> DaemonSetPod | GibbousError:
    described = describe_daemonset(daemonset)
    if isinstance(described, GibbousError):
        log.warning("%s; new nodes are sized without it", described)
    return described


class KubeCluster:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        identity: str = COMPONENT,
        server_version: tuple[int, int] | None = None,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.identity = identity
        # Eviction is served as policy/v1 from 1.22; older servers (the v1.20 test control
        # plane) take policy/v1beta1 only.
        self.eviction_version = (
            "policy/v1" if server_version is None or server_version >= (1, 22) else "policy/v1beta1"
        )
        # Pod changes wait here for the loop, which reads each once (its pod facts).
        self._changes: collections.deque[tuple[str, dict[str, Any] | None]] = collections.deque()
        self.pod_cache = Informer(
            self.core.list_pod_for_all_namespaces,
            name="pods",
            decode=slim_pod,
            on_stored=lambda key, pod: self._changes.append((key, pod)),
        )
        self.node_cache = Informer(self.core.list_node, name="nodes", decode=slim_node)
        self.event_cache = Informer(
            self.core.list_event_for_all_namespaces,
            name="estimate-events",
            decode=_slim_event,
            field_selector=f"reason={keys.EVENT_NODE_COST_ESTIMATE}",
        )
        # DaemonSet pod templates, described once per DaemonSet version: new nodes are
        # sized with room for the ones that will run there.
        self.apps = client.AppsV1Api(api)
        self._daemonsets_lock = threading.Lock()
        self._described_daemonsets: dict[str, DaemonSetPod | GibbousError] = {}
        self._daemonset_pods: tuple[DaemonSetPod, ...] | None = None
        self.daemonset_cache = Informer(
            self.apps.list_daemon_set_for_all_namespaces,
            name="daemonsets",
            decode=_describe_daemonset,
            on_stored=self._daemonset_stored,
        )
        self.informers = (self.pod_cache, self.node_cache, self.event_cache, self.daemonset_cache)

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()

    def ready(self) -> bool:
        """Pods, nodes and events listed, and DaemonSets listed or found unreadable (new
        nodes are then sized with the configured overhead: an install whose RBAC lacks
        `daemonsets` still scales)."""
        listed = all(i.ready.is_set() for i in self.informers if i is not self.daemonset_cache)
        daemonsets = self.daemonset_cache
        return listed and (daemonsets.ready.is_set() or daemonsets.failures > 0)

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _daemonset_stored(self, key: str, described: DaemonSetPod | GibbousError | None) -> None:
        """A DaemonSet changed: forget the described set when its template's description
        did (a status update describes the same pod)."""
        with self._daemonsets_lock:
            if self._described_daemonsets.get(key) == described:
                return
            if described is None:
                self._described_daemonsets.pop(key, None)
            else:
                self._described_daemonsets[key] = described
            self._daemonset_pods = None

    def daemonset_pods(self) -> tuple[DaemonSetPod, ...] | None:
        """What the cluster's DaemonSets run, described; None until they are listed. The
        same tuple while none changed, so the loop rebuilds its offers only on a change."""
        if not self.daemonset_cache.ready.is_set():
            return None
        with self._daemonsets_lock:
            if self._daemonset_pods is None:
                self._daemonset_pods = tuple(
                    d for d in self._described_daemonsets.values() if isinstance(d, DaemonSetPod)
                )
            return self._daemonset_pods

    # --- the Cluster protocol --------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return self.pod_cache.values()

    def pod_changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        """The pod changes since the last call, oldest first (records, None when gone)."""
        taken = []
        while self._changes:
            taken.append(self._changes.popleft())
        return taken

    def nodes(self) -> list[dict[str, Any]]:
        return self.node_cache.values()

    def pods_with_event(self, reason: str) -> frozenset[str]:
        if reason != keys.EVENT_NODE_COST_ESTIMATE:
            return frozenset()
        return frozenset(
            str((event.get("involvedObject") or {}).get("uid") or "")
            for event in self.event_cache.values()
        )

    def emit_event(
        self, obj: Pod, reason: str, message: str, *, warning: bool, kind: str = "Pod"
    ) -> None:
        stamp = rfc3339()
        # Events about cluster-scoped objects (Nodes) live in `default`, as kubelet's do.
        namespace = namespace_of(obj) if kind == "Pod" else "default"
        involved = {"apiVersion": "v1", "kind": kind, "name": name_of(obj), "uid": uid_of(obj)}
        if kind == "Pod":
            involved["namespace"] = namespace
        body = {
            "metadata": {"generateName": f"{name_of(obj)}.", "namespace": namespace},
            "involvedObject": involved,
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

    def repair_node(
        self, name: str, labels: Mapping[str, str], taints: Sequence[Mapping[str, str]]
    ) -> None:
        if labels:
            self.core.patch_node(name, {"metadata": {"labels": dict(labels)}})
        if taints:
            wanted = [dict(t) for t in taints]

            def add(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
                # A taint is identified by key and effect; the API refuses two alike.
                there = {(t.get("key"), t.get("effect")) for t in current}
                return current + [t for t in wanted if (t["key"], t["effect"]) not in there]

            self._replace_taints(name, add)

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return read_lease(self.api, namespace, name)

    def delete_pod(self, pod: Pod) -> None:
        try:
            self.core.delete_namespaced_pod(name_of(pod), namespace_of(pod))
        except ApiException as error:
            if error.status != 404:
                raise

    # --- node lifecycle ------------------------------------------------------------------------

    def cordon(self, node: str) -> None:
        self.core.patch_node(node, {"spec": {"unschedulable": True}})

    def evict(self, pod: Pod) -> Eviction:
        body = {
            "apiVersion": self.eviction_version,
            "kind": "Eviction",
            "metadata": {"name": name_of(pod), "namespace": namespace_of(pod)},
        }
        try:
            self.core.create_namespaced_pod_eviction(name_of(pod), namespace_of(pod), body)
        except ApiException as error:
            if error.status == 429:
                return Eviction.BLOCKED
            if error.status == 404:
                return Eviction.GONE
            raise
        return Eviction.EVICTED

    def set_hot_taint(self, node: str, value: str) -> None:
        ours = {"key": keys.HOT_NODE_TAINT, "value": value, "effect": "NoSchedule"}
        self._replace_taints(
            node,
            lambda current: (
                [t for t in current if t.get("key") != keys.HOT_NODE_TAINT]
                + ([ours] if value else [])
            ),
        )

    def _replace_taints(
        self, node: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    ) -> None:
        # The taint list is atomic: read it, change it, write the whole list back guarded
        # by the version read. On a conflict (someone wrote in between) read again and retry,
        # as client-go's RetryOnConflict does.
        for attempt in range(5):
            current = self.api.sanitize_for_serialization(self.core.read_node(node))
            taints = change(list((current.get("spec") or {}).get("taints") or []))
            try:
                self.core.patch_node(
                    node,
                    {
                        "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                        "spec": {"taints": taints or None},
                    },
                )
                return
            except ApiException as error:
                if error.status != 409 or attempt == 4:
                    raise

    def annotate_node(self, node: str, key: str, value: str) -> None:
        self.core.patch_node(node, {"metadata": {"annotations": {key: value}}})

    def delete_node(self, node: str) -> None:
        try:
            self.core.delete_node(node)
        except ApiException as error:
            if error.status != 404:
                raise

    # --- the status object ------------------------------------------------------------------

    def put_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Replace the ConfigMap's data, creating it on first write (configmaps get and
        update on that name, create in the namespace)."""
        try:
            current = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = {
                "metadata": {
                    "name": name,
                    "labels": {"app.kubernetes.io/managed-by": "gibbous-autoscaler"},
                },
                "data": dict(data),
            }
            self.core.create_namespaced_config_map(namespace, body)
            return
        current.data = dict(data)
        self.core.replace_namespaced_config_map(name, namespace, current)

    def _metrics(self, plural: str) -> list[dict[str, Any]] | None:
        try:
            document = self.custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", plural)
        except ApiException as error:
            log.debug("metrics.k8s.io %s unavailable: %s", plural, error.reason)
            return None
        items = document.get("items") if isinstance(document, dict) else None
        return list(items) if isinstance(items, list) else None

    def node_metrics(self) -> list[dict[str, Any]] | None:
        return self._metrics("nodes")

    def pod_metrics(self) -> list[dict[str, Any]] | None:
        return self._metrics("pods")
