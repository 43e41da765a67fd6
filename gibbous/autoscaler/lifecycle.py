"""Node lifecycle: scale-down, node TTL, spot interruption and hot-node mitigation.

`NodeLifecycle.step()` runs after each provisioning step, on the same caches:

1. spot interruptions (the provider flags the instance, or the node carries a cloud's
   termination taint): drain at once, outside the budget, and back the (type, category,
   zone) off so the replacement the evicted pods trigger lands elsewhere;
2. scale-down and TTL (`gibbous.core.lifecycle.disruption`): start drains within the budget;
   then consolidation (`gibbous.autoscaler.consolidating`): replacements launched, and
   the nodes they retire drained once the replacement is Ready;
3. drains in progress: cordon, evict every evictable pod through the Eviction API (a 429
   from a PodDisruptionBudget means try again next step, never force), wait for pods that
   must not be evicted to finish, re-check just before deletion, then terminate the
   instance and delete the Node;
4. every `manageHighUtilization.loopPeriod`: read metrics.k8s.io, write the observed
   utilization annotation, set or clear the hot-node taint (read-modify-write on
   resourceVersion) and evict at most one pod per red node (`gibbous.core.lifecycle.hotnode`).
   The same read is kept for scale-down, which reads usage while mitigation is on
   (`gibbous.core.lifecycle.usagefit`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gibbous.autoscaler.cloud.base import InstanceNotFoundError
from gibbous.autoscaler.consolidating import Consolidating
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.ownership import install_owner, owned
from gibbous.core.lifecycle.disruption import (
    Drain,
    DrainReason,
    pods_on,
    review_scale_down,
    split_node_pods,
)
from gibbous.core.lifecycle.hotnode import (
    PodUsage,
    decide_hot_node,
    node_usage,
    observed_annotation,
    pod_usage,
)
from gibbous.core.lifecycle.usagefit import UsageInputs, UsageRule, UsageSnapshot, read_snapshot
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.planning.placement import OBSERVED_UTILIZATION
from gibbous.core.planning.podfacts import ClusterPods, PodFacts
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.podmodel.pods import Pod, as_map, key_of, metadata

log = logging.getLogger("gibbous.lifecycle")

# Taints clouds and their handlers put on a node about to be reclaimed.
INTERRUPTION_TAINTS = frozenset(
    {
        "aws-node-termination-handler/spot-itn",
        "cloud.google.com/impending-node-termination",
        "kubernetes.azure.com/scheduled-event",
    }
)


class Eviction(StrEnum):
    EVICTED = "evicted"
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget says not now
    GONE = "gone"


class NodeOperations(Protocol):
    """The writes and metrics reads node lifecycle needs, beyond the loop's `Cluster`."""

    def cordon(self, node: str) -> None: ...

    def evict(self, pod: Pod) -> Eviction: ...

    def set_hot_taint(self, node: str, value: str) -> None:
        """Replace the `gibbous.dev/hot-node` taint with `value` ("" removes it)."""
        ...

    def annotate_node(self, node: str, key: str, value: str) -> None: ...

    def delete_node(self, node: str) -> None: ...

    def node_metrics(self) -> list[dict[str, Any]] | None: ...

    def pod_metrics(self) -> list[dict[str, Any]] | None: ...


@dataclass
class DrainState:
    drain: Drain
    started_at: float
    cordoned: bool = False


class NodeLifecycle:
    def __init__(
        self,
        autoscaler: Autoscaler,
        operations: NodeOperations,
        *,
        clock: Callable[[], float],
        own_pod: Pod | None = None,
    ) -> None:
        self.autoscaler = autoscaler
        # The autoscaler's pod (from the downward API), where warnings about Gibbous's own
        # setup go as events; None outside a cluster.
        self.own_pod = own_pod
        self.config = autoscaler.config
        self.operations = operations
        self.clock = clock
        self.draining: dict[str, DrainState] = {}
        self.unneeded_since: dict[str, float] = {}
        self.kept: dict[str, str] = {}  # node -> why it stays, from the last review
        self.last_hot_check = -math.inf
        self.metrics_readable: bool | None = None  # None: not tried yet
        # The last metrics.k8s.io read (None: none readable yet), and when mitigation last
        # evicted from each node: what scale-down reads while mitigation is on.
        self.usage_snapshot: UsageSnapshot | None = None
        self.hot_evictions: dict[str, float] = {}
        self.deleted: list[str] = []
        self.evicted: list[str] = []
        self.consolidation = Consolidating(autoscaler, start_drain=self._start)

    def step(self) -> None:
        now = self.clock()
        cluster = self.autoscaler.cluster
        nodes = cluster.nodes()
        bound = self.autoscaler.refresh_pods()
        self._interruptions(nodes, bound, now)
        view_of = self.autoscaler.views.view
        existing = existing_nodes(
            nodes, (), self.autoscaler.offers_by_key, self.config, view_of=view_of, bound=bound
        )
        review = review_scale_down(
            nodes,
            bound,
            existing,
            self.autoscaler.pending,
            self.config,
            now=now,
            unneeded_since=self.unneeded_since,
            # A replacement's nodes are left to it, as nodes draining are: not judged, and
            # their room not counted on (it is for the pods moving there).
            draining=frozenset(self.draining) | self.consolidation.reserved(),
            view_of=view_of,
            usage=self._usage_inputs(now),
        )
        self.unneeded_since = dict(review.unneeded_since)
        self.kept = dict(review.kept)
        for drain in review.drains:
            self._start(drain, now)
        self.consolidation.step(nodes, bound, existing, frozenset(self.draining), now)
        names = {str(metadata(n).get("name")) for n in nodes}
        for name in list(self.draining):
            if name not in names:
                self.draining.pop(name)  # gone already (deleted by someone else)
                continue
            self._progress(name, bound.node_pods(name), now)
        if (
            self.config.hot_node.enabled
            and now - self.last_hot_check >= self.config.hot_node.loop_period_s
        ):
            self.last_hot_check = now
            self._hot_nodes(nodes, bound, now)

    def _usage_inputs(self, now: float) -> UsageInputs | None:
        if not self.config.hot_node.enabled:
            return None
        self.hot_evictions = {
            node: at
            for node, at in self.hot_evictions.items()
            if now - at < self.config.scale_down.delay_after_hot_eviction_s
        }
        rule = UsageRule.from_settings(self.config.hot_node, self.config.scale_down)
        # No read yet: an empty snapshot, so every node is judged by requests and the
        # mitigation hold still applies.
        snapshot = self.usage_snapshot or UsageSnapshot({}, {}, {})
        return UsageInputs(rule, snapshot, dict(self.hot_evictions))

    # --- drains ------------------------------------------------------------------------------

    def _start(self, drain: Drain, now: float) -> None:
        for target in drain.release:
            # Its use is below yellow with the pods that are to come (usagefit): lift the
            # warm taint Luna's hysteresis keeps until green, so the scheduler may place them.
            log.info("lifting the warm hot-node taint of %s to take pods of %s", target, drain.node)
            self._safely(self.operations.set_hot_taint, target, "")
        log.info("draining %s (%s): %s", drain.node, drain.reason, drain.why)
        self.draining[drain.node] = DrainState(drain, now)
        self.unneeded_since.pop(drain.node, None)

    def _interruptions(
        self, nodes: Sequence[Mapping[str, Any]], bound: ClusterPods, now: float
    ) -> None:
        interrupted = {
            i.node_name: i for i in self.autoscaler.instances if i.interrupted and i.node_name
        }
        for node in nodes:
            name = str(metadata(node).get("name"))
            if (
                name in self.draining
                and self.draining[name].drain.reason is DrainReason.INTERRUPTION
            ):
                continue
            taints = as_map(node.get("spec")).get("taints")
            tainted = isinstance(taints, list) and any(
                isinstance(t, Mapping) and t.get("key") in INTERRUPTION_TAINTS for t in taints
            )
            if name not in interrupted and not tainted:
                continue
            view = self.autoscaler.views.view(node)
            if not owned(view.labels, install_owner(self.autoscaler.config)):
                continue
            instance = interrupted.get(name)
            zone = view.labels.get(keys.ZONE, "") or (instance.zone if instance else "")
            if view.instance_type and view.category is not None:
                self.autoscaler.backoffs = self.autoscaler.backoffs.add(
                    instance_type=view.instance_type,
                    category=str(view.category),
                    zone=zone,
                    kind=FailureKind.INTERRUPTED,
                    now=now,
                    duration_s=self.config.backoff_s,
                )
            self.autoscaler.metrics.failures.labels(str(FailureKind.INTERRUPTED)).inc()
            on_node = split_node_pods(bound.node_pods(name))
            self.autoscaler.provision_displaced(
                [facts.pod for facts in on_node.managed], frozenset({name})
            )
            self.draining[name] = DrainState(
                Drain(name, DrainReason.INTERRUPTION, "the cloud is reclaiming this spot node"), now
            )
            log.warning("spot interruption on %s: draining now", name)

    def _progress(self, name: str, node_pods: Sequence[PodFacts], now: float) -> None:
        state = self.draining[name]
        if not state.cordoned:
            try:
                self.operations.cordon(name)
                state.cordoned = True
            except Exception as error:
                log.warning("cordoning %s failed: %s", name, error)
                return
        on_node = split_node_pods(node_pods)
        for pod in on_node.evictable:
            self._evict(pod, f"draining {name} ({state.drain.reason})")
        if on_node.evictable or on_node.blocked:
            return  # not empty yet: pods are leaving, or wait for do-not-evict pods to finish
        # Re-check just before deleting: anything bound here since the cache was read?
        fresh = pods_on(name, self.autoscaler.cluster.pods(), self.config)
        if fresh.evictable or fresh.blocked:
            return
        self._delete(name)

    def _evict(self, pod: Pod, why: str) -> Eviction:
        try:
            result = self.operations.evict(pod)
        except Exception as error:
            log.warning("evicting %s failed: %s", key_of(pod), error)
            return Eviction.BLOCKED
        if result is Eviction.EVICTED:
            log.info("evicted %s: %s", key_of(pod), why)
            self.evicted.append(key_of(pod))
        elif result is Eviction.BLOCKED:
            log.info("eviction of %s refused by a PodDisruptionBudget; retrying later", key_of(pod))
        return result

    def _delete(self, name: str) -> None:
        instance = next((i for i in self.autoscaler.instances if i.node_name == name), None)
        try:
            if instance is not None:
                self.autoscaler.provider.delete(instance.id)
        except InstanceNotFoundError:
            pass
        except Exception as error:
            log.warning("terminating the instance of %s failed: %s", name, error)
            return
        try:
            self.operations.delete_node(name)
        except Exception as error:
            if not _is_not_found(error):
                # The instance is gone, the Node object stays: kept in draining, deleted
                # again next step, and said where a person looks.
                self.autoscaler.metrics.node_delete_failures.inc()
                log.warning("deleting Node %s failed (%s); retrying next step", name, error)
                self.autoscaler.node_event(
                    name,
                    keys.EVENT_NODE_DELETE_FAILED,
                    f"its instance was terminated but deleting the Node failed: {error}; "
                    "Gibbous retries every step",
                )
                return
        state = self.draining.pop(name)
        self.deleted.append(name)
        self.autoscaler.metrics.terminations.labels(str(state.drain.reason)).inc()
        log.info("removed %s (%s: %s)", name, state.drain.reason, state.drain.why)

    # --- hot nodes ---------------------------------------------------------------------------

    def _say_whether_metrics_are_readable(self, readable: bool) -> None:
        # The first check runs at start-up; after that only a change is logged, so a
        # cluster without metrics-server gets one warning, not one per loopPeriod.
        self.autoscaler.metrics.hot_node_metrics_readable.set(1 if readable else 0)
        if readable == self.metrics_readable:
            return
        if not readable:
            message = (
                "manageHighUtilization.enabled, but metrics.k8s.io cannot be read (is "
                "metrics-server installed?): hot-node mitigation does nothing until it can"
            )
            log.warning("%s", message)
            if self.own_pod is not None:
                self.autoscaler.own_pod_event(
                    self.own_pod, keys.EVENT_HOT_NODE_METRICS_UNAVAILABLE, message
                )
        elif self.metrics_readable is False:
            log.info("metrics.k8s.io is readable again: hot-node mitigation resumes")
        self.metrics_readable = readable

    def _hot_nodes(
        self, nodes: Sequence[Mapping[str, Any]], bound: ClusterPods, now: float
    ) -> None:
        node_items = self.operations.node_metrics()
        self._say_whether_metrics_are_readable(node_items is not None)
        if node_items is None:
            self.usage_snapshot = None
            return
        pod_items = self.operations.pod_metrics() or []
        self.usage_snapshot = read_snapshot(node_items, pod_items, nodes, read_at=now)
        usage_by_pod: dict[str, tuple[float, float]] = {}
        for item in pod_items:
            measured = pod_usage(item)
            if measured is not None:
                usage_by_pod[key_of(item)] = measured
        metrics_by_node = {str(metadata(i).get("name")): i for i in node_items}
        owner = install_owner(self.autoscaler.config)
        for node in nodes:
            view = self.autoscaler.views.view(node)
            name = view.name
            if (
                not owned(view.labels, owner)
                or name in self.draining
                or name not in metrics_by_node
            ):
                continue
            usage = node_usage(metrics_by_node[name], node)
            if usage is None:
                continue
            annotation = observed_annotation(usage)
            if as_map(metadata(node).get("annotations")).get(OBSERVED_UTILIZATION) != annotation:
                self._safely(self.operations.annotate_node, name, OBSERVED_UTILIZATION, annotation)
            if view.placement is not Placement.BIN_PACK:
                continue  # bin-select and static nodes are left alone (P15)
            candidates = []
            node_pods = bound.node_pods(name)
            for facts in node_pods:
                measured = usage_by_pod.get(facts.key)
                if measured is None:
                    if facts.managed:  # counts as managed, but cannot be ranked
                        candidates.append(PodUsage(facts.key, -1.0, -1.0, True, False))
                    continue
                candidates.append(
                    PodUsage(facts.key, measured[0], measured[1], facts.managed, not facts.blocker)
                )
            decision = decide_hot_node(usage, view.hot_taint, candidates, self.config.hot_node)
            if decision.taint != view.hot_taint:
                log.info("%s: %s -> taint %r", name, decision.why, decision.taint or "none")
                self._safely(self.operations.set_hot_taint, name, decision.taint)
            if decision.evict:
                victim = next(f.pod for f in node_pods if f.key == decision.evict)
                if self._evict(victim, f"hot node {name}: {decision.why}") is Eviction.EVICTED:
                    self.hot_evictions[name] = now

    def _safely(self, write: Callable[..., None], *arguments: str) -> None:
        try:
            write(*arguments)
        except Exception as error:
            log.warning("%s%s failed: %s", getattr(write, "__name__", "write"), arguments, error)


def _is_not_found(error: Exception) -> bool:
    return getattr(error, "status", None) == 404
