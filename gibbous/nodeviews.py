"""Node views built once per node version (shared by the extender and the autoscaler).

Reading a Node's labels, taints and quantities into a `NodeView` is the expensive part of
judging it, and nodes change far less often than they are judged: the extender judges
hundreds per scheduling cycle, the autoscaler every node several times per step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

from gibbous.core.planning.placement import NodeView, node_view, unreadable_node_view
from gibbous.core.podmodel.pods import metadata

log = logging.getLogger("gibbous.nodeviews")

# Told when a node's view has problems other than its previous version's (the node, its
# view): a kubelet's status heartbeat makes a new version every few seconds, and must not
# make a new report.
ProblemsHandler = Callable[[Mapping[str, Any], NodeView], None]


class ViewCache:
    """NodeViews built once per node version: reading labels and quantities is the
    expensive part of judging a node, and nodes change far less often than pods arrive."""

    def __init__(self, time_slices: int = 1, on_problems: ProblemsHandler | None = None) -> None:
        self.time_slices = time_slices
        self.on_problems = on_problems
        self.views: dict[str, tuple[str, NodeView]] = {}
        self.lock = threading.Lock()

    def build(self, node: Mapping[str, Any], previous: NodeView | None = None) -> NodeView:
        """A fresh view; never raises, whatever the node holds (a node is one object among
        thousands: reading it must not stop a step or a watch). Its problems are reported
        unless `previous`, the view of the node's last version, had the same."""
        try:
            built = node_view(node, time_slices=self.time_slices)
        except Exception as error:
            log.exception("cannot read node %r", metadata(node).get("name"))
            built = unreadable_node_view(node, f"Gibbous could not read this node: {error}")
        reported = previous is not None and previous.problems == built.problems
        if built.problems and not reported and self.on_problems is not None:
            try:
                self.on_problems(node, built)
            except Exception:
                log.exception("reporting the problems of node %s failed", built.name)
        return built

    def view(self, node: Mapping[str, Any]) -> NodeView:
        meta = metadata(node)
        name = str(meta.get("name") or "")
        version = str(meta.get("resourceVersion") or "")
        with self.lock:
            cached = self.views.get(name)
        if cached is not None and cached[0] == version and version:
            return cached[1]
        built = self.build(node, cached[1] if cached is not None else None)
        with self.lock:
            self.views[name] = (version, built)
        return built

    def get(self, name: str) -> NodeView | None:
        """The view built at the node's last change (a plain dict read: the request path)."""
        cached = self.views.get(name)
        return cached[1] if cached is not None else None

    def views_for(
        self, names: list[str], load: Callable[[str], Mapping[str, Any] | None]
    ) -> tuple[list[NodeView], list[str]]:
        """Views for `names` in order, plus the names with no node (yet). One pass, no lock:
        dict reads are atomic, and a view replaced meanwhile is equally valid."""
        views = self.views
        found: list[NodeView] = []
        unknown: list[str] = []
        for name in names:
            cached = views.get(name)
            if cached is not None:
                found.append(cached[1])
                continue
            node = load(name)
            if node is None:
                unknown.append(name)
            else:
                found.append(self.view(node))
        return found, unknown

    def forget(self, name: str) -> None:
        with self.lock:
            self.views.pop(name, None)

    def keep_only(self, names: Collection[str]) -> None:
        """Drop the views of nodes not in `names` (the autoscaler's nodes of this step)."""
        with self.lock:
            for gone in [name for name in self.views if name not in names]:
                del self.views[gone]
