"""What the provisioning loop keeps between steps, and its writes about one pod or one
node: events (each warning once per message) and lifting a pod's provisioning gate.
The loop's concerns build on it (`pendingpods`, `launching`, `launchreview`) and
`loop.Autoscaler` joins them."""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gibbous.autoscaler.cloud.base import CloudProvider, Instance
from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.core import keys
from gibbous.core.admission.mutation import pinned_elsewhere
from gibbous.core.choice.daemonsets import DaemonSetPod
from gibbous.core.choice.selection import Offer, build_offers
from gibbous.core.errors import GibbousError, quoted
from gibbous.core.lifecycle.launches import Launch, NodeState, node_state
from gibbous.core.lifecycle.routing import Liveness
from gibbous.core.lifecycle.statusreport import PodDecision
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.batching import Batch
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.placement import NodeView
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.podmodel.pods import Pod, key_of, metadata, uid_of
from gibbous.core.settings.config import Config
from gibbous.nodeviews import ViewCache

log = logging.getLogger("gibbous.autoscaler")


class Cluster(Protocol):
    """What the loop reads from and writes to the API server."""

    def pods(self) -> list[dict[str, Any]]: ...

    def nodes(self) -> list[dict[str, Any]]: ...

    def pods_with_event(self, reason: str) -> frozenset[str]:
        """uids of pods that already have an event with this reason."""
        ...

    def emit_event(
        self, obj: Pod, reason: str, message: str, *, warning: bool, kind: str = "Pod"
    ) -> None:
        """An Event about `obj`, a Pod or (with `kind="Node"`) a Node."""
        ...

    def release_pod(self, pod: Pod, hostname: str | None) -> None:
        """Narrow the pod's nodeSelector to `hostname` (if given) and lift our gate."""
        ...

    def repair_node(
        self, name: str, labels: Mapping[str, str], taints: Sequence[Mapping[str, str]]
    ) -> None:
        """Add `labels` and `taints` to the Node (keeping every other taint)."""
        ...

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as the API returns it (times as RFC 3339 text), None if there is none."""
        ...

    def delete_pod(self, pod: Pod) -> None:
        """Delete with the pod's own grace period, as a user would."""
        ...


class LoopState:
    def __init__(
        self,
        config: Config,
        provider: CloudProvider,
        cluster: Cluster,
        *,
        clock: Callable[[], float],
        metrics: AutoscalerMetrics | None = None,
        new_token: Callable[[], str] | None = None,
        jitter: Callable[[], float] = random.random,
        scheduler_lease: tuple[str, str] | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.cluster = cluster
        self.clock = clock
        self.metrics = metrics or AutoscalerMetrics()
        self.new_token = new_token or (lambda: f"{config.cluster_id}-{uuid.uuid4().hex[:20]}")
        self.jitter = jitter
        self.types = provider.instance_types()
        # What the cluster's DaemonSets run, as the offers were last sized with it (None:
        # not known, the configured nodeOverhead.daemonSet* is left instead).
        self.daemonset_pods: tuple[DaemonSetPod, ...] | None = None
        self.offers = build_offers(self.types, config)
        self.offers_by_key = {(o.name, str(o.category)): o for o in self.offers}
        self.offers_at = clock()
        # Nodes are read several times a step (fit, guardrails, gauges, scale-down, hot
        # nodes); each is read once per version of it, and what cannot be read in a version
        # is reported then, once.
        self.views = ViewCache(config.nvidia_gpu_time_slices, on_problems=self._node_unreadable)
        self.launches: dict[str, Launch] = {}
        self.backoffs = Backoffs()
        self.batch = Batch()
        self.orphans_seen: dict[str, float] = {}
        self.replan = False
        self.paused_until = 0.0
        self.paused_reason = ""
        self.warned: dict[str, str] = {}  # pod uid -> NodeAddRequestWarning message sent
        self.repaired: set[str] = set()  # nodes whose registration was checked
        self.estimated: dict[str, float] = {}  # pod uid -> when its NodeCostEstimate was sent
        self.release_retry: dict[str, tuple[float, int]] = {}  # pod uid -> (next try, failures)
        # The Gibbous scheduler's Lease (namespace, name): pods waiting on it while it is
        # stopped are reported (and, opted in, deleted for their controller to recreate).
        self.scheduler_lease = scheduler_lease if config.scheduler_name else None
        self.lease_checked_at = -math.inf
        self.stuck_reported: set[str] = set()
        self.rerouted: set[str] = set()
        self.last_list_at = -math.inf
        self.last_poll_at = -math.inf
        self.reads_paused_until = -math.inf  # a throttled list or poll: none before this
        self.instances: list[Instance] = []  # as last listed
        self.pending: list[PendingPod] = []  # pods waiting for capacity, as last taken in
        # Every pod's facts, read once per pod version (from the cluster's pod changes when
        # it has them, else by comparing versions in a full list).
        self.pods_index = ClusterPods(config.designation)
        self.node_states: dict[str, tuple[str, NodeState]] = {}  # name -> (version, state)
        # uid -> (version, what describe_pod gave), for the pods waiting for capacity.
        self.described: dict[str, tuple[str, PendingPod | GibbousError]] = {}
        self.decisions = 0
        # What the status object says: each pending pod's last decision (pod uid ->), and
        # the scheduler's liveness as last read.
        self.decided: dict[str, PodDecision] = {}
        self.scheduler_liveness: Liveness | None = None
        self.stuck_count = 0
        self.last_nodes: Sequence[Mapping[str, Any]] = ()  # as the last step read them
        self.cost_labels: set[tuple[str, str]] = set()  # (capacity type, type) gauges set
        self.on_demand_of: list[Offer] | None = None
        self.on_demand: dict[str, float] = {}

    def _node_state(self, node: Mapping[str, Any]) -> NodeState:
        """A node's launch-bookkeeping state, read once per node version."""
        meta = metadata(node)
        name, version = str(meta.get("name") or ""), str(meta.get("resourceVersion") or "")
        cached = self.node_states.get(name)
        if cached is not None and version and cached[0] == version:
            return cached[1]
        state = node_state(node)
        self.node_states[name] = (version, state)
        return state

    # --- releasing gated pods ---------------------------------------------------------------------

    def _release(self, pod: Pod, hostname: str | None) -> None:
        """Lift the gate; a refusal is retried with a growing delay and said on the pod, a
        release that cannot pin the pod to its node is said too."""
        uid = uid_of(pod)
        now = self.clock()
        if self.release_retry.get(uid, (0.0, 0))[0] > now:
            return
        elsewhere = pinned_elsewhere(pod, hostname)
        try:
            self.cluster.release_pod(pod, hostname)
        except Exception as error:
            failures = self.release_retry.get(uid, (0.0, 0))[1] + 1
            delay = min(60.0, 2.0**failures)
            self.release_retry[uid] = (now + delay, failures)
            self.metrics.releases.labels("refused").inc()
            log.warning("releasing %s failed (%s); retrying in %.0fs", key_of(pod), error, delay)
            self._warn(
                pod,
                f"Gibbous could not lift its scheduling gate {keys.PROVISIONING_GATE}: "
                f"{quoted(str(error))}; retrying",
                reason=keys.EVENT_RELEASE_FAILED,
            )
            return
        self.release_retry.pop(uid, None)
        if elsewhere:
            self.metrics.releases.labels("pinned-elsewhere").inc()
            self._warn(
                pod,
                f"released without pinning it to {hostname}, the node made for it: its "
                f"nodeSelector already asks for {keys.HOSTNAME}={elsewhere}",
                reason=keys.EVENT_RELEASED_UNPINNED,
            )
        else:
            self.metrics.releases.labels("released").inc()

    def _record_decision(self, pod: Pod, outcome: str, detail: str) -> None:
        uid = uid_of(pod)
        self.decided[uid] = PodDecision(uid, key_of(pod), self.clock(), outcome, detail)

    # --- events -----------------------------------------------------------------------------------

    def own_pod_event(self, pod: Pod, reason: str, message: str) -> None:
        """A Warning event on the autoscaler's own pod, for what concerns no other object."""
        self._event(pod, reason, message, warning=True)

    def node_event(self, name: str, reason: str, message: str) -> None:
        """A Warning event on the Node `name` (for the lifecycle's failures)."""
        self._event({"metadata": {"name": name}}, reason, message, warning=True, kind="Node")

    def _set_aside(self, pod: Pod, message: str) -> None:
        if self.warned.get(uid_of(pod)) != message:
            self.metrics.unreadable.labels("Pod").inc()
            self._record_decision(pod, "set-aside", message)
        self._warn(pod, message)

    def _node_unreadable(self, node: Mapping[str, Any], view: NodeView) -> None:
        """Told by the view cache when a node's problems differ from its last version's."""
        self.metrics.unreadable.labels("Node").inc()
        message = "; ".join(view.problems)
        log.warning("node %s: %s", view.name, message)
        self._event(node, keys.EVENT_CANNOT_READ, message, warning=True, kind="Node")

    def _warn(
        self, pod: Pod, message: str, *, reason: str = keys.EVENT_NODE_ADD_REQUEST_WARNING
    ) -> None:
        uid = uid_of(pod)
        if self.warned.get(uid) == message:
            return
        self.warned[uid] = message
        self._event(pod, reason, message, warning=True)

    def _event(
        self, obj: Pod, reason: str, message: str, *, warning: bool, kind: str = "Pod"
    ) -> None:
        try:
            self.cluster.emit_event(obj, reason, message, warning=warning, kind=kind)
            self.metrics.events.labels(reason).inc()
        except Exception as error:
            log.warning("event %s for %s %s failed: %s", reason, kind, key_of(obj), error)
