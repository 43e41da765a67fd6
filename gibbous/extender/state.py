"""What the extender knows about the cluster: nodes by name, pod requests per node,
and which bin-select pods are still waiting for their node."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from kubernetes import client

from gibbous.core.errors import GibbousError
from gibbous.core.planning.placement import NodeView
from gibbous.core.podmodel.pods import node_name_of, pod_requests, uid_of
from gibbous.core.podmodel.resources import Resources
from gibbous.core.podmodel.slim import slim_node
from gibbous.kubecache import Informer, key_only
from gibbous.nodeviews import ViewCache

log = logging.getLogger("gibbous.extender")


class ClusterView(Protocol):
    def ready(self) -> bool: ...
    def node(self, name: str) -> Mapping[str, Any] | None: ...
    def node_view(self, name: str) -> NodeView | None: ...
    def views_for(self, names: list[str]) -> tuple[list[NodeView], list[str]]: ...
    def used(self) -> Mapping[str, Resources]: ...
    def is_pending(self, pod_uid: str) -> bool: ...


@dataclass
class PodLedger:
    """Requests of bound pods per node, and the uids of pods not yet bound.

    Fed by pod events (informer callbacks), read by request handlers."""

    per_node: dict[str, Resources] = field(default_factory=dict)
    pods: dict[str, tuple[str, str, Resources]] = field(
        default_factory=dict
    )  # key -> (uid, node, requests)
    pending: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._used_view: Mapping[str, Resources] = MappingProxyType(self.per_node)

    def update(self, key: str, pod: Mapping[str, Any] | None) -> None:
        with self.lock:
            old = self.pods.pop(key, None)
            if old is not None:
                self.pending.discard(old[0])
                if old[1]:
                    self.per_node[old[1]] = self.per_node.get(old[1], Resources()) - old[2]
            if pod is None:
                return
            status = pod.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                return
            try:
                requests = pod_requests(pod)
            except GibbousError:
                requests = Resources()
            node = node_name_of(pod)
            self.pods[key] = (uid_of(pod), node, requests)
            if node:
                self.per_node[node] = self.per_node.get(node, Resources()) + requests
            else:
                self.pending.add(uid_of(pod))

    def used(self) -> Mapping[str, Resources]:
        """A read-only view, not a copy: prioritize reads it once per request, and single
        dict reads are atomic while the watch thread updates entries with new values."""
        return self._used_view

    def is_pending(self, pod_uid: str) -> bool:
        with self.lock:
            return pod_uid in self.pending


class _CachedNodes(ABC):
    """Node views from `self.cache`, loading raw nodes with `_load`; pod facts from `self.ledger`."""

    cache: ViewCache
    ledger: PodLedger

    @abstractmethod
    def _load(self, name: str) -> Mapping[str, Any] | None:
        """The raw Node object called `name`, if known."""

    def node(self, name: str) -> Mapping[str, Any] | None:
        return self._load(name)

    def node_view(self, name: str) -> NodeView | None:
        view = self.cache.get(name)
        if view is not None:
            return view
        node = self._load(name)
        return None if node is None else self.cache.view(node)

    def views_for(self, names: list[str]) -> tuple[list[NodeView], list[str]]:
        return self.cache.views_for(names, self._load)

    def used(self) -> Mapping[str, Resources]:
        return self.ledger.used()

    def is_pending(self, pod_uid: str) -> bool:
        return self.ledger.is_pending(pod_uid)


@dataclass
class StaticView(_CachedNodes):
    """A fixed cluster (tests and benchmarks)."""

    nodes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    ledger: PodLedger = field(default_factory=PodLedger)
    cache: ViewCache = field(default_factory=ViewCache)

    def ready(self) -> bool:
        return True

    def _load(self, name: str) -> Mapping[str, Any] | None:
        return self.nodes.get(name)


class InformerView(_CachedNodes):
    """Nodes and pods from list+watch caches of the API server."""

    def __init__(self, api_client: Any, *, time_slices: int = 1) -> None:
        core = client.CoreV1Api(api_client)
        self.ledger = PodLedger()
        # Nodes read only in part, counted when their problems change (the autoscaler
        # writes the Warning events; one reporter per object).
        self.unreadable = 0
        self.cache = ViewCache(time_slices, on_problems=self._unreadable)
        self.nodes = Informer(
            core.list_node, name="nodes", on_change=self._node_changed, decode=slim_node
        )
        # The ledger keeps what the extender needs of a pod; the cache only its key.
        self.pods = Informer(
            core.list_pod_for_all_namespaces,
            name="pods",
            on_change=self.ledger.update,
            decode=key_only,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )

    @property
    def informers(self) -> tuple[Informer, Informer]:
        return self.nodes, self.pods

    def start(self) -> None:
        self.nodes.start()
        self.pods.start()

    def stop(self) -> None:
        self.nodes.stop()
        self.pods.stop()

    def ready(self) -> bool:
        return self.nodes.ready.is_set() and self.pods.ready.is_set()

    def _unreadable(self, node: Mapping[str, Any], view: NodeView) -> None:
        self.unreadable += 1
        log.warning("node %s read in part: %s", view.name, "; ".join(view.problems))

    def _node_changed(self, key: str, node: Mapping[str, Any] | None) -> None:
        if node is None:
            self.cache.forget(key)
        else:
            self.cache.view(node)  # build now, off the request path

    def _load(self, name: str) -> Mapping[str, Any] | None:
        return self.nodes.get(name)
