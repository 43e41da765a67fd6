"""What the autoscaler knows of every pod, computed once per pod version, and the
per-node aggregates kept up to date as pods change (not summed again every step).

`ClusterPods.update` takes one pod change (a watch event); `sync` takes a whole list and
recomputes only the pods whose `resourceVersion` changed (for callers without events).
A step then reads the unbound pods, each node's requested resources and placed pods'
inter-pod facts, and each node's pods for scale-down, at a cost that follows what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.constraints import do_not_evict_reason, ignored_by_opt_out
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    is_daemonset_pod,
    is_finished,
    is_mirror_pod,
    key_of,
    metadata,
    node_name_of,
    pod_requests,
    uid_of,
)
from gibbous.core.podmodel.podtopology import PodTopology, placed_pod_topology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.podmodel.rulesize import MAX_RULE_ITEMS, rule_items
from gibbous.core.settings.config import PodDesignation


@dataclass(frozen=True, slots=True)
class PodFacts:
    pod: Pod
    key: str
    uid: str
    node: str  # "" while unbound
    requests: Resources | None  # None: the pod cannot be read
    finished: bool
    belongs_to_node: bool  # DaemonSet and mirror pods: never evicted, keep no node alive
    managed: bool
    blocker: str  # why it must not be evicted ("" when it may be)
    topology: PodTopology  # as other pods' inter-pod rules see it
    rules_problem: str  # why its rules are too many to plan for ("" when they are not)

    @property
    def counts_for_node(self) -> bool:
        """Bound, unfinished and not the node's own: a pod scale-down looks at."""
        return bool(self.node) and not self.finished and not self.belongs_to_node


def pod_facts(pod: Pod, designation: PodDesignation) -> PodFacts:
    try:
        requests: Resources | None = pod_requests(pod)
    except GibbousError:
        requests = None
    annotations = annotations_of(pod)
    items = rule_items(pod)
    return PodFacts(
        pod=pod,
        key=key_of(pod),
        uid=uid_of(pod),
        node=node_name_of(pod),
        requests=requests,
        finished=is_finished(pod),
        belongs_to_node=is_daemonset_pod(pod) or is_mirror_pod(pod),
        managed=designation.marks(pod) and not ignored_by_opt_out(annotations),
        blocker=do_not_evict_reason(annotations),
        topology=placed_pod_topology(pod),
        rules_problem=_rules_problem(items),
    )


def _rules_problem(items: int) -> str:
    if items <= MAX_RULE_ITEMS:
        return ""
    return (
        f"its scheduling rules (nodeSelector, tolerations, required affinity and topology "
        f"spread) have {items} items, more than Gibbous plans for ({MAX_RULE_ITEMS})"
    )


class ClusterPods:
    """Every pod's facts and the aggregates a step reads, updated one pod at a time."""

    def __init__(self, designation: PodDesignation) -> None:
        self.designation = designation
        self.facts: dict[str, PodFacts] = {}
        self.unbound: dict[str, PodFacts] = {}  # unfinished pods with no node yet
        self.on_node: dict[str, dict[str, PodFacts]] = {}  # unfinished pods by node
        self.used: dict[str, Resources] = {}  # their summed requests (readable ones)
        self.managed_used: dict[str, Resources] = {}  # the same, of managed pods that count
        self.blocked: dict[str, dict[str, str]] = {}  # node -> pod key -> why not evictable
        self.managed_on: dict[str, int] = {}  # node -> managed pods that count
        self.unfinished_by_uid: dict[str, PodFacts] = {}
        self._placed: dict[str, tuple[PodTopology, ...]] = {}

    def update(self, key: str, pod: Pod | None) -> None:
        old = self.facts.pop(key, None)
        if old is not None:
            self._forget(old)
        if pod is None:
            return
        facts = pod_facts(pod, self.designation)
        self.facts[key] = facts
        if facts.finished:
            return
        self.unfinished_by_uid[facts.uid] = facts
        if not facts.node:
            self.unbound[key] = facts
            return
        self.on_node.setdefault(facts.node, {})[key] = facts
        self._placed.pop(facts.node, None)
        if facts.counts_for_node:
            if facts.blocker:
                self.blocked.setdefault(facts.node, {})[key] = facts.blocker
            if facts.managed:
                self.managed_on[facts.node] = self.managed_on.get(facts.node, 0) + 1
        if facts.requests is not None:
            self.used[facts.node] = self.used.get(facts.node, Resources()) + facts.requests
            if facts.managed and facts.counts_for_node:
                self.managed_used[facts.node] = (
                    self.managed_used.get(facts.node, Resources()) + facts.requests
                )

    def _forget(self, old: PodFacts) -> None:
        if self.unfinished_by_uid.get(old.uid) is old:
            del self.unfinished_by_uid[old.uid]
        self.unbound.pop(old.key, None)
        pods = self.on_node.get(old.node)
        if pods is None or pods.pop(old.key, None) is None:
            return
        self._placed.pop(old.node, None)
        if not pods:
            del self.on_node[old.node]
        if old.counts_for_node:
            blocked = self.blocked.get(old.node)
            if blocked is not None and blocked.pop(old.key, None) is not None and not blocked:
                del self.blocked[old.node]
            if old.managed:
                self.managed_on[old.node] -= 1
                if not self.managed_on[old.node]:
                    del self.managed_on[old.node]
        if old.requests is not None:
            left = self.used[old.node] - old.requests
            if pods:
                self.used[old.node] = left
            else:
                self.used.pop(old.node, None)
            if old.managed and old.counts_for_node:
                managed_left = self.managed_used[old.node] - old.requests
                if any(f.managed and f.counts_for_node for f in pods.values()):
                    self.managed_used[old.node] = managed_left
                else:
                    self.managed_used.pop(old.node)

    def sync(self, pods: Iterable[Pod]) -> None:
        """Bring the facts in line with a full list: pods whose version is unchanged are not
        read again (a pod without a version always is)."""
        seen = set()
        for pod in pods:
            key = key_of(pod)
            seen.add(key)
            version = _version(pod)
            known = self.facts.get(key)
            if not version or known is None or _version(known.pod) != version:
                self.update(key, pod)
        for gone in [key for key in self.facts if key not in seen]:
            self.update(gone, None)

    def placed(self, node: str) -> tuple[PodTopology, ...]:
        """The inter-pod facts of the pods on `node` (rebuilt only when they changed)."""
        cached = self._placed.get(node)
        if cached is None:
            cached = tuple(f.topology for f in self.on_node.get(node, {}).values())
            self._placed[node] = cached
        return cached

    def node_pods(self, node: str) -> list[PodFacts]:
        """The pods scale-down looks at on `node`."""
        return [f for f in self.on_node.get(node, {}).values() if f.counts_for_node]


def _version(pod: Pod) -> str:
    return str(metadata(pod).get("resourceVersion") or "")
