"""Which nodes Gibbous takes away, and which pods it may evict to do so. Pure; time is a
parameter.

Eviction rules (scale-down, node TTL, hot nodes, spot interruption alike):
  * DaemonSet and mirror pods are never evicted (they belong to the node) and do not keep
    a node alive;
  * finished pods are ignored;
  * `pod.elotl.co/do-not-evict: "true"`, `cluster-autoscaler.kubernetes.io/safe-to-evict:
    "false"` and `karpenter.sh/do-not-disrupt: "true"` block eviction: the pod keeps its node
    until it finishes or the annotation goes;
  * every other pod is evicted through the Eviction API, so PodDisruptionBudgets hold.

Scale-down candidates, among Ready nodes this install created, older than
`scaleDown.delayAfterAdd`, not cordoned by someone else:
  * bin-select node: its pod (label `gibbous.dev/assigned-pod-uid`) is gone, or is no longer
    bin-select (e.g. VPA shrank it), and no other pod, managed or not, runs there: unneeded;
    or managed-pod requests / allocatable (the larger of the CPU, memory and GPU shares) below
    `scaleDown.binSelectNodeUtilizationThreshold` (Luna's 75 %) and every pod there fits on
    the other nodes without a new one: unneeded;
  * bin-pack node: no managed pod, or managed-pod requests / allocatable (the larger of the
    CPU, memory and GPU shares) below `scaleDown.binPackNodeUtilizationThreshold` (Luna's
    20 %) and a simulation shows every evictable pod fits on the other nodes without a new
    one: unneeded;
  * while hot-node mitigation is on, bin-pack nodes are also judged by measured use, and
    every bin-pack candidate's pods must fit elsewhere by use too (`usagefit`);
  * a node that pending pods would be planned onto is needed;
  * unneeded for `scaleDown.unneededTime` -> drain (reason scale-down);
  * older than `nodeTTL` (when set) -> drain (reason ttl), whatever its use;
  * a node with a pod that blocks eviction is never drained for scale-down or TTL.
Drains run under a budget: at most `scaleDown.maxDrainingNodes` at once, and at most
`scaleDown.maxDrainingPercent` of Gibbous's nodes (at least one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from gibbous.core.choice.classify import Placement, classify
from gibbous.core.choice.ownership import install_owner, owned
from gibbous.core.errors import GibbousError
from gibbous.core.keys import HOT_NODE_HOT, HOT_NODE_TAINT, HOT_NODE_WARM
from gibbous.core.lifecycle.usagefit import UsageInputs, UsageRoom, held_by_mitigation
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import ExistingNode, PendingPod, node_admits
from gibbous.core.planning.placement import NodeViewer, viewer
from gibbous.core.planning.podfacts import ClusterPods, PodFacts, pod_facts
from gibbous.core.podmodel.constraints import do_not_evict_reason
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    is_daemonset_pod,
    is_mirror_pod,
    key_of,
    pod_requests,
)
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config


class DrainReason(StrEnum):
    SCALE_DOWN = "scale-down"
    TTL = "ttl"
    INTERRUPTION = "spot-interruption"
    CONSOLIDATION = "consolidation"  # replaced by cheaper capacity (`consolidation`)


def eviction_blocker(pod: Pod) -> str:
    """Why `pod` must not be evicted, or "" when it may be."""
    return do_not_evict_reason(annotations_of(pod))


def belongs_to_node(pod: Pod) -> bool:
    """DaemonSet and mirror pods: never evicted, never a reason to keep a node."""
    return is_daemonset_pod(pod) or is_mirror_pod(pod)


@dataclass(frozen=True)
class NodePods:
    evictable: tuple[Pod, ...]
    blocked: tuple[tuple[Pod, str], ...]  # (pod, why)
    managed: tuple[PodFacts, ...]  # managed pods (evictable or not)


def pods_by_node(pods: Sequence[Pod], config: Config) -> dict[str, list[PodFacts]]:
    """The pods that count for a node (bound, not finished, not DaemonSet or mirror pods),
    by node name: one pass, for callers without a `ClusterPods`."""
    by_node: dict[str, list[PodFacts]] = {}
    for pod in pods:
        facts = pod_facts(pod, config.designation)
        if facts.counts_for_node:
            by_node.setdefault(facts.node, []).append(facts)
    return by_node


def pods_on(node_name: str, pods: Sequence[Pod], config: Config) -> NodePods:
    return split_node_pods(pods_by_node(pods, config).get(node_name, []))


def split_node_pods(node_pods: Sequence[PodFacts]) -> NodePods:
    """One node's pods by what draining may do with them."""
    evictable: list[Pod] = []
    blocked: list[tuple[Pod, str]] = []
    managed: list[PodFacts] = []
    for facts in node_pods:
        if facts.managed:
            managed.append(facts)
        if facts.blocker:
            blocked.append((facts.pod, facts.blocker))
        else:
            evictable.append(facts.pod)
    return NodePods(tuple(evictable), tuple(blocked), tuple(managed))


def drain_budget(config: Config, gibbous_nodes: int, draining: int) -> int:
    """How many more nodes may start draining now."""
    by_percent = max(1, math.floor(config.scale_down.max_draining_percent / 100 * gibbous_nodes))
    return max(0, min(config.scale_down.max_draining_nodes, by_percent) - draining)


@dataclass(frozen=True)
class Drain:
    node: str
    reason: DrainReason
    why: str
    # Nodes whose warm hot-node taint to lift before draining, so the pods can go there
    # (scale-down by usage, `usagefit`).
    release: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScaleDownReview:
    drains: tuple[Drain, ...]
    unneeded_since: Mapping[str, float]  # node -> first seen unneeded (carry to the next call)
    kept: Mapping[str, str]  # node -> why it stays (for logs and tests)


def _utilization(used: Resources, allocatable: Resources) -> float:
    shares = []
    if allocatable.cpu_millis > 0:
        shares.append(used.cpu_millis / allocatable.cpu_millis)
    if allocatable.memory_bytes > 0:
        shares.append(used.memory_bytes / allocatable.memory_bytes)
    # A node whose GPUs are requested is in use, however little CPU its pods ask for.
    if allocatable.gpus > 0:
        shares.append(used.gpus / allocatable.gpus)
    return max(shares) if shares else 0.0


def _under_used(
    name: str,
    allocatable: Resources,
    used: Resources,
    *,
    bound: ClusterPods,
    room: _Room,
    threshold: float,
    usage: UsageRoom | None = None,
) -> tuple[str, tuple[str, ...]]:
    """Why a node in use may go (`used` is below `threshold` of what it has and its pods
    fit on the other nodes), or "" when it may not; and the warm nodes to release for it.
    With `usage` (hot-node mitigation on) and the node's usage known, a node whose usage
    share is below the usage threshold is a candidate too, and its pods must also fit by
    usage (`usagefit`)."""
    utilization = _utilization(used, allocatable)
    pods = [f.pod for f in bound.node_pods(name)]
    share = usage.share(name) if usage is not None else None
    if usage is None or share is None:
        # No usage reading (mitigation off, or metrics missing or stale): requests alone.
        if utilization < threshold and room.takes(pods, name) is not None:
            why = f"utilization {utilization:.2f} < {threshold:g} and its pods fit elsewhere"
            return why, ()
        return "", ()
    by_usage = share < usage.rule.threshold
    if not (utilization < threshold or by_usage):
        return "", ()
    release = room.takes(pods, name, usage)
    if release is None:
        return "", ()
    if by_usage:
        why = (
            f"measured use {share:.2f} < {usage.rule.threshold:g} and its pods fit elsewhere "
            "by requests and by use"
        )
    else:
        why = f"utilization {utilization:.2f} < {threshold:g} and its pods fit elsewhere by use"
    return why, release


class _Room:
    """Free room on the other nodes, to ask whether a node's pods fit elsewhere. Nodes are
    tried roomiest first (by free CPU), and only those with room for the pod at all, so a
    review of thousands of nodes does not rescan every full node for every pod."""

    def __init__(self, nodes: Sequence[ExistingNode], config: Config) -> None:
        self.config = config
        self.nodes = sorted(nodes, key=lambda n: (-n.free.cpu_millis, n.name))
        self._unwarmed: dict[str, ExistingNode | None] = {}

    def takes(
        self, pods: Sequence[Pod], leaving: str, usage: UsageRoom | None = None
    ) -> tuple[str, ...] | None:
        """Whether every pod fits on some other node (first fit, roomiest first, each pod
        using up the room it takes), with the node admission rules of the simulation: None
        when not, else the warm nodes to release. With `usage`, only where the target's
        measured use stays below red minus the headroom, or below yellow on a node with
        mitigation's warm taint (then to be lifted); a pod whose use is unknown then goes
        nowhere."""
        taken: dict[str, Resources] = {}
        used: dict[str, tuple[float, float]] = {}  # usage put on each target so far
        release: list[str] = []
        for pod in pods:
            try:
                pending = describe_pod(pod, self.config)[0]
            except GibbousError:
                return None
            load = usage.pod(pending.key) if usage is not None else (0.0, 0.0)
            if load is None:
                return None
            if pending.topology.constrained:
                # Inter-pod rules need the full simulation.
                others = [n for n in self.nodes if n.name != leaving]
                plan = simulate([pending], [], self.config, existing=others)
                if plan.new_nodes or plan.unschedulable:
                    return None
                target = plan.on_existing.get(pending.key, "")
                if usage is not None and not _usage_fits(usage, used, target, load, False):
                    return None
                continue
            requests = pending.requirement.requests
            for node in self.nodes:
                if node.free.cpu_millis < requests.cpu_millis:
                    return None  # sorted: no later node has the CPU either
                if node.name == leaving:
                    continue
                free = taken.get(node.name, node.free)
                if not requests.fits_in(free):
                    continue
                if usage is None:
                    fits = node_admits(pending, node, self.config)
                elif node_admits(pending, node, self.config):
                    fits = _usage_fits(usage, used, node.name, load, False)
                else:
                    warm = self._without_warm_taint(node)
                    fits = (
                        warm is not None
                        and node_admits(pending, warm, self.config)
                        and _usage_fits(usage, used, node.name, load, True)
                    )
                    if fits and node.name not in release:
                        release.append(node.name)
                if fits:
                    taken[node.name] = free - requests
                    break
            else:
                return None
        return tuple(release)

    def _without_warm_taint(self, node: ExistingNode) -> ExistingNode | None:
        """The node as the scheduler would see it once its warm hot-node taint is lifted;
        None when it has none."""
        if node.name not in self._unwarmed:
            kept = tuple(
                t
                for t in node.taints
                if not (
                    t.get("key") == HOT_NODE_TAINT
                    and t.get("value") in (HOT_NODE_WARM, HOT_NODE_HOT)
                )
            )
            self._unwarmed[node.name] = (
                replace(node, taints=kept) if len(kept) < len(node.taints) else None
            )
        return self._unwarmed[node.name]


def _usage_fits(
    usage: UsageRoom,
    used: dict[str, tuple[float, float]],
    node: str,
    load: tuple[float, float],
    warm: bool,
) -> bool:
    """Whether `node` takes `load` more by usage; if so, counts it as put there."""
    before = used.get(node, (0.0, 0.0))
    after = (before[0] + load[0], before[1] + load[1])
    if not usage.admits(node, after, warm=warm):
        return False
    used[node] = after
    return True


def _assigned_pod_needs_node(pod: Pod | None, config: Config) -> bool:
    """Whether a bin-select node's assigned pod (unfinished, if any) still wants a node of its own."""
    if pod is None:
        return False
    try:
        requests = pod_requests(pod)
    except GibbousError:
        return True
    return classify(requests, annotations_of(pod), config).placement is Placement.BIN_SELECT


def review_scale_down(
    nodes: Sequence[Mapping[str, Any]],
    bound: ClusterPods,
    existing: Sequence[ExistingNode],
    pending: Sequence[PendingPod],
    config: Config,
    *,
    now: float,
    unneeded_since: Mapping[str, float],
    draining: frozenset[str],
    view_of: NodeViewer | None = None,
    usage: UsageInputs | None = None,
) -> ScaleDownReview:
    """The drains to start now (within the budget) and the updated unneeded clock. `usage`:
    what metrics.k8s.io says, while hot-node mitigation is on (`usagefit`)."""
    settings = config.scale_down
    views = list(map(view_of or viewer(config.nvidia_gpu_time_slices), nodes))
    owner = install_owner(config)
    # Another install's nodes are not ours to judge: its pods are not "managed" here.
    ours = [view for view in views if owned(view.labels, owner)]
    room = _Room([n for n in existing if n.name not in draining], config)
    usage_room = _usage_room(usage, bound, now)
    needed_by_pending: set[str] = set()
    if pending:
        plan = simulate(list(pending), [], config, existing=list(existing))
        needed_by_pending = set(plan.on_existing.values())
    since: dict[str, float] = {}
    kept: dict[str, str] = {}
    ttl: list[Drain] = []
    unneeded: list[Drain] = []
    for view in ours:
        name = view.name
        if name in draining:
            continue
        if not view.ready:
            kept[name] = "not Ready"
            continue
        if view.unschedulable:
            kept[name] = "cordoned by someone else"
            continue
        blocked = bound.blocked.get(name)
        if blocked:
            key, why = min(blocked.items())
            kept[name] = f"{key} must not be evicted ({why})"
            continue
        created = view.created_at
        age = now - created if created is not None else math.inf
        if config.node_ttl_s and age >= config.node_ttl_s:
            ttl.append(Drain(name, DrainReason.TTL, f"older than nodeTTL ({age:.0f}s)"))
            continue
        if not settings.enabled:
            continue
        if age < settings.delay_after_add_s:
            kept[name] = "younger than scaleDown.delayAfterAdd"
            continue
        if name in needed_by_pending:
            kept[name] = "pending pods would be placed on it"
            continue
        why = ""
        release: tuple[str, ...] = ()
        if view.placement is Placement.BIN_SELECT:
            # P09: scaled in "if no other pods were also running on that node" -- unmanaged
            # pods included (DaemonSet and mirror pods belong to the node and do not count).
            assigned = bound.unfinished_by_uid.get(view.assigned_pod_uid)
            if not bound.node_pods(name) and not _assigned_pod_needs_node(
                assigned.pod if assigned else None, config
            ):
                why = "its bin-select pod is gone and no other pod runs there"
            elif pods_there := bound.node_pods(name):
                # Every pod's requests count here, managed or not: P09 keeps a bin-select
                # node for the other pods running there, and so does this rule while they
                # use it.
                used = sum((f.requests for f in pods_there if f.requests), Resources())
                why, _ = _under_used(
                    name,
                    view.allocatable,
                    used,
                    bound=bound,
                    room=room,
                    threshold=settings.bin_select_utilization_threshold,
                )
        elif not bound.managed_on.get(name):
            why = "no managed pods"
        elif usage is not None and (
            held := held_by_mitigation(usage.rule.hold_s, name, usage.hot_evictions, now)
        ):
            kept[name] = held
            continue
        else:
            why, release = _under_used(
                name,
                view.allocatable,
                bound.managed_used.get(name, Resources()),
                bound=bound,
                room=room,
                threshold=settings.bin_pack_utilization_threshold,
                usage=usage_room,
            )
        if not why:
            kept[name] = "in use"
            continue
        first = unneeded_since.get(name, now)
        since[name] = first
        if now - first >= settings.unneeded_time_s:
            unneeded.append(Drain(name, DrainReason.SCALE_DOWN, why, release))
        else:
            kept[name] = f"unneeded for {now - first:.0f}s of {settings.unneeded_time_s:.0f}s"
    budget = drain_budget(config, len(ours), len(draining))
    # Scale-down before TTL (it saves money now); name order keeps it deterministic.
    chosen = sorted(unneeded, key=lambda d: d.node) + sorted(ttl, key=lambda d: d.node)
    drains = _together(
        chosen,
        budget,
        bound=bound,
        existing=existing,
        draining=draining,
        config=config,
        kept=kept,
        usage=usage_room,
    )
    return ScaleDownReview(drains, since, kept)


def _usage_room(usage: UsageInputs | None, bound: ClusterPods, now: float) -> UsageRoom | None:
    if usage is None:
        return None

    def pods_on(node: str) -> list[str]:
        return [f.key for f in bound.node_pods(node)]

    held = frozenset(
        node for node, at in usage.hot_evictions.items() if now - at < usage.rule.hold_s
    )
    return UsageRoom(usage.rule, usage.snapshot, pods_on, now=now, held=held)


def _together(
    chosen: Sequence[Drain],
    budget: int,
    *,
    bound: ClusterPods,
    existing: Sequence[ExistingNode],
    draining: frozenset[str],
    config: Config,
    kept: dict[str, str],
    usage: UsageRoom | None = None,
) -> tuple[Drain, ...]:
    """The drains to start, within the budget. Each scale-down node's pods were found room
    on the other nodes one node at a time; nodes drained together must not count on each
    other's room (two light nodes that each fit on the other may not both go; an empty
    node the first one's pods were to move to must stay), so from the second on, the pods
    of all of them must fit on the nodes that stay. TTL drains go whatever the room: the
    node must be replaced anyway."""
    drains: list[Drain] = []
    moving: list[Pod] = []
    for candidate in chosen:
        drain = candidate
        if len(drains) >= budget:
            kept[drain.node] = "waiting for the disruption budget"
            continue
        pods = [f.pod for f in bound.node_pods(drain.node)]
        if drain.reason is DrainReason.SCALE_DOWN and (moving or (drains and pods)):
            leaving = {d.node for d in drains} | {drain.node} | draining
            room = _Room([n for n in existing if n.name not in leaving], config)
            together = [*moving, *pods]
            # Usage counts only when every pod's is known (else requests alone, as for a
            # single node whose usage is unknown).
            known = usage is not None and all(
                usage.pod(key_of(pod)) is not None for pod in together
            )
            release = room.takes(together, leaving="", usage=usage if known else None)
            if release is None:
                kept[drain.node] = "its pods fit elsewhere only with the nodes draining now"
                continue
            # The warm nodes all of them need (the earlier drains' own lifts still stand).
            drain = replace(drain, release=release)
        drains.append(drain)
        moving.extend(pods)
    return tuple(drains)
