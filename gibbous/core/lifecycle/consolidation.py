"""Consolidation that replaces, not only deletes: a cheaper home for the pods of one or
several of Gibbous's under-used bin-pack nodes. Pure; time is a parameter.

Scale-down (`disruption`) removes a node only when its pods fit on the other nodes. A
32-vCPU node kept for two small pods after a scale-in stays there for hours. This module
asks the scale-up planner (`plan_scale_up`: the same packing, constraints, prices, zones
and back-offs) where the pods of a node would go if they were pending now, with the other
nodes as they are, and finds:

  * single-node: one candidate's pods on the other nodes plus new nodes (possibly one
    smaller node, possibly none) costing less than the candidate;
  * multi-node: the pods of the k least-used candidates on the other nodes plus fewer new
    nodes than k (k from `MAX_MULTI_NODES` down to 2, the first k that pays), costing
    less than the k.

The larger saving wins. It acts only when the replacement costs at most
(100 - `consolidation.minSavingsPercent`) % of the nodes it retires, by the catalog's
prices (the same offers the planner buys from), and when the same nodes are still found
replaceable `consolidation.validationDelay` later (Karpenter's 15 s re-check).

Candidates: Ready, uncordoned, non-empty bin-pack nodes this install created, older than
`scaleDown.delayAfterAdd`, not draining or part of a replacement already, whose type is
in the catalog, with under-used requests (`consolidation.candidates: under-used`, the
default: below `scaleDown.binPackNodeUtilizationThreshold`, the nodes whose pods a Luna
user already expects scale-down to move) or any (`all`, Karpenter's
`WhenEmptyOrUnderutilized`). A node is never a candidate when one of its pods:

  * must not be evicted (`pod.elotl.co/do-not-evict`, `karpenter.sh/do-not-disrupt`,
    `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`);
  * has no controller to recreate it (a bare pod would be gone, not moved: Cluster
    Autoscaler's rule);
  * cannot be read or planned for.

A node whose pods mount PersistentVolumeClaims is replaced only within its zone (the
volume may be zonal): its replacement launches there, and those pods move only to nodes
there.

The shell (`gibbous.autoscaler.consolidating`) reviews nothing while pods are pending or
launches are in flight (the room the planner would count on is being taken), or while an
empty node of this install waits for scale-down (the scheduler could put the moved pods
there, to be moved again); one replacement runs at a time.

Once acted on, `advance_replacement` runs the replacement: its launches first; when every
one is Ready, the retiring nodes are handed to the drain, within the drain budget, each
re-checked for pods that must not be evicted; a launch that fails or is not Ready within
`scaleUpTimeout` (plus a minute) abandons the replacement and no node is drained. Evictions go through the
Eviction API (`gibbous.autoscaler.lifecycle`), so PodDisruptionBudgets hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.packingmodel import ExistingNode, Guardrails, PendingPod
from gibbous.core.planning.placement import NodeView
from gibbous.core.planning.podfacts import ClusterPods, PodFacts
from gibbous.core.planning.scaleup import LaunchPlan, plan_scale_up
from gibbous.core.podmodel.pods import as_map, metadata
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

# Bounds on one review's work: single-node replacements tried for the least-used this
# many candidates, multi-node for the least-used up to this many together.
MAX_SINGLE_NODE = 20
MAX_MULTI_NODES = 10
_EPSILON = 1e-9


@dataclass(frozen=True)
class Candidate:
    """One of Gibbous's nodes whose pods might have a cheaper home."""

    name: str
    offer: Offer  # its type and price category, priced from the catalog
    pods: tuple[PendingPod, ...]  # its pods, as the planner reads them
    utilization: float  # the larger of its managed pods' CPU, memory and GPU request shares
    # Its zone, when one of its pods mounts a PersistentVolumeClaim (a zonal disk stays in
    # its zone: the pod must too), and those pods' keys.
    zone_bound: str = ""
    volume_pods: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Replacement:
    retire: tuple[str, ...]  # the nodes that go, sorted
    launches: tuple[LaunchPlan, ...]  # what comes instead (empty: their pods fit elsewhere)
    moves: Mapping[str, str]  # pod key -> existing node the planner put it on
    cost_before: float  # $/hr of the retiring nodes
    cost_after: float  # $/hr of the launches

    @property
    def saving(self) -> float:
        return self.cost_before - self.cost_after

    def describe(self) -> str:
        instead = (
            ", ".join(launch.offer.describe() for launch in self.launches)
            if self.launches
            else "no new node (their pods fit on the other nodes)"
        )
        return (
            f"replacing {', '.join(self.retire)} (${self.cost_before:.4f}/hr) with {instead} "
            f"(${self.cost_after:.4f}/hr)"
        )


def _utilization(used: Resources, allocatable: Resources) -> float:
    shares = [0.0]
    for need, have in (
        (used.cpu_millis, allocatable.cpu_millis),
        (used.memory_bytes, allocatable.memory_bytes),
        (used.gpus, allocatable.gpus),
    ):
        if have > 0:
            shares.append(need / have)
    return max(shares)


def _has_controller(facts: PodFacts) -> bool:
    owners = metadata(facts.pod).get("ownerReferences")
    return isinstance(owners, list) and any(
        isinstance(o, Mapping) and o.get("controller") in (True, "true", "True") for o in owners
    )


def consolidation_candidates(
    views: Sequence[NodeView],
    bound: ClusterPods,
    describe: Callable[[PodFacts], PendingPod | str],
    offers_by_key: Mapping[tuple[str, str], Offer],
    config: Config,
    *,
    now: float,
    busy: frozenset[str],
) -> tuple[list[Candidate], dict[str, str]]:
    """The nodes whose pods may be moved, least used first, and why each other node of
    ours is not one. `views` are this install's nodes; `describe` gives a bound pod as the
    planner reads it (or why it cannot be read), asked only for the pods of nodes that are
    otherwise candidates; `busy` names nodes draining or in a replacement already."""
    candidates: list[Candidate] = []
    kept: dict[str, str] = {}
    threshold = config.scale_down.bin_pack_utilization_threshold
    for view in views:
        name = view.name
        why = _not_a_candidate(view, config, now=now, busy=busy)
        offer = offers_by_key.get((view.instance_type, str(view.category)))
        if not why and offer is None:
            why = f"{view.instance_type} ({view.category}) is not in the catalog"
        pods = bound.node_pods(name)
        if not why and not pods:
            why = "empty (scale-down's to remove)"
        # Managed pods' requests, as scale-down measures a bin-pack node (Luna's rule).
        utilization = _utilization(bound.managed_used.get(name, Resources()), view.allocatable)
        if not why and config.consolidation.candidates == "under-used" and utilization >= threshold:
            why = f"utilization {utilization:.2f} >= {threshold:g} (candidates: under-used)"
        readings: list[PendingPod] = []
        if not why:
            why = _pods_problem(pods, describe, readings)
        if why or offer is None:
            kept[name] = why
            continue
        volume_pods = frozenset(f.key for f in pods if _mounts_a_claim(f))
        zone = view.labels.get(keys.ZONE, "") if volume_pods else ""
        candidates.append(Candidate(name, offer, tuple(readings), utilization, zone, volume_pods))
    candidates.sort(key=lambda c: (c.utilization, -c.offer.price, c.name))
    return candidates, kept


def _mounts_a_claim(facts: PodFacts) -> bool:
    volumes = as_map(facts.pod.get("spec")).get("volumes")
    return isinstance(volumes, list) and any(
        isinstance(v, Mapping) and v.get("persistentVolumeClaim") is not None for v in volumes
    )


def _not_a_candidate(view: NodeView, config: Config, *, now: float, busy: frozenset[str]) -> str:
    if view.name in busy:
        return "draining or in a replacement already"
    if view.placement is not Placement.BIN_PACK:
        return "not a bin-pack node"
    if not view.ready:
        return "not Ready"
    if view.unschedulable:
        return "cordoned"
    age = now - view.created_at if view.created_at is not None else math.inf
    if age < config.scale_down.delay_after_add_s:
        return "younger than scaleDown.delayAfterAdd"
    return ""


def _pods_problem(
    pods: Sequence[PodFacts],
    describe: Callable[[PodFacts], PendingPod | str],
    readings: list[PendingPod],
) -> str:
    """Why the pods keep their node ("" when none does); their readings go to `readings`."""
    for facts in pods:
        if facts.blocker:
            return f"{facts.key} must not be evicted ({facts.blocker})"
        if not _has_controller(facts):
            return f"{facts.key} has no controller to recreate it"
    for facts in pods:
        reading = describe(facts)
        if isinstance(reading, str):
            return f"{facts.key} cannot be planned for: {reading}"
        readings.append(reading)
    return ""


def plan_replacement(
    retire: Sequence[Candidate],
    others: Sequence[ExistingNode],
    offers: list[Offer],
    config: Config,
    *,
    backoffs: Backoffs,
    guardrails: Guardrails | None,
    now: float,
) -> Replacement | None:
    """Where the pods of `retire` would go if they were pending now, with `others` as
    they are: a replacement when every pod has a place and it pays, else None."""
    leaving = {c.name for c in retire}
    pods = [pod for c in retire for pod in c.pods]
    plan = plan_scale_up(
        pods,
        offers,
        config,
        existing=[n for n in others if n.name not in leaving],
        backoffs=backoffs,
        guardrails=guardrails,
        now=now,
    )
    if plan.unsatisfiable or any(
        launch.placement is not Placement.BIN_PACK for launch in plan.launches
    ):
        # A bin-select node is made for one pod by uid: the copy its controller makes of
        # an evicted pod has another, and would not be released to it.
        return None
    launches = _in_volume_zone(retire, plan.launches, plan.on_existing, others)
    if launches is None:
        return None
    before = math.fsum(c.offer.price for c in retire)
    after = math.fsum(launch.offer.price for launch in launches)
    paying = before * (1.0 - config.consolidation.min_savings_percent / 100.0)
    if after >= before - _EPSILON or after > paying + _EPSILON:
        return None
    if len(launches) >= len(retire) and len(retire) > 1:
        return None  # multi-node: fewer nodes, or it is single-node replacements in a row
    return Replacement(tuple(sorted(leaving)), launches, dict(plan.on_existing), before, after)


def _in_volume_zone(
    retire: Sequence[Candidate],
    launches: Sequence[LaunchPlan],
    moves: Mapping[str, str],
    others: Sequence[ExistingNode],
) -> tuple[LaunchPlan, ...] | None:
    """The launches held to the zone of the retiring nodes whose pods mount claims (their
    volumes may be zonal, and nothing here says they are not), or None when that cannot
    be: the nodes are in several zones (or one's is unknown), a launch may not use that
    zone, or such a pod would move to a node elsewhere."""
    zones = {c.zone_bound for c in retire if c.volume_pods}
    if not zones:
        return tuple(launches)
    if len(zones) > 1 or "" in zones:
        return None
    (zone,) = zones
    zone_of = {n.name: n.labels.get(keys.ZONE, "") for n in others}
    bound_pods = frozenset().union(*(c.volume_pods for c in retire))
    if any(zone_of.get(node) != zone for key, node in moves.items() if key in bound_pods):
        return None
    held = []
    for launch in launches:
        if launch.zones and zone not in launch.zones:
            return None
        labels = {**launch.labels, keys.ZONE: zone, keys.ZONE_BETA: zone}
        held.append(replace(launch, zones=(zone,), labels=labels))
    return tuple(held)


def find_replacement(
    candidates: Sequence[Candidate],
    others: Sequence[ExistingNode],
    offers: list[Offer],
    config: Config,
    *,
    backoffs: Backoffs,
    guardrails: Guardrails | None,
    now: float,
) -> Replacement | None:
    """The replacement that saves most, of the single-node ones of the least-used
    candidates and the multi-node one of the largest group of them that pays."""

    def attempt(group: Sequence[Candidate]) -> Replacement | None:
        return plan_replacement(
            group, others, offers, config, backoffs=backoffs, guardrails=guardrails, now=now
        )

    found: list[Replacement] = []
    if config.consolidation.multi_node:
        for size in range(min(len(candidates), MAX_MULTI_NODES), 1, -1):
            if (multi := attempt(candidates[:size])) is not None:
                found.append(multi)
                break
    for candidate in candidates[:MAX_SINGLE_NODE]:
        if (single := attempt([candidate])) is not None:
            found.append(single)
    if not found:
        return None
    # On an equal saving, the one that disrupts fewer nodes.
    return min(found, key=lambda r: (-round(r.saving, 6), len(r.retire), r.retire))


@dataclass(frozen=True)
class Proposal:
    """A replacement found, waiting for the validation delay."""

    replacement: Replacement
    found_at: float


@dataclass(frozen=True)
class ConsolidationDecision:
    proposal: Proposal | None  # carry to the next review
    act: Replacement | None  # launch this now
    why: str


def decide_consolidation(
    found: Replacement | None, proposal: Proposal | None, *, now: float, delay_s: float
) -> ConsolidationDecision:
    """Act on a replacement only when the same nodes were found replaceable `delay_s`
    ago and still are (with the plan as found now: prices or room may have moved)."""
    if found is None:
        why = "no replacement pays" if proposal is None else "the replacement no longer pays"
        return ConsolidationDecision(None, None, why)
    if proposal is None or proposal.replacement.retire != found.retire:
        proposal = Proposal(found, now)
    if now - proposal.found_at >= delay_s:
        return ConsolidationDecision(None, found, "still pays after the validation delay")
    waited = now - proposal.found_at
    return ConsolidationDecision(
        replace(proposal, replacement=found),
        None,
        f"validating for {waited:.0f}s of {delay_s:.0f}s",
    )


class Outcome(StrEnum):
    LAUNCHING = "launching"  # replacements not Ready yet
    DRAINING = "draining"  # retiring nodes handed to the drain (or waiting for the budget)
    DONE = "done"  # every retiring node gone, or kept for a pod that must not be evicted
    ABANDONED = "abandoned"  # a launch failed or timed out: nothing drained


@dataclass(frozen=True)
class InProgress:
    """A replacement acted on: its launch tokens, and which retiring nodes were handed
    to the drain or kept."""

    replacement: Replacement
    tokens: tuple[str, ...]
    started_at: float
    ready: Mapping[str, str] = field(default_factory=dict)  # token -> its Ready node
    drained: tuple[str, ...] = ()
    kept: Mapping[str, str] = field(default_factory=dict)  # retiring node -> why it stays


@dataclass(frozen=True)
class ReplacementStep:
    progress: InProgress
    outcome: Outcome
    drain: tuple[str, ...]  # retiring nodes to drain now
    why: str


def advance_replacement(
    progress: InProgress,
    *,
    in_flight: frozenset[str],
    ready: Mapping[str, str],
    present: frozenset[str],
    blocked: Mapping[str, str],
    budget: int,
    now: float,
    timeout_s: float,
) -> ReplacementStep:
    """One step of a replacement. `in_flight` are the launch tokens still launching,
    `ready` maps tokens whose Node is Ready to it, `present` names the nodes that exist,
    `blocked` the retiring nodes with a pod that must not be evicted now, `budget` is how
    many more nodes may start draining. No retiring node is drained before every launch
    of the replacement is Ready."""
    seen = {**progress.ready, **{t: n for t, n in ready.items() if t in progress.tokens}}
    progress = replace(progress, ready=seen)
    waiting = [t for t in progress.tokens if t not in seen]
    if waiting:
        lost = [t for t in waiting if t not in in_flight]
        if lost:
            why = f"launch {lost[0]} failed; nothing is drained"
            return ReplacementStep(progress, Outcome.ABANDONED, (), why)
        if now - progress.started_at > timeout_s:
            why = f"the replacement was not Ready within {timeout_s:.0f}s; nothing is drained"
            return ReplacementStep(progress, Outcome.ABANDONED, (), why)
        return ReplacementStep(progress, Outcome.LAUNCHING, (), "waiting for the replacement")
    kept = dict(progress.kept)
    start: list[str] = []
    for node in progress.replacement.retire:
        if node in progress.drained or node in kept:
            continue
        if node not in present:
            kept[node] = "gone already"
        elif node in blocked:
            kept[node] = blocked[node]
        elif len(start) < budget:
            start.append(node)
    progress = replace(progress, drained=(*progress.drained, *start), kept=kept)
    waiting_budget = [
        n for n in progress.replacement.retire if n not in progress.drained and n not in kept
    ]
    leaving = [n for n in progress.drained if n in present]
    if waiting_budget or leaving:
        why = "the replacement is Ready" + (
            f"; {len(waiting_budget)} node(s) wait for the drain budget" if waiting_budget else ""
        )
        return ReplacementStep(progress, Outcome.DRAINING, tuple(start), why)
    return ReplacementStep(progress, Outcome.DONE, tuple(start), "the retired nodes are gone")
