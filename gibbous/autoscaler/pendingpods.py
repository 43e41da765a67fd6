"""The pods waiting for capacity, as the loop sees them each step: their facts brought
up to date, each taken in or set aside (`gibbous.core.lifecycle.intake`), gated pods
released once their node is Ready, `NodeCostEstimate` events for estimate-gated pods,
pods waiting on a stopped scheduler reported; and what is remembered of gone pods dropped."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gibbous.autoscaler.loopstate import LoopState
from gibbous.core import keys
from gibbous.core.errors import GibbousError, quoted
from gibbous.core.lifecycle.intake import Intake, decide_intake
from gibbous.core.lifecycle.routing import scheduler_liveness, waits_on_scheduler
from gibbous.core.planning.costestimate import GatedPod, estimate_outcomes, owner_of
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.podmodel.pods import (
    Pod,
    key_of,
    labels_of,
    metadata,
    owner_kinds,
    scheduling_gates,
    uid_of,
)

log = logging.getLogger("gibbous.autoscaler")

# This many pod changes in one step are a list's worth (first sync or relist).
BULK_CHANGES = 5000
# How often the scheduler's Lease is read, and how long a pod may wait unseen by its
# scheduler before it counts as stuck.
LEASE_CHECK_S = 5.0
STUCK_AFTER_S = 60.0
# A NodeCostEstimate we wrote counts as present this long, until the event cache shows it.
ESTIMATE_GUARD_S = 300.0


class PendingPods(LoopState):
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

    # --- intake -----------------------------------------------------------------------------------

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
        messages, wrong = estimate_outcomes(
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
            if item.pod.key in wrong:
                self._warn(
                    pod,
                    f"{wrong[item.pod.key].describe()}; estimated as the cheapest type that "
                    "fits: the catalog may lack a smaller fitting shape",
                    reason=keys.EVENT_WRONG_SIZE_NODE,
                )

    # --- housekeeping -----------------------------------------------------------------------------

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
        self.scheduler_liveness = liveness
        self.stuck_count = len(stuck)
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

    def _forget_gone(self, bound: ClusterPods) -> None:
        """Drop what is remembered of pods that are gone or finished (per remembered pod,
        not per pod in the cluster)."""
        live = bound.unfinished_by_uid
        waiting = {facts.uid for facts in bound.unbound.values()}
        for uid in [u for u in self.described if u not in waiting]:
            del self.described[uid]
        for memory in (self.warned, self.estimated, self.release_retry, self.decided):
            for uid in [u for u in memory if u not in live]:
                del memory[uid]
        self.stuck_reported = {u for u in self.stuck_reported if u in live}
        self.rerouted = {u for u in self.rerouted if u in live}
