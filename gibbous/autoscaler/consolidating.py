"""The shell of consolidation that replaces (`gibbous.core.lifecycle.consolidation`):
node lifecycle calls `Consolidating.step` after its scale-down review.

While no replacement runs, a review (at most every `REVIEW_PERIOD_S`, and only when a node,
a pod or the offers changed since the last, when a node comes of `scaleDown.delayAfterAdd`
age, or when a proposal's validation delay is up) asks the core
for the replacement that saves most; the one that still pays after
`consolidation.validationDelay` is launched through the loop's own launching (tokens,
back-offs, throttling retries, events), with no pod attached (its pods are still running
elsewhere). The core then says, step by step, when the replacement is Ready and which
retiring nodes to hand to the drain (reason `consolidation`); node lifecycle's drain
evicts through the Eviction API. The nodes of a replacement in progress (retiring and
new) are `reserved`: scale-down leaves them to it.

Each pod is read for the planner once per version of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.choice.ownership import install_owner, owned
from gibbous.core.errors import GibbousError
from gibbous.core.lifecycle.consolidation import (
    InProgress,
    Outcome,
    Proposal,
    Replacement,
    advance_replacement,
    consolidation_candidates,
    decide_consolidation,
    find_replacement,
)
from gibbous.core.lifecycle.disruption import Drain, DrainReason, drain_budget
from gibbous.core.lifecycle.launches import Launch
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import ExistingNode, Guardrails, PendingPod
from gibbous.core.planning.podfacts import ClusterPods, PodFacts
from gibbous.core.planning.scaleup import gibbous_usage
from gibbous.core.podmodel.pods import metadata

log = logging.getLogger("gibbous.consolidation")

# A review plans every candidate's pods against the cluster: at most this often, so a
# large cluster whose nodes change every second does not plan every second.
REVIEW_PERIOD_S = 10.0
# A replacement launch has `scaleUpTimeout` to become Ready; this much more before the
# replacement is given up (the launch bookkeeping times the launch out first).
READY_SLACK_S = 60.0


class Consolidating:
    def __init__(
        self,
        autoscaler: Autoscaler,
        *,
        start_drain: Callable[[Drain, float], None],
    ) -> None:
        self.autoscaler = autoscaler
        self.config = autoscaler.config
        self.start_drain = start_drain
        self.proposal: Proposal | None = None
        self.progress: InProgress | None = None
        self.node_of: dict[str, str] = {}  # launch token -> its node's name, once known
        self.described: dict[str, tuple[str, PendingPod | str]] = {}  # key -> (version, ...)
        self.last_review_at = float("-inf")
        self.last_inputs: int | None = None
        # When a node too young to be a candidate comes of age (nothing else changes then).
        self.wake_at = float("inf")
        self.why = ""  # the last review's or step's word, for logs and tests
        self.kept: dict[str, str] = {}  # node -> why it is not a candidate (last review)

    def reserved(self) -> frozenset[str]:
        """The nodes of the replacement in progress: scale-down leaves them alone."""
        if self.progress is None:
            return frozenset()
        return frozenset(self.progress.replacement.retire) | frozenset(self.progress.ready.values())

    def step(
        self,
        nodes: Sequence[Mapping[str, Any]],
        bound: ClusterPods,
        existing: Sequence[ExistingNode],
        draining: frozenset[str],
        now: float,
    ) -> None:
        if self.progress is not None:
            self._advance(self.progress, nodes, bound, draining, now)
            return
        if not (self.config.consolidation.enabled and self.config.scale_down.enabled):
            self.proposal = None
            return
        if self.autoscaler.pending or self.autoscaler.launches:
            # The room the planner would count on is being taken: start over afterwards.
            self.proposal = None
            self.why = "pods pending or launches in flight"
            return
        due = now >= self.wake_at or (
            self.proposal is not None
            and now - self.proposal.found_at >= self.config.consolidation.validation_delay_s
        )
        if not due and now - self.last_review_at < REVIEW_PERIOD_S:
            return
        inputs = hash((_fingerprint(nodes, bound), id(self.autoscaler.offers)))
        if not due and inputs == self.last_inputs and self.proposal is None:
            self.last_review_at = now  # checked: nothing changed
            return
        self.last_review_at, self.last_inputs = now, inputs
        found = self._find(nodes, bound, existing, draining, now)
        if found is None and self.why.startswith("waiting for scale-down"):
            self.proposal = None
            return
        decision = decide_consolidation(
            found,
            self.proposal,
            now=now,
            delay_s=self.config.consolidation.validation_delay_s,
        )
        self.proposal, self.why = decision.proposal, decision.why
        if decision.act is not None:
            self._launch(decision.act, now)

    # --- finding -----------------------------------------------------------------------------

    def _find(
        self,
        nodes: Sequence[Mapping[str, Any]],
        bound: ClusterPods,
        existing: Sequence[ExistingNode],
        draining: frozenset[str],
        now: float,
    ) -> Replacement | None:
        self.why = ""
        owner = install_owner(self.config)
        views = [v for v in map(self.autoscaler.views.view, nodes) if owned(v.labels, owner)]
        delay = self.config.scale_down.delay_after_add_s
        self.wake_at = min(
            (
                v.created_at + delay
                for v in views
                if v.created_at is not None and v.created_at + delay > now
            ),
            default=float("inf"),
        )
        self._forget_gone(bound)
        candidates, self.kept = consolidation_candidates(
            views,
            bound,
            self._describe,
            self.autoscaler.offers_by_key,
            self.config,
            now=now,
            busy=draining,
        )
        if not candidates:
            return None
        if empty := sorted(v.name for v in views if not bound.node_pods(v.name)):
            # Scale-down removes empty nodes first: pods moved now could land there (the
            # scheduler takes any node with room) and be moved again.
            self.kept = {**self.kept, **dict.fromkeys(empty, "empty (scale-down's to remove)")}
            self.why = f"waiting for scale-down to remove {len(empty)} empty node(s)"
            return None
        usage = gibbous_usage(nodes, (), self.config, view_of=self.autoscaler.views.view)
        return find_replacement(
            candidates,
            [n for n in existing if n.name not in draining],
            self.autoscaler.offers,
            self.config,
            backoffs=self.autoscaler.backoffs,
            guardrails=Guardrails.from_config(
                self.config, gpus=usage.gpus, nodes=usage.nodes, cost=usage.cost_per_hour
            ),
            now=now,
        )

    def _describe(self, facts: PodFacts) -> PendingPod | str:
        """A bound pod as the planner reads it, read once per pod version."""
        version = str(metadata(facts.pod).get("resourceVersion") or "")
        cached = self.described.get(facts.key)
        if cached is not None and version and cached[0] == version:
            return cached[1]
        try:
            reading: PendingPod | str = describe_pod(facts.pod, self.config)[0]
        except GibbousError as error:
            reading = str(error)
        self.described[facts.key] = (version, reading)
        return reading

    def _forget_gone(self, bound: ClusterPods) -> None:
        """Readings of pods no longer bound are dropped (bounded memory)."""
        if len(self.described) > 2 * max(1, len(bound.facts)):
            self.described = {
                key: reading for key, reading in self.described.items() if key in bound.facts
            }

    # --- acting ------------------------------------------------------------------------------

    def _launch(self, act: Replacement, now: float) -> None:
        autoscaler = self.autoscaler
        # No pod is attached: the pods still run on the retiring nodes (a pod key on a
        # launch would be released, timed and warned about as if it waited for it).
        launches = [
            Launch(token=autoscaler.new_token(), plan=replace(plan, pods=()), requested_at=now)
            for plan in act.launches
        ]
        failures = autoscaler._create_all(launches, now) if launches else []
        tokens = tuple(launch.token for launch in launches)
        if any(failures) or any(token not in autoscaler.launches for token in tokens):
            why = "the cloud refused a replacement launch; nothing is drained"
            self._abandoned(act, why)
            return
        self.progress = InProgress(act, tokens, now)
        self.why = act.describe()
        autoscaler.metrics.consolidations.labels("started").inc()
        autoscaler.metrics.consolidation_savings.inc(act.saving)
        log.info("consolidation: %s", act.describe())
        for node in act.retire:
            self._node_event(
                node,
                keys.EVENT_CONSOLIDATION_REPLACING,
                f"{act.describe()}; this node is drained once the replacement is Ready",
                warning=False,
            )

    def _advance(
        self,
        progress: InProgress,
        nodes: Sequence[Mapping[str, Any]],
        bound: ClusterPods,
        draining: frozenset[str],
        now: float,
    ) -> None:
        autoscaler = self.autoscaler
        for token in progress.tokens:
            launch = autoscaler.launches.get(token)
            if launch is not None and launch.node_name:
                self.node_of[token] = launch.node_name
        by_token = {i.token: i.node_name for i in autoscaler.instances if i.node_name}
        views = {v.name: v for v in map(autoscaler.views.view, nodes)}
        ready = {}
        for token in progress.tokens:
            if token in autoscaler.launches:
                continue  # done only once the launch bookkeeping says so
            name = self.node_of.get(token) or by_token.get(token, "")
            if name in views and views[name].ready:
                ready[token] = name
        blocked = {}
        for node in progress.replacement.retire:
            if pods := bound.blocked.get(node):
                key, reason = min(pods.items())
                blocked[node] = f"{key} must not be evicted ({reason})"
        owner = install_owner(self.config)
        ours = sum(1 for v in views.values() if owned(v.labels, owner))
        step = advance_replacement(
            progress,
            in_flight=frozenset(autoscaler.launches),
            ready=ready,
            present=frozenset(views),
            blocked=blocked,
            budget=drain_budget(self.config, ours, len(draining)),
            now=now,
            timeout_s=self.config.scale_up_timeout_s + READY_SLACK_S,
        )
        self.progress, self.why = step.progress, step.why
        new_nodes = ", ".join(sorted(step.progress.ready.values())) or "the other nodes"
        for node in step.drain:
            why = f"replaced by cheaper capacity ({new_nodes}): {progress.replacement.describe()}"
            self.start_drain(Drain(node, DrainReason.CONSOLIDATION, why), now)
            self._node_event(node, keys.EVENT_CONSOLIDATION_DRAINING, why, warning=False)
            for facts in bound.node_pods(node):
                autoscaler._event(
                    facts.pod,
                    keys.EVENT_CONSOLIDATION_MOVING_POD,
                    f"its node {node} is replaced by cheaper capacity ({new_nodes}); the pod "
                    "is evicted through the Eviction API for its controller to recreate it",
                    warning=False,
                )
        for node, why in step.progress.kept.items():
            if node not in progress.kept:
                log.info("consolidation keeps %s: %s", node, why)
        if step.outcome is Outcome.ABANDONED:
            self.progress = None
            self._abandoned(progress.replacement, step.why)
        elif step.outcome is Outcome.DONE:
            self.progress = None
            self.node_of.clear()
            autoscaler.metrics.consolidations.labels("done").inc()
            log.info("consolidation done: %s", progress.replacement.describe())

    def _abandoned(self, act: Replacement, why: str) -> None:
        self.why = why
        self.node_of.clear()
        self.autoscaler.metrics.consolidations.labels("abandoned").inc()
        log.warning("consolidation abandoned (%s): %s", act.describe(), why)
        for node in act.retire:
            self._node_event(
                node, keys.EVENT_CONSOLIDATION_ABANDONED, f"{act.describe()}: {why}", warning=True
            )

    def _node_event(self, name: str, reason: str, message: str, *, warning: bool) -> None:
        self.autoscaler._event(
            {"metadata": {"name": name}}, reason, message, warning=warning, kind="Node"
        )


def _fingerprint(nodes: Sequence[Mapping[str, Any]], bound: ClusterPods) -> int:
    """What a review reads, as one number: every node's and bound pod's version."""
    node_versions = frozenset(
        (str(metadata(n).get("name")), str(metadata(n).get("resourceVersion"))) for n in nodes
    )
    pod_versions = frozenset(
        (key, str(metadata(facts.pod).get("resourceVersion")))
        for pods in bound.on_node.values()
        for key, facts in pods.items()
    )
    return hash((node_versions, pod_versions))
