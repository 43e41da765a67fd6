"""List + watch caches of Kubernetes objects (shared by the extender and the autoscaler).

An `Informer` lists once, a page at a time (ready from then on), then watches from the
list's resourceVersion; on 410 Gone (the version expired) it lists again. Each object is
decoded once per event by `decode` (e.g. `slim_pod`: only the fields Gibbous reads) and
kept keyed `namespace/name` (or `name` when cluster-scoped); `on_change` sees the object as
the API sent it. Errors other than 410 are logged and retried with back-off; the cache
keeps serving what it has.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("gibbous.kubecache")


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def key_only(_: dict[str, Any]) -> bool:
    """A decoder that keeps nothing of the object but that it exists (for caches whose
    `on_change` keeps what it needs, such as the extender's pod ledger)."""
    return True


class Informer:
    def __init__(
        self,
        list_function: Callable[..., Any],
        *,
        name: str,
        on_change: Callable[[str, dict[str, Any] | None], None] | None = None,
        decode: Callable[[dict[str, Any]], Any] | None = None,
        on_stored: Callable[[str, Any | None], None] | None = None,
        watch_timeout_s: int = 300,
        page_size: int = 500,
        **list_arguments: Any,
    ) -> None:
        self.list_function = list_function
        self.list_arguments = list_arguments
        self.decode = decode
        self.on_stored = on_stored  # told the decoded object (None when gone)
        self.page_size = page_size
        self.decoded = 0  # objects decoded (one per list item and watch event)
        self.name = name
        self.on_change = on_change
        self.watch_timeout_s = watch_timeout_s
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.resource_version = ""
        self.relists = 0
        self.callback_errors = 0
        self.failures = 0  # list or watch requests that failed (other than 410 Gone)

    def get(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.items.get(key)

    def values(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.items.values())

    def _decoded(self, obj: dict[str, Any]) -> Any:
        self.decoded += 1
        return obj if self.decode is None else self.decode(obj)

    def _set(self, key: str, obj: dict[str, Any] | None) -> None:
        decoded = None if obj is None else self._decoded(obj)
        with self.lock:
            if decoded is None:
                self.items.pop(key, None)
            else:
                self.items[key] = decoded
        self._tell(key, obj, decoded)

    def __len__(self) -> int:
        return len(self.items)

    def _tell(self, key: str, obj: dict[str, Any] | None, decoded: Any | None) -> None:
        """Pass a change on; a failure there is that object's, never the watch's (a watch
        that stopped on one bad object would leave the whole cache stale)."""
        try:
            if self.on_change is not None:
                self.on_change(key, obj)
            if self.on_stored is not None:
                self.on_stored(key, decoded)
        except Exception:
            self.callback_errors += 1
            log.exception("%s: handling the change of %s failed; the watch goes on", self.name, key)

    def list_once(self) -> None:
        """List in pages (`limit` + `continue`): each page is decoded and dropped before the
        next is read, so neither this process nor the API server holds the whole list as
        JSON at once."""
        fresh: dict[str, Any] = {}
        token = ""
        while True:
            arguments = dict(self.list_arguments, limit=self.page_size)
            if token:
                arguments["_continue"] = token
            response = self.list_function(_preload_content=False, **arguments)
            document = json.loads(response.data)
            del response
            for item in document.get("items") or []:
                key = object_key(item)
                fresh[key] = decoded = self._decoded(item)
                self._tell(key, item, decoded)
            meta = document.get("metadata") or {}
            token = str(meta.get("continue") or "")
            version = str(meta.get("resourceVersion") or "")
            del document
            if not token:
                break
        with self.lock:
            gone = set(self.items) - set(fresh)
            self.items = fresh
        for key in gone:
            self._tell(key, None, None)
        self.resource_version = version
        self.relists += 1
        if self.relists == 1:
            # The first list is most of what the process will ever hold, and it lives long:
            # keep the cyclic collector from rescanning it (full collections of a 5,000-node
            # cache were the extender's worst latencies).
            gc.freeze()
        self.ready.set()

    def watch_once(self) -> None:
        """One watch request; returns when it times out. Raises ApiException(410) when expired."""
        stream = watch.Watch().stream(
            self.list_function,
            resource_version=self.resource_version,
            timeout_seconds=self.watch_timeout_s,
            allow_watch_bookmarks=True,
            **self.list_arguments,
        )
        for event in stream:
            if self.stopped.is_set():
                return
            kind = event.get("type")
            raw = event.get("raw_object") or {}
            if kind == "ERROR":
                if raw.get("code") == 410:
                    raise ApiException(status=410, reason="Gone")
                log.warning("%s watch error: %s", self.name, raw.get("message"))
                return
            version = (raw.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            if kind in ("ADDED", "MODIFIED"):
                self._set(object_key(raw), raw)
            elif kind == "DELETED":
                self._set(object_key(raw), None)

    def run(self) -> None:
        delay = 0.5
        listed = False
        while not self.stopped.is_set():
            try:
                if not listed:
                    self.list_once()
                    listed = True
                self.watch_once()
                delay = 0.5
            except ApiException as error:
                if error.status == 410:
                    log.info("%s watch expired (410 Gone); listing again", self.name)
                    listed = False
                    continue
                self.failures += 1
                log.warning(
                    "%s list/watch failed (%s); retrying in %.1fs", self.name, error.reason, delay
                )
                self.stopped.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception as error:
                self.failures += 1
                log.warning("%s list/watch failed (%s); retrying in %.1fs", self.name, error, delay)
                self.stopped.wait(delay)
                delay = min(delay * 2, 30.0)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
        thread.start()
        return thread

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return self.ready.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.stopped.set()


class CacheMetrics(Collector):
    """`<prefix>_cache_objects{cache}` (objects held) and `<prefix>_cache_decodes_total{cache}`
    (objects decoded: one per list item and watch event), read when scraped."""

    def __init__(self, prefix: str, informers: Sequence[Informer]) -> None:
        self.prefix = prefix
        self.informers = informers

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        held = GaugeMetricFamily(
            f"{self.prefix}_cache_objects", "Objects held in a list+watch cache", labels=["cache"]
        )
        decodes = CounterMetricFamily(
            f"{self.prefix}_cache_decodes",
            "Objects decoded into a cache (one per list item and watch event)",
            labels=["cache"],
        )
        for informer in self.informers:
            held.add_metric([informer.name], len(informer))
            decodes.add_metric([informer.name], informer.decoded)
        yield held
        yield decodes


def register_cache_metrics(
    registry: CollectorRegistry, prefix: str, informers: Sequence[Informer]
) -> None:
    registry.register(CacheMetrics(prefix, informers))
