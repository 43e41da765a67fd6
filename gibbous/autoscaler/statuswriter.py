"""Publishes the status object (`gibbous.core.lifecycle.statusreport`) to a ConfigMap,
off the loop's thread.

The loop hands over a snapshot at most every `interval_s` (taking one is a few references
and copies of the launches and decisions); this writer's thread reads the node views, computes
the document and writes it only when its content changed, or every `heartbeat_s` so
readers can tell a stopped autoscaler from an idle one. A failed write is logged and
retried with the next snapshot: the status object is for people, never for the loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from gibbous.core.lifecycle.statusreport import HEARTBEAT_S, StatusSnapshot, status_document
from gibbous.core.settings.config import Config
from gibbous.kubeapi import STATUS_KEY
from gibbous.nodeviews import ViewCache

log = logging.getLogger("gibbous.autoscaler")


class StatusStore(Protocol):
    def put_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Create the ConfigMap, or replace its data."""
        ...


class StatusWriter:
    def __init__(
        self,
        store: StatusStore,
        config: Config,
        namespace: str,
        name: str,
        *,
        clock: Callable[[], float],
        interval_s: float = 5.0,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.store = store
        self.config = config
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.views = ViewCache(config.nvidia_gpu_time_slices)
        self.offered_at = -heartbeat_s
        self.written_at = -heartbeat_s
        self.written: dict[str, Any] | None = None
        self.writes = 0
        self._slot: tuple[StatusSnapshot, Sequence[Mapping[str, Any]]] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: float) -> bool:
        return now - self.offered_at >= self.interval_s

    def offer(self, snapshot: StatusSnapshot, nodes: Sequence[Mapping[str, Any]]) -> None:
        """Hand over the latest state; an older one not yet written is replaced."""
        self.offered_at = snapshot.now
        with self._lock:
            self._slot = (snapshot, nodes)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self._stopped.is_set():
                self.write_pending()

    def write_pending(self) -> bool:
        """Write the snapshot handed over, if its content changed or the heartbeat is due;
        True when it wrote."""
        with self._lock:
            taken, self._slot = self._slot, None
        if taken is None:
            return False
        snapshot, nodes = taken
        names = set()
        views = []
        for node in nodes:
            view = self.views.view(node)
            names.add(view.name)
            views.append(view)
        self.views.keep_only(names)
        document = status_document(replace(snapshot, nodes=tuple(views)), self.config)
        if document == self.written and snapshot.now - self.written_at < self.heartbeat_s:
            return False
        text = json.dumps({**document, "writtenAt": round(snapshot.now, 3)}, sort_keys=True)
        try:
            self.store.put_config_map(self.namespace, self.name, {STATUS_KEY: text})
        except Exception as error:
            log.warning(
                "writing the status ConfigMap %s/%s failed: %s", self.namespace, self.name, error
            )
            return False
        self.written = document
        self.written_at = snapshot.now
        self.writes += 1
        return True
