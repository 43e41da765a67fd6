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

`status_snapshot` takes the state the status object shows (`gibbous status`), for the
process to publish off the loop's thread.

The loop works from the caches the `Cluster` keeps (no per-pod API calls) and never lets an
error in one pod or one launch stop the others.

The step's parts are in `pendingpods` (intake, releases, estimates, stuck pods), `launching`
(deciding, launching, backing off) and `launchreview` (instances, registrations, prices),
over the state and the events of `loopstate`; this module runs them in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gibbous.autoscaler.launching import Launching
from gibbous.autoscaler.launchreview import LaunchReview
from gibbous.autoscaler.pendingpods import PendingPods
from gibbous.core.lifecycle.intake import created_at
from gibbous.core.lifecycle.launches import Launch, review_launches
from gibbous.core.lifecycle.statusreport import DrainSnapshot, StatusSnapshot, node_cost
from gibbous.core.planning.batching import batch_due, decided
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.planning.scaleup import gibbous_usage
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.podmodel.pods import metadata

log = logging.getLogger("gibbous.autoscaler")


class Autoscaler(LaunchReview, Launching, PendingPods):
    """The loop's concerns joined over one state; `step` is one iteration."""

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
        self._time_to_ready(review.completed, bound, now)
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
        self._count_pending(bound, self.pending, len(estimate), waiting)
        self.last_nodes = nodes

    def _time_to_ready(
        self, completed: Sequence[tuple[Launch, str]], bound: ClusterPods, now: float
    ) -> None:
        """A launch completes when its Node is Ready: each of its pods waited from its
        creation until now."""
        for launch, _ in completed:
            for key in launch.plan.pods:
                facts = bound.facts.get(key)
                created = created_at(facts.pod) if facts is not None else None
                if created is not None:
                    self.metrics.time_to_ready.observe(max(0.0, now - created))

    def _count_pending(
        self, bound: ClusterPods, provision: Sequence[PendingPod], estimate: int, waiting: int
    ) -> None:
        flying = {key for launch in self.launches.values() for key in launch.plan.pods}
        counts = dict.fromkeys(PENDING_REASONS, 0)
        counts["estimate-only"] = estimate
        counts["scale-up-delay"] = waiting
        for pod in provision:
            decision = self.decided.get(pod.uid)
            if pod.key in flying:
                counts["launch-in-flight"] += 1
            elif decision is not None and decision.outcome in ("unsatisfiable", "existing-node"):
                counts[decision.outcome] += 1
            else:
                counts["awaiting-decision"] += 1
        counts["set-aside"] = sum(
            1
            for facts in bound.unbound.values()
            if (decision := self.decided.get(facts.uid)) is not None
            and decision.outcome == "set-aside"
        )
        for reason, count in counts.items():
            self.metrics.pending_by_reason.labels(reason).set(count)

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
        cost = node_cost([self.views.view(n) for n in nodes], self._on_demand_prices())
        for category, instance_type in self.cost_labels - set(cost.by_type):
            self.metrics.node_cost.remove(category, instance_type)
        for (category, instance_type), (_, per_hour) in cost.by_type.items():
            self.metrics.node_cost.labels(category, instance_type).set(per_hour)
        self.cost_labels = set(cost.by_type)
        self.metrics.node_cost_on_demand.set(cost.on_demand_equivalent)

    def _on_demand_prices(self) -> dict[str, float]:
        """Instance type -> on-demand $/hr, read once per refresh of the offers."""
        if self.on_demand_of is not self.offers:
            self.on_demand_of = self.offers
            self.on_demand = {
                o.name: o.price for o in self.offers if o.category is PriceCategory.ON_DEMAND
            }
        return self.on_demand

    def status_snapshot(self, drains: Sequence[DrainSnapshot] = ()) -> StatusSnapshot:
        """The state the status object shows, taken in O(launches + decisions): references
        to immutable values, the node views left to whoever builds the document."""
        liveness = self.scheduler_liveness
        return StatusSnapshot(
            now=self.clock(),
            launches=tuple(self.launches.values()),
            backoffs=self.backoffs,
            nodes=(),
            drains=tuple(drains),
            decisions=tuple(self.decided.values()),
            paused_until=self.paused_until,
            paused_reason=self.paused_reason,
            scheduler_alive=None if liveness is None else liveness.alive,
            scheduler_why="" if liveness is None else liveness.why,
            pods_waiting_on_stopped_scheduler=self.stuck_count,
            on_demand_prices=self._on_demand_prices(),
        )


PENDING_REASONS = (
    "launch-in-flight",
    "existing-node",
    "unsatisfiable",
    "awaiting-decision",
    "set-aside",
    "scale-up-delay",
    "estimate-only",
)
