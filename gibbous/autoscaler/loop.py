"""The provisioning loop: pending managed pods in, cheapest nodes out.

`Autoscaler.step()` is one iteration, driven by the process (`gibbous autoscaler`) every
`--period`, and by tests on a fake clock. Each step:

1. reviews the launches in flight against the provider's instances, what it says of each
   launch whose Node has not registered (polled every busy period), and the Nodes
   (`gibbous.core.lifecycle.launches`): done, failed after acceptance (back off, replan at once), timed
   out (terminate + back off), adopted after a restart, orphaned (terminate after a grace
   period);
2. retries throttled launch requests with the same idempotency token;
3. lifts the provisioning gate off gated pods whose node is Ready (narrowing a bin-select
   pod's nodeSelector to the node made for it);
4. takes in the pending managed pods (`gibbous.core.lifecycle.intake`) and, when the batching window
   says so, plans one decision (`gibbous.core.planning.scaleup`) counting every launch in flight and
   launches it; a stock-out or quota error backs the pair off and the next cheapest
   candidate is planned at once, in the same step;
5. writes `NodeAddRequestWarning` events for pods nothing can hold (once per reason) and
   `NodeCostEstimate` events for `nodecostestimate`-gated pods (once per pod);
6. updates the metrics.

The loop works from the caches the `Cluster` keeps (no per-pod API calls) and never lets an
error in one pod or one launch stop the others.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from gibbous.autoscaler.cloud.base import (
    CloudProvider,
    FatalConfigurationError,
    Instance,
    InstanceNotFoundError,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.core import keys
from gibbous.core.admission.mutation import pinned_elsewhere
from gibbous.core.choice.selection import build_offers
from gibbous.core.errors import GibbousError, quoted
from gibbous.core.lifecycle.intake import Intake, decide_intake
from gibbous.core.lifecycle.launches import (
    Launch,
    LaunchState,
    NodeState,
    Termination,
    node_state,
    nodes_by_instance,
    registration_repair,
    repaired_node,
    review_launches,
)
from gibbous.core.lifecycle.routing import scheduler_liveness, waits_on_scheduler
from gibbous.core.planning.backoff import Backoffs, FailureKind
from gibbous.core.planning.batching import Batch, batch_due, decided
from gibbous.core.planning.costestimate import GatedPod, estimate_messages, owner_of
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import Guardrails, PendingPod
from gibbous.core.planning.placement import NodeView
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import existing_nodes, gibbous_usage, plan_scale_up
from gibbous.core.podmodel.pods import (
    Pod,
    key_of,
    labels_of,
    metadata,
    owner_kinds,
    scheduling_gates,
    uid_of,
)
from gibbous.core.settings.config import Config
from gibbous.nodeviews import ViewCache

log = logging.getLogger("gibbous.autoscaler")

# A decision replans at once after a stock-out or quota error; this bounds the rounds of
# one step when every candidate fails one after the other.
MAX_ROUNDS = 8
# This many pod changes in one step are a list's worth (first sync or relist).
BULK_CHANGES = 5000
# A launch failing this many times with errors of no known kind is abandoned.
MAX_LAUNCH_ATTEMPTS = 5
# How often the provider is listed: often while launches are in flight (their instances
# matter), rarely otherwise (orphans and restarts only).
LIST_PERIOD_BUSY_S = 2.0
LIST_PERIOD_IDLE_S = 30.0
# How often the scheduler's Lease is read, and how long a pod may wait unseen by its
# scheduler before it counts as stuck.
LEASE_CHECK_S = 5.0
STUCK_AFTER_S = 60.0
# How often the provider's catalog (its prices) is read again.
OFFERS_REFRESH_S = 300.0
# A NodeCostEstimate we wrote counts as present this long, until the event cache shows it.
ESTIMATE_GUARD_S = 300.0


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


class Autoscaler:
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
        self.instances: list[Instance] = []  # as last listed
        self.pending: list[PendingPod] = []  # pods waiting for capacity, as last taken in
        # Every pod's facts, read once per pod version (from the cluster's pod changes when
        # it has them, else by comparing versions in a full list).
        self.pods_index = ClusterPods(config.designation)
        self.node_states: dict[str, tuple[str, NodeState]] = {}  # name -> (version, state)
        # uid -> (version, what describe_pod gave), for the pods waiting for capacity.
        self.described: dict[str, tuple[str, PendingPod | GibbousError]] = {}
        self.decisions = 0

    # --- one iteration ---------------------------------------------------------------------

    def step(self) -> None:
        now = self.clock()
        self._refresh_offers(now)
        nodes = self.cluster.nodes()
        names = {str(metadata(n).get("name") or "") for n in nodes}
        self.views.keep_only(names)
        self.repaired &= names
        bound = self.refresh_pods()
        pending_pods = [facts.pod for facts in bound.unbound.values()]
        nodes = self._match_registrations(nodes)
        self.node_states = {
            name: cached for name, cached in self.node_states.items() if name in names
        }
        node_states = {state.name: state for state in map(self._node_state, nodes)}
        instances = self._list_instances(now)
        review = review_launches(
            self.launches,
            instances,
            node_states,
            self.offers_by_key,
            self.config,
            now=now,
            orphans_seen=self.orphans_seen,
            polled=self._poll_in_flight(now, node_states),
        )
        self.launches = dict(review.launches)
        self.orphans_seen = dict(review.orphans_seen)
        for launch in review.adopted:
            log.info("adopted launch %s (%s) after a restart", launch.token, launch.instance_id)
        for termination in review.terminate:
            self._terminate(termination, now, bound)
        for launch, why in review.dropped:
            log.warning("launch %s abandoned: %s", launch.token, why)
            self.metrics.failures.labels("abandoned").inc()
            self.replan = True
        for launch in review.retry:
            self._create(launch, now)

        self._release_ready(pending_pods, nodes)

        # Bound pods are never provisioned for: intake reads the unbound ones only.
        provision, estimate, waiting = self._intake(pending_pods, now)
        self.pending = [p for p, _ in provision]
        self.metrics.pending_pods.labels("provision").set(len(provision))
        self.metrics.pending_pods.labels("estimate").set(len(estimate))
        self.metrics.pending_pods.labels("wait").set(waiting)
        self.batch, due = batch_due(
            self.batch,
            frozenset(p.key for p, _ in provision),
            now=now,
            idle_s=self.config.scale_up_batch_idle_s,
            max_s=self.config.scale_up_batch_max_s,
            force=self.replan,
        )
        if due and now < self.paused_until:
            due = False
        if due:
            self._decide(provision, nodes, now)
            self.batch = decided(self.batch, now)
            self.replan = False
        if estimate:
            self._estimate(estimate, now)
        self._pods_of_stopped_scheduler(pending_pods, now)
        self._forget_gone(bound)
        self._update_gauges(nodes, now)

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

    def _describe(self, pod: Pod) -> PendingPod:
        """describe_pod once per pod version (a pod waiting for capacity is taken in every
        step until its node comes; an unreadable one raises its error again)."""
        meta = metadata(pod)
        uid, version = uid_of(pod), str(meta.get("resourceVersion") or "")
        cached = self.described.get(uid)
        if cached is not None and version and cached[0] == version:
            if isinstance(cached[1], GibbousError):
                raise cached[1]
            return cached[1]
        try:
            pending = describe_pod(pod, self.config)[0]
        except GibbousError as error:
            self.described[uid] = (version, error)
            raise
        self.described[uid] = (version, pending)
        return pending

    def refresh_pods(self) -> ClusterPods:
        """The pod facts brought up to date: the changes since the last call when the
        cluster reports them, else a comparison of versions over the full list."""
        changes = getattr(self.cluster, "pod_changes", None)
        if changes is None:
            self.pods_index.sync(self.cluster.pods())
            return self.pods_index
        taken = changes()
        for key, pod in taken:
            self.pods_index.update(key, pod)
        if len(taken) >= BULK_CHANGES:
            # A (re)list's worth of facts lives long: keep the cyclic collector from
            # rescanning it on every later collection, as the caches do for their lists.
            gc.freeze()
        return self.pods_index

    # --- intake ------------------------------------------------------------------------------

    def _intake(
        self, pods: Sequence[Pod], now: float
    ) -> tuple[list[tuple[PendingPod, Pod]], list[tuple[GatedPod, Pod]], int]:
        provision: list[tuple[PendingPod, Pod]] = []
        estimate: list[tuple[GatedPod, Pod]] = []
        waiting = 0
        for pod in pods:
            try:
                decision = decide_intake(pod, self.config, now)
                if decision.intake is Intake.IGNORE:
                    continue
                if decision.intake is Intake.WAIT:
                    waiting += 1
                    continue
                facts = self.pods_index.unbound.get(key_of(pod))
                if facts is not None and facts.rules_problem:
                    # counted once per pod version, when its facts were read
                    self._set_aside(pod, f"cannot provision for this pod: {facts.rules_problem}")
                    continue
                pending = self._describe(pod)
            except GibbousError as error:
                self._set_aside(pod, f"cannot provision for this pod: {error}")
                continue
            except Exception as error:
                # Our bug, not the pod author's: one pod must not stop the others.
                log.exception("cannot read pod %s", key_of(pod))
                self._set_aside(pod, f"Gibbous could not read this pod: {quoted(str(error))}")
                continue
            if decision.intake is Intake.ESTIMATE:
                estimate.append((GatedPod(pending, owner_of(pod)), pod))
            else:
                provision.append((pending, pod))
        return provision, estimate, waiting

    # --- deciding and launching ------------------------------------------------------------

    def _decide(
        self,
        provision: list[tuple[PendingPod, Pod]],
        nodes: Sequence[Mapping[str, Any]],
        now: float,
        *,
        leaving: frozenset[str] = frozenset(),
    ) -> None:
        if not provision:
            return
        self.decisions += 1
        self.metrics.decisions.inc()
        pending = [p for p, _ in provision]
        pod_by_key = {p.key: pod for p, pod in provision}
        for _ in range(MAX_ROUNDS):
            flying = [launch.in_flight() for launch in self.launches.values()]
            flying_nodes = frozenset(
                launch.node_name for launch in self.launches.values() if launch.node_name
            )
            usage = gibbous_usage(
                nodes, flying, self.config, exclude=flying_nodes, view_of=self.views.view
            )
            plan = plan_scale_up(
                pending,
                self.offers,
                self.config,
                existing=existing_nodes(
                    nodes,
                    (),
                    self.offers_by_key,
                    self.config,
                    exclude=flying_nodes | leaving,
                    view_of=self.views.view,
                    bound=self.pods_index,
                ),
                in_flight=flying,
                backoffs=self.backoffs,
                guardrails=Guardrails.from_config(
                    self.config, gpus=usage.gpus, nodes=usage.nodes, cost=usage.cost_per_hour
                ),
                now=now,
            )
            unsatisfiable = dict(plan.unsatisfiable)
            launches = [
                Launch(token=self.new_token(), plan=launch_plan, requested_at=now)
                for launch_plan in plan.launches
            ]
            failed = any(
                kind in (FailureKind.INSUFFICIENT_CAPACITY, FailureKind.QUOTA)
                for kind in self._create_all(launches, now)
            )
            if not failed or now < self.paused_until:
                break
        for key, node_name in plan.on_existing.items():
            pod = pod_by_key[key]
            if not node_name.startswith("in-flight:") and keys.PROVISIONING_GATE in (
                scheduling_gates(pod)
            ):
                self._release(pod, None)
        for key, reason in unsatisfiable.items():
            self._warn(pod_by_key[key], f"cannot obtain a node for this pod: {reason}")

    def provision_displaced(self, pods: Sequence[Pod], leaving: frozenset[str]) -> None:
        """Plan capacity at once for pods on nodes about to disappear (spot interruption),
        before they are evicted: their replacement starts launching with the warning, and
        the recreated pods find it in flight."""
        now = self.clock()
        displaced = []
        for pod in pods:
            try:
                displaced.append((describe_pod(pod, self.config)[0], pod))
            except GibbousError:
                continue
        if displaced and now >= self.paused_until:
            self._decide(displaced, self.cluster.nodes(), now, leaving=leaving)

    def _create_all(self, launches: list[Launch], now: float) -> list[FailureKind | None]:
        """Ask the provider for the launches' instances, several at once when it takes that
        (`launch_concurrency`: a burst of 60 nodes must not wait on 60 calls in a row), and
        record the outcomes in order, on this thread."""
        width = min(len(launches), max(1, self.provider.launch_concurrency))
        if width <= 1:
            outcomes = [self._call_create(launch) for launch in launches]
        else:
            with concurrent.futures.ThreadPoolExecutor(width) as pool:
                outcomes = list(pool.map(self._call_create, launches))
        return [
            self._record_create(launch, outcome, now)
            for launch, outcome in zip(launches, outcomes, strict=True)
        ]

    def _create(self, launch: Launch, now: float) -> FailureKind | None:
        return self._create_all([launch], now)[0]

    def _call_create(self, launch: Launch) -> Instance | Exception:
        plan = launch.plan
        request = LaunchRequest(
            token=launch.token,
            cluster_id=self.config.cluster_id,
            instance_type=plan.offer.name,
            category=str(plan.offer.category),
            zones=plan.zones,
            labels=plan.labels,
            taints=plan.taints,
        )
        try:
            return self.provider.create(request)
        except Exception as error:
            return error

    def _record_create(
        self, launch: Launch, outcome: Instance | Exception, now: float
    ) -> FailureKind | None:
        """Record a create call's outcome. Returns the kind of failure that backs a pair
        off, if any."""
        offer = launch.plan.offer
        attempts = launch.attempts + 1
        try:
            if isinstance(outcome, Exception):
                raise outcome
            instance = outcome
        except InsufficientCapacityError as error:
            zone = error.zone if error.zone and "," not in error.zone else ""
            self._back_off(
                offer.name, str(offer.category), zone, FailureKind.INSUFFICIENT_CAPACITY, now
            )
            log.warning(
                "launch of %s failed: %s; trying the next candidate", offer.describe(), error
            )
            return FailureKind.INSUFFICIENT_CAPACITY
        except QuotaExceededError as error:
            self._back_off(offer.name, str(offer.category), "", FailureKind.QUOTA, now)
            log.warning(
                "launch of %s failed: %s; trying the next candidate", offer.describe(), error
            )
            return FailureKind.QUOTA
        except ThrottledError as error:
            delay = error.retry_after_s * (1.0 + self.jitter())
            self.launches[launch.token] = replace(
                launch, state=LaunchState.REQUESTED, retry_at=now + delay, attempts=attempts
            )
            self.metrics.failures.labels("throttled").inc()
            log.info("launch %s throttled; retrying in %.1fs", launch.token, delay)
            return None
        except FatalConfigurationError as error:
            self.paused_until = now + self.config.backoff_s
            self.paused_reason = str(error)
            self.launches.pop(launch.token, None)
            self.metrics.failures.labels("fatal-configuration").inc()
            log.error(
                "the %s provider is misconfigured (%s); launches paused for %.0fs",
                self.provider.name,
                error,
                self.config.backoff_s,
            )
            return None
        except Exception as error:
            self.metrics.failures.labels("error").inc()
            if attempts >= MAX_LAUNCH_ATTEMPTS:
                return self._abandon(launch, error, now)
            delay = min(60.0, 2.0**attempts) * (1.0 + self.jitter())
            self.launches[launch.token] = replace(
                launch, state=LaunchState.REQUESTED, retry_at=now + delay, attempts=attempts
            )
            log.warning(
                "launch %s failed (%s: %s); attempt %d of %d, retrying in %.1fs",
                launch.token,
                type(error).__name__,
                error,
                attempts,
                MAX_LAUNCH_ATTEMPTS,
                delay,
            )
            return None
        self.launches[launch.token] = replace(
            launch,
            state=LaunchState.ACCEPTED,
            instance_id=instance.id,
            zone=instance.zone,
            node_name=instance.node_name,
            attempts=attempts,
        )
        self.metrics.launches.labels(offer.name, str(offer.category)).inc()
        log.info(
            "launched %s as %s in %s for %d pod(s)",
            offer.describe(),
            instance.id,
            instance.zone or "any zone",
            len(launch.plan.pods),
        )
        return None

    def _abandon(self, launch: Launch, error: Exception, now: float) -> FailureKind:
        """A launch the provider kept failing with errors Gibbous has no kind for (a bug, an
        unexpected API answer): given up, its pair backed off so the next candidate is
        tried, and said on its pods."""
        offer = launch.plan.offer
        self.launches.pop(launch.token, None)
        self.metrics.failures.labels("abandoned-after-errors").inc()
        self._back_off(offer.name, str(offer.category), "", FailureKind.PROVIDER_ERROR, now)
        message = (
            f"launching {offer.describe()} failed {MAX_LAUNCH_ATTEMPTS} times "
            f"({type(error).__name__}: {quoted(str(error))}); Gibbous tries the next candidate"
        )
        log.error("launch %s abandoned: %s", launch.token, message)
        by_key = {
            key_of(pod): pod for pod in self.cluster.pods() if key_of(pod) in launch.plan.pods
        }
        for pod in by_key.values():
            self._warn(pod, message, reason=keys.EVENT_LAUNCH_ABANDONED)
        self.replan = True
        return FailureKind.PROVIDER_ERROR

    def _back_off(
        self, instance_type: str, category: str, zone: str, kind: FailureKind, now: float
    ) -> None:
        self.backoffs = self.backoffs.add(
            instance_type=instance_type,
            category=category,
            zone=zone,
            kind=kind,
            now=now,
            duration_s=self.config.backoff_s,
        )
        self.metrics.failures.labels(str(kind)).inc()
        self.replan = True

    def _terminate(self, termination: Termination, now: float, bound: ClusterPods) -> None:
        log.warning("terminating %s: %s", termination.instance_id, termination.reason)
        try:
            if termination.instance_id:
                self.provider.delete(termination.instance_id)
        except InstanceNotFoundError:
            pass
        except Exception as error:
            log.warning("terminating %s failed (%s); will retry", termination.instance_id, error)
        kind = termination.backoff[3] if termination.backoff else "orphan"
        self.metrics.terminations.labels(str(kind)).inc()
        if termination.backoff is not None:
            instance_type, category, zone, failure = termination.backoff
            self._back_off(instance_type, category, zone, failure, now)
        if termination.launch is not None:
            for key in termination.launch.plan.pods:
                facts = bound.facts.get(key)
                if facts is not None:
                    self._warn(
                        facts.pod,
                        f"launch abandoned: {termination.reason}; trying the next candidate",
                        reason=keys.EVENT_TRYING_NEXT_CANDIDATE,
                    )

    # --- releasing gated pods ---------------------------------------------------------------

    def _release_ready(self, pods: Sequence[Pod], nodes: Sequence[Mapping[str, Any]]) -> None:
        """Gated pods whose own node (labelled with their uid) is Ready go to the scheduler,
        pinned to that node."""
        gated = [p for p in pods if keys.PROVISIONING_GATE in scheduling_gates(p)]
        if not gated:
            return
        ready_for: dict[str, str] = {}
        for node in nodes:
            uid = labels_of(node).get(keys.ASSIGNED_POD_UID)
            if uid and self._node_state(node).ready:
                ready_for[uid] = labels_of(node).get(keys.HOSTNAME) or str(
                    metadata(node).get("name")
                )
        for pod in gated:
            hostname = ready_for.get(uid_of(pod))
            if hostname:
                self._release(pod, hostname)

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

    def node_event(self, name: str, reason: str, message: str) -> None:
        """A Warning event on the Node `name` (for the lifecycle's failures)."""
        self._event({"metadata": {"name": name}}, reason, message, warning=True, kind="Node")

    # --- events ------------------------------------------------------------------------------

    def _set_aside(self, pod: Pod, message: str) -> None:
        if self.warned.get(uid_of(pod)) != message:
            self.metrics.unreadable.labels("Pod").inc()
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

    def _estimate(self, gated: list[tuple[GatedPod, Pod]], now: float) -> None:
        have = self.cluster.pods_with_event(keys.EVENT_NODE_COST_ESTIMATE)
        todo = [
            (item, pod)
            for item, pod in gated
            if uid_of(pod) not in have
            and now - self.estimated.get(uid_of(pod), -math.inf) > ESTIMATE_GUARD_S
        ]
        if not todo:
            return
        # The counts are per group of matching gated pods, so estimate over all of them.
        messages = estimate_messages(
            [item for item, _ in gated],
            self.offers,
            self.config,
            backed_off=self.backoffs.blocked_pairs(now),
        )
        for item, pod in todo:
            message = messages.get(item.pod.key)
            if message is None:
                continue
            self.estimated[uid_of(pod)] = now
            self._event(pod, keys.EVENT_NODE_COST_ESTIMATE, message, warning=False)

    # --- housekeeping --------------------------------------------------------------------------

    def _pods_of_stopped_scheduler(self, pods: Sequence[Pod], now: float) -> None:
        """Managed pods sent to the Gibbous scheduler while it is not running sit Pending
        with no condition and no event: nothing else would tell their authors. Say which
        scheduler they wait for and what to do; with reroutePodsOfStoppedScheduler, delete
        those a controller owns so they come back through the webhook (which then leaves
        them to the default scheduler)."""
        if self.scheduler_lease is None or now - self.lease_checked_at < LEASE_CHECK_S:
            return
        self.lease_checked_at = now
        namespace, name = self.scheduler_lease
        try:
            liveness = scheduler_liveness(self.cluster.lease(namespace, name), now)
        except Exception as error:
            log.warning("cannot read the scheduler Lease %s/%s: %s", namespace, name, error)
            return
        scheduler = self.config.scheduler_name
        stuck = (
            []
            if liveness.alive
            else [p for p in pods if waits_on_scheduler(p, scheduler, now, STUCK_AFTER_S)]
        )
        self.metrics.stuck_pods.set(len(stuck))
        for pod in stuck:
            uid = uid_of(pod)
            owned = bool({"ReplicaSet", "Job", "StatefulSet"} & set(owner_kinds(pod)))
            if uid not in self.stuck_reported:
                self.stuck_reported.add(uid)
                advice = (
                    "Gibbous deletes it so its controller recreates it for the default scheduler"
                    if self.config.reroute_stuck_pods and owned
                    else "delete it (its controller, if any, recreates it for the default "
                    "scheduler) or restart the scheduler; reroutePodsOfStoppedScheduler=true "
                    "does this for pods a controller owns"
                )
                self._event(
                    pod,
                    keys.EVENT_SCHEDULER_STOPPED,
                    f"waiting for scheduler {scheduler!r}, which is not running "
                    f"({liveness.why}, Lease {namespace}/{name}); {advice}",
                    warning=True,
                )
            if self.config.reroute_stuck_pods and owned and uid not in self.rerouted:
                try:
                    self.cluster.delete_pod(pod)
                    self.rerouted.add(uid)
                    log.warning("deleted %s: it waited on the stopped %s", key_of(pod), scheduler)
                except Exception as error:
                    log.warning("deleting %s failed: %s", key_of(pod), error)

    def _refresh_offers(self, now: float) -> None:
        """Prices move (live spot prices): ask the provider again now and then, and plan
        with the new offers when they changed."""
        if now - self.offers_at < OFFERS_REFRESH_S:
            return
        self.offers_at = now
        try:
            types = self.provider.instance_types()
        except Exception as error:
            log.warning("refreshing the %s catalog failed: %s", self.provider.name, error)
            return
        if types != self.types:
            self.types = types
            self.offers = build_offers(types, self.config)
            self.offers_by_key = {(o.name, str(o.category)): o for o in self.offers}
            log.info("offers rebuilt from new %s prices", self.provider.name)

    def _match_registrations(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tie each launch in flight to its Node by `spec.providerID` (a cloud's node name
        need not be what the provider guessed), and give a node that registered without
        the labels or taints its launch asked for what it lacks, once, with an event.
        Returns the nodes as this step must see them: a repaired node with its repair
        (the cache shows it only after the watch brings the change)."""
        if not self.launches:
            return nodes
        by_instance = nodes_by_instance(nodes)
        by_name = {str(metadata(n).get("name") or ""): n for n in nodes}
        for token, recorded in list(self.launches.items()):
            name = by_instance.get(recorded.instance_id) if recorded.instance_id else None
            if name is None:
                continue
            launch = recorded if name == recorded.node_name else replace(recorded, node_name=name)
            self.launches[token] = launch
            if name in self.repaired:
                continue
            repair = registration_repair(launch, by_name[name], self.provider.cloud_label_keys)
            self.repaired.add(name)
            if repair is None:
                continue
            # Per-node labels a pool-based cloud cannot put on at registration are expected.
            expected = not repair.taints and set(repair.labels) <= self.provider.late_label_keys
            message = (
                f"registered without {repair.describe()} that its launch asked for (the "
                "node's user data or bootstrap did not set them, or NodeRestriction kept the "
                "kubelet from it); Gibbous added them"
            )
            if expected:
                log.info("node %s registered; adding its %s", name, repair.describe())
            else:
                log.warning("node %s %s", name, message)
            try:
                self.cluster.repair_node(name, repair.labels, repair.taints)
            except Exception as error:
                self.repaired.discard(name)
                log.warning("repairing node %s failed (%s); will retry", name, error)
                continue
            by_name[name] = repaired_node(by_name[name], repair)
            if not expected:
                self._event(
                    by_name[name], keys.EVENT_NODE_REPAIRED, message, warning=True, kind="Node"
                )
        return [by_name.get(str(metadata(n).get("name") or ""), n) for n in nodes]

    def _poll_in_flight(
        self, now: float, registered: Mapping[str, NodeState]
    ) -> dict[str, Instance]:
        """Ask the provider about each accepted launch whose Node has not registered: a
        cloud that accepts a launch and fails it later (EC2 spot, every GKE, AKS and OKE
        operation) says so here, within one busy period, not at scaleUpTimeout."""
        if not self.launches or now - self.last_poll_at < LIST_PERIOD_BUSY_S:
            return {}
        self.last_poll_at = now
        out: dict[str, Instance] = {}
        for launch in self.launches.values():
            if (
                launch.state is not LaunchState.ACCEPTED
                or not launch.instance_id
                or launch.node_name in registered
            ):
                continue
            try:
                out[launch.instance_id] = self.provider.get(launch.instance_id)
            except InstanceNotFoundError:
                continue  # the listing's settle rule decides about vanished instances
            except Exception as error:
                log.warning("polling launch %s failed: %s", launch.token, error)
        return out

    def _list_instances(self, now: float) -> list[Instance] | None:
        period = LIST_PERIOD_BUSY_S if self.launches else LIST_PERIOD_IDLE_S
        if now - self.last_list_at < period:
            return None
        try:
            instances = self.provider.list(self.config.cluster_id)
        except Exception as error:
            log.warning("listing %s instances failed: %s", self.provider.name, error)
            return None
        self.last_list_at = now
        self.instances = instances
        return instances

    def _forget_gone(self, bound: ClusterPods) -> None:
        """Drop what is remembered of pods that are gone or finished (per remembered pod,
        not per pod in the cluster)."""
        live = bound.unfinished_by_uid
        waiting = {facts.uid for facts in bound.unbound.values()}
        for uid in [u for u in self.described if u not in waiting]:
            del self.described[uid]
        for memory in (self.warned, self.estimated, self.release_retry):
            for uid in [u for u in memory if u not in live]:
                del memory[uid]
        self.stuck_reported = {u for u in self.stuck_reported if u in live}
        self.rerouted = {u for u in self.rerouted if u in live}

    def _update_gauges(self, nodes: Sequence[Mapping[str, Any]], now: float) -> None:
        flying = [launch.in_flight() for launch in self.launches.values()]
        flying_nodes = frozenset(
            launch.node_name for launch in self.launches.values() if launch.node_name
        )
        usage = gibbous_usage(
            nodes, flying, self.config, exclude=flying_nodes, view_of=self.views.view
        )
        self.metrics.in_flight.set(len(self.launches))
        self.metrics.nodes.set(usage.nodes)
        self.metrics.cost.set(usage.cost_per_hour)
        self.metrics.backoffs.set(len(self.backoffs.active(now)))
