"""What the API server says happened: Nodes and the race's Pods, watched from outside both
autoscalers, each change stamped with the observer's clock (seconds since the trace began:
creationTimestamp has whole seconds only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from bench.race.metrics import NodeRecord, Observation, PodRecord
from bench.race.replay import NAMESPACE

# A node is being taken away once it is cordoned, carries one of these taints or is deleting:
# Gibbous cordons (spec.unschedulable), Karpenter taints karpenter.sh/disrupted:NoSchedule
# (pkg/apis/v1/taints.go, DisruptedNoScheduleTaint).
DRAIN_TAINTS = frozenset({"karpenter.sh/disrupted", "node.kubernetes.io/unschedulable"})


class Observer:
    def __init__(self, api: client.ApiClient, start: float) -> None:
        self.start = start
        self.nodes: dict[str, NodeRecord] = {}
        self.pods: dict[str, PodRecord] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        core = client.CoreV1Api(api)
        self._threads = [
            threading.Thread(
                target=self._follow, args=(core.list_node, {}, self._node), daemon=True
            ),
            threading.Thread(
                target=self._follow,
                args=(core.list_namespaced_pod, {"namespace": NAMESPACE}, self._pod),
                daemon=True,
            ),
        ]

    def begin(self) -> None:
        for thread in self._threads:
            thread.start()

    def now(self) -> float:
        return time.monotonic() - self.start

    def finish(self) -> Observation:
        end = self.now()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        if self.errors:
            raise self.errors[0]
        with self._lock:
            return Observation(end, dict(self.nodes), dict(self.pods))

    # --- watching ------------------------------------------------------------------------

    def _follow(
        self, lister: Callable[..., Any], kwargs: dict[str, Any], record: Callable[[str, Any], None]
    ) -> None:
        try:
            while not self._stop.is_set():
                listed = lister(**kwargs)
                for item in listed.items:
                    record("ADDED", item)
                self._vanished(record, {item.metadata.name for item in listed.items})
                version = listed.metadata.resource_version
                try:
                    for event in self._events(lister, kwargs, version):
                        record(event["type"], event["object"])
                except ApiException as error:
                    if error.status != 410:  # expired: list again
                        raise
        except BaseException as error:  # reported by finish()
            self.errors.append(error)

    def _events(
        self, lister: Callable[..., Any], kwargs: dict[str, Any], version: str
    ) -> Iterator[dict[str, Any]]:
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                lister, resource_version=version, timeout_seconds=5, **kwargs
            )
            for event in stream:
                if event["type"] == "ERROR":
                    raise ApiException(status=410)
                version = event["object"].metadata.resource_version
                yield event
                if self._stop.is_set():
                    return

    def _vanished(self, record: Callable[[str, Any], None], present: set[str]) -> None:
        """After a (re)list: what was alive and is not listed was deleted meanwhile."""
        t = self.now()
        with self._lock:
            records: list[NodeRecord | PodRecord] = list(
                self.nodes.values() if record == self._node else self.pods.values()
            )
            for gone in records:
                if gone.name not in present and gone.deleted_at is None:
                    gone.deleted_at = t

    def _node(self, kind: str, node: Any) -> None:
        t = self.now()
        name = node.metadata.name
        with self._lock:
            record = self.nodes.get(name)
            if record is None:
                record = self.nodes[name] = NodeRecord(name, t, dict(node.metadata.labels or {}))
            record.labels.update(node.metadata.labels or {})
            ready = any(
                c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])
            )
            if ready and record.ready_at is None:
                record.ready_at = t
            taints = {taint.key for taint in (node.spec.taints or [])}
            draining = (
                bool(node.spec.unschedulable)
                or bool(taints & DRAIN_TAINTS)
                or node.metadata.deletion_timestamp is not None
            )
            if draining and record.drained_at is None:
                record.drained_at = t
            if kind == "DELETED" and record.deleted_at is None:
                record.deleted_at = t

    def _pod(self, kind: str, pod: Any) -> None:
        t = self.now()
        uid = pod.metadata.uid
        with self._lock:
            record = self.pods.get(uid)
            if record is None:
                record = self.pods[uid] = PodRecord(pod.metadata.name, t)
            if pod.spec.node_name and record.bound_at is None:
                record.bound_at = t
                record.node = pod.spec.node_name
            if (
                pod.metadata.deletion_timestamp is not None or kind == "DELETED"
            ) and record.deleted_at is None:
                record.deleted_at = t
