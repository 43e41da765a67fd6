"""`karpenter-like`: Karpenter v1's provisioning and disruption, written from its source
(sigs.k8s.io/karpenter v1.15.0; the AWS provider where the cloud matters). What each part
follows:

* Batching (`pkg/controllers/provisioning/batcher.go`, options `batchIdleDuration` 1 s,
  `batchMaxDuration` 10 s): pending pods are provisioned for once no new one has come for
  1 s, or 10 s after the batch began.
* Scheduling (`provisioning/scheduling/scheduler.go`, `queue.go`): pods largest first (CPU,
  then memory), each onto a NodeClaim still launching that has room for it, else onto a
  NodeClaim of this batch that some type can still hold with it, else onto a new one.
* Launch (`nodeclaimtemplate.go`, the KWOK and AWS providers' `Create`): a NodeClaim carries
  every type that holds its pods; the cheapest offering wins; an insufficient-capacity error
  marks the offering unavailable for 3 minutes and the next cheapest is tried in the same
  launch (EC2 Fleet's behaviour), no back-off round. A NodeClaim not registered in 15
  minutes is deleted (`nodeclaim/lifecycle/liveness.go`); that does not touch the
  unavailable-offerings cache.
* NodePools: `default` (every type without GPUs, both capacity types) and `gpu` (the GPU
  types, tainted `nvidia.com/gpu:NoSchedule` on every node it makes, as Karpenter's docs
  recommend; GPU pods tolerate it through the API server's ExtendedResourceToleration).
* Disruption (`pkg/controllers/disruption/`, `consolidationPolicy:
  WhenEmptyOrUnderutilized`, `consolidateAfter: 0s`): every 10 s (`controller.go`'s polling
  period) the methods in order, the first that finds a command acting: emptiness, multi-node
  consolidation (the largest prefix, up to 100, of the candidates by disruption cost whose
  pods fit on the other nodes plus at most one new, cheaper node), single-node consolidation
  (delete, or replace with one cheaper node). A replacement for only spot nodes by spot is
  off (`SpotToSpotConsolidation` gate); an on-demand node replaced where spot is allowed is
  replaced by spot. Every command is validated again after 15 s (`consolidation.go`'s
  `commandValidationDelay`, `validation.go`) and dropped if its candidates or its simulation
  changed. Candidates are only nodes of its own NodeClaims, not nominated for pending pods.
  A replacement is launched first; its candidates are tainted at once and drained when it
  has registered (`queue.go`).
* Budgets (`pkg/apis/v1/nodepool.go`): `nodes: 10%` per NodePool, rounded up (10 % of 3
  nodes is 1), less the nodes of the pool being disrupted.
* Interruption: a notice drains the node at once (the interruption queue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from gibbous.autoscaler.cloud.base import InstanceState
from gibbous.core import keys
from gibbous.core.choice.selection import Offer
from gibbous.core.errors import GibbousError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import ExistingNode, PendingPod, fit_count
from gibbous.core.podmodel.pods import key_of, node_name_of
from gibbous.core.podmodel.resources import Resources
from gibbous.simulation.policies import _Claim, _PeerBase

GPU_TAINT = {"key": keys.NVIDIA_GPU, "effect": "NoSchedule"}
BATCH_IDLE_S = 1.0
BATCH_MAX_S = 10.0
VALIDATION_S = 15.0
POLLING_S = 10.0
REGISTRATION_TTL_S = 900.0
# A node pods were scheduled onto stays out of disruption this long (statenode.go,
# nominationWindow: max(2 x batchMaxDuration, 10 s)).
NOMINATION_S = max(2 * BATCH_MAX_S, 10.0)
CONSOLIDATED_S = 300.0
BUDGET_FRACTION = 0.10
MAX_MULTI_NODE = 100

Pod = tuple[str, PendingPod, dict[str, str]]  # key, facts, nodeSelector


@dataclass
class NewClaim:
    """A NodeClaim being built in one scheduling simulation."""

    pods: list[str]
    total: Resources
    offers: list[Offer]
    selector: dict[str, str]


@dataclass
class _Flying:
    """A NodeClaim still launching: what is left of it and the labels its node will have."""

    claim: _Claim
    room: Resources
    labels: dict[str, str]


@dataclass
class View:
    """One disruption pass's reading of the cluster."""

    nodes: list[ExistingNode]  # every schedulable node
    own: list[ExistingNode]  # those of this policy's NodeClaims
    pods: dict[str, list[dict[str, Any]]]  # node -> its pods
    offers: dict[str, Offer]  # node -> what it was bought as
    pending: list[Pod]
    node_of_instance: dict[str, str]

    def pool(self, node: str) -> str:
        offer = self.offers.get(node)
        return "default" if offer is None else pool_of(offer)

    def state(self) -> tuple[frozenset[str], frozenset[tuple[str, str]], frozenset[str]]:
        """What consolidation's decision depends on: nodes, bindings, pending pods."""
        return (
            frozenset(n.name for n in self.nodes),
            frozenset((key_of(p), node) for node, pods in self.pods.items() for p in pods),
            frozenset(key for key, _, _ in self.pending),
        )


@dataclass(frozen=True)
class Command:
    kind: str  # delete | replace
    candidates: tuple[str, ...]  # node names
    replacement: NewClaim | None
    decided_at: float
    method: str  # emptiness | multi | single


def budget(nodes_in_pool: int, disrupting: int) -> int:
    """Nodes of a NodePool that may be disrupted now: 10 % of its nodes rounded up, less
    those already being disrupted (nodepool.go, GetAllowedDisruptionsByReason)."""
    return max(0, math.ceil(BUDGET_FRACTION * nodes_in_pool) - disrupting)


def batch_closed(now: float, began: float, newest_pod: float) -> bool:
    """Whether a provisioning batch ends now: 1 s without a new pod, or 10 s since it began
    (batcher.go)."""
    return now - newest_pod >= BATCH_IDLE_S or now - began >= BATCH_MAX_S


def pool_of(offer: Offer) -> str:
    return "gpu" if offer.instance.gpu_count else "default"


def selector_holds(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class KarpenterLikePolicy(_PeerBase):
    timeout_marks_unavailable = False
    batch_began: float | None = None
    command: Command | None = None
    # replacement instance id -> the nodes it replaces
    replacing: dict[str, tuple[str, ...]] = field(default_factory=dict)
    disrupting: set[str] = field(default_factory=set)  # nodes tainted for disruption
    last_poll: float = -math.inf
    nominated_until: dict[str, float] = field(default_factory=dict)  # instance id -> until
    # the cluster's state when consolidation last found nothing, and when
    consolidated: tuple[object, float] = (None, -math.inf)

    def step(self) -> None:
        now = self.clock()
        self.settle(now, registration_timeout_s=REGISTRATION_TTL_S)
        self.finish_drains()
        self._interruptions()
        # Disruption runs apart from provisioning and sees the pods kube-scheduler has just
        # failed before the provisioner's batch closes (at least 1 s later): they are part of
        # its scheduling simulation (helpers.go, SimulateScheduling).
        self._finish_replacements()
        self._disrupt(now)
        self._provision(now)

    def _interruptions(self) -> None:
        for instance in list(self.cloud.instances.values()):
            if (
                instance.interrupted
                and instance.state is InstanceState.RUNNING
                and instance.node_name
                and instance.node_name not in self.world.cordoned
            ):
                self.drain_and_delete(instance.node_name)

    # --- provisioning ------------------------------------------------------------------------

    def _provision(self, now: float) -> None:
        pending = self.pending()
        if not pending:
            self.batch_began = None
            return
        if self.batch_began is None:
            self.batch_began = now
        # Pods become pending when kube-scheduler fails them, in the step they were created.
        newest = max(self.world.pods_by_key[key].created_at for key, _, _ in pending)
        if not batch_closed(now, self.batch_began, newest):
            return
        self.batch_began = None
        left = self._onto_in_flight(sort_largest_first(pending), now)
        for claim in self.pack(left, now):
            launched = self.launch_flexible(claim, now)
            if launched is not None:
                self.nominated_until[launched.instance_id] = now + NOMINATION_S

    def _onto_in_flight(self, pods: list[Pod], now: float) -> list[Pod]:
        """Pods placed on NodeClaims still launching that have room (scheduler.go's
        in-flight nodes); the rest."""
        flying = []
        for claim in self.claims.values():
            instance = self.cloud.instances.get(claim.instance_id)
            if instance is None or instance.state is not InstanceState.PENDING:
                continue
            used = Resources()
            for key in claim.pods:
                sim = self.world.pods_by_key.get(key)
                if sim is not None:
                    facts, _ = describe_pod(sim.obj, self.config)
                    used = used + facts.requirement.requests
            labels = {**instance.labels, keys.ZONE: instance.zone}
            flying.append(_Flying(claim, claim.offer.allocatable - used, labels))
        left = []
        for pod in pods:
            key, facts, selector = pod
            allowed = {id(o) for o in self.offers_for(facts, now)}
            target = next(
                (
                    entry
                    for entry in flying
                    if id(entry.claim.offer) in allowed
                    and (
                        facts.requirement.requests.gpus or not entry.claim.offer.instance.gpu_count
                    )
                    and selector_holds(selector, entry.labels)
                    and fit_count(facts.requirement.requests, entry.room) >= 1
                ),
                None,
            )
            if target is None:
                left.append(pod)
                continue
            target.claim.pods = (*target.claim.pods, key)
            self.nominated_until[target.claim.instance_id] = now + NOMINATION_S
            target.room = target.room - facts.requirement.requests
        return left

    def pack(self, pods: list[Pod], now: float) -> list[NewClaim]:
        """New NodeClaims for `pods` (largest first): each pod joins the first claim some
        type can still hold it with, else starts one."""
        claims: list[NewClaim] = []
        for key, facts, selector in pods:
            mine = self.offers_for(facts, now)
            if not facts.requirement.requests.gpus:
                # The gpu pool's taint keeps pods asking for no GPU off GPU types.
                mine = [o for o in mine if not o.instance.gpu_count]
            allowed = {id(o) for o in mine}
            for claim in claims:
                if claim.selector != selector:
                    continue
                need = claim.total + facts.requirement.requests
                keep = [
                    o
                    for o in claim.offers
                    if id(o) in allowed and fit_count(need, o.allocatable) >= 1
                ]
                if keep:
                    claim.pods.append(key)
                    claim.total, claim.offers = need, keep
                    break
            else:
                fitting = [
                    o for o in mine if fit_count(facts.requirement.requests, o.allocatable) >= 1
                ]
                if fitting:
                    claims.append(
                        NewClaim([key], facts.requirement.requests, fitting, dict(selector))
                    )
        return claims

    def launch_flexible(self, claim: NewClaim, now: float) -> _Claim | None:
        """The cheapest offering of the claim's types; on insufficient capacity, the next."""
        for offer in sorted(claim.offers, key=lambda o: (o.price, o.sort_key())):
            taints = (GPU_TAINT,) if offer.instance.gpu_count else ()
            launched = self.launch(offer, claim.pods, claim.selector, now, taints)
            if launched is not None:
                return launched
        return None

    # --- disruption --------------------------------------------------------------------------

    def _finish_replacements(self) -> None:
        """A replacement that registered lets its candidates be drained; one that failed
        gives them back."""
        for instance_id, candidates in list(self.replacing.items()):
            instance = self.cloud.instances.get(instance_id)
            if instance is not None and instance.state is InstanceState.PENDING:
                continue
            del self.replacing[instance_id]
            registered = instance is not None and instance.state is InstanceState.RUNNING
            for name in candidates:
                self.disrupting.discard(name)
                if registered:
                    self.drain_and_delete(name)
                else:
                    self.world.cordoned.discard(name)

    def _disrupt(self, now: float) -> None:
        if self.command is not None:
            if now - self.command.decided_at < VALIDATION_S:
                return
            command, self.command = self.command, None
            if self._still_valid(command, now):
                self._execute(command, now)
            self.last_poll = now
            return
        if now - self.last_poll < POLLING_S:
            return
        self.last_poll = now
        self.command = self._compute(now)

    def view(self) -> View:
        """What one disruption pass reads, gathered once."""
        node_of_instance = {
            i.id: i.node_name
            for i in self.cloud.instances.values()
            if i.node_name and i.state is not InstanceState.TERMINATED
        }
        offers = {
            i.node_name: self.offer_of(i.instance_type, i.category)
            for i in self.cloud.instances.values()
            if i.node_name and i.state is not InstanceState.TERMINATED
        }
        pods: dict[str, list[dict[str, Any]]] = {}
        for obj in self.world.pods():
            node = node_name_of(obj)
            if node:
                pods.setdefault(node, []).append(obj)
        mine = {node_of_instance[i] for i in self.launched if i in node_of_instance}
        nodes = self.all_nodes()
        return View(
            nodes=nodes,
            own=[n for n in nodes if n.name in mine],
            pods=pods,
            offers=offers,
            pending=self.pending(),
            node_of_instance=node_of_instance,
        )

    def candidates(self, view: View) -> list[ExistingNode]:
        """Own nodes, registered, not nominated for pods in the last 20 s, not being
        disrupted, within their NodePool's budget, by disruption cost (fewest pods first)."""
        now = self.clock()
        nominated = {
            view.node_of_instance.get(i) for i, until in self.nominated_until.items() if until > now
        }
        nodes = [n for n in view.own if n.name not in nominated and n.name not in self.disrupting]
        nodes.sort(key=lambda n: (len(view.pods.get(n.name, ())), n.name))
        pools: dict[str, int] = {}
        for node in view.own:
            pool = view.pool(node.name)
            pools[pool] = pools.get(pool, 0) + 1
        busy: dict[str, int] = {}
        for name in self.disrupting:
            busy[view.pool(name)] = busy.get(view.pool(name), 0) + 1
        allowed = {
            pool: budget(count + busy.get(pool, 0), busy.get(pool, 0))
            for pool, count in pools.items()
        }
        out = []
        for node in nodes:
            pool = view.pool(node.name)
            if allowed.get(pool, 0) > 0:
                allowed[pool] -= 1
                out.append(node)
        return out

    def _compute(self, now: float) -> Command | None:
        view = self.view()
        candidates = self.candidates(view)
        if not candidates:
            return None
        empty = tuple(n.name for n in candidates if not view.pods.get(n.name))
        if empty:
            return Command("delete", empty, None, now, "emptiness")
        # Nothing changed since a pass found nothing: skip, but look again at least every
        # 5 minutes (consolidation.go IsConsolidated, cluster.go ConsolidationState).
        state = view.state()
        if state == self.consolidated[0] and now - self.consolidated[1] < CONSOLIDATED_S:
            return None
        chosen = candidates[:MAX_MULTI_NODE]
        low, high, best = 2, len(chosen), None
        while low <= high:  # the largest prefix that consolidates (multinodeconsolidation.go)
            middle = (low + high) // 2
            found = self._simulate(tuple(n.name for n in chosen[:middle]), now, view)
            if found is not None and found.replacement is not None:
                found = self._without_same_type(found, view)
            if found is not None:
                best, low = found, middle + 1
            else:
                high = middle - 1
        if best is not None:
            return replace(best, method="multi")
        for node in candidates:
            found = self._simulate((node.name,), now, view)
            if found is not None:
                return replace(found, method="single")
        self.consolidated = (state, now)
        return None

    def _without_same_type(self, command: Command, view: View) -> Command | None:
        """Multi-node consolidation's filterOutSameInstanceType: a replacement may not be a
        type being removed, nor cost as much as the cheapest such (it would only move pods
        around)."""
        assert command.replacement is not None
        removed: dict[str, float] = {}
        for name in command.candidates:
            offer = view.offers.get(name)
            if offer is not None:
                removed[offer.name] = min(removed.get(offer.name, math.inf), offer.price)
        ceiling = min(
            (removed[o.name] for o in command.replacement.offers if o.name in removed),
            default=math.inf,
        )
        keep = [o for o in command.replacement.offers if o.price < ceiling]
        if not keep:
            return None
        return replace(command, replacement=replace(command.replacement, offers=keep))

    def _simulate(self, names: tuple[str, ...], now: float, view: View) -> Command | None:
        """Whether the pods of `names` (and the pending pods) fit on the other nodes plus at
        most one new NodeClaim cheaper than `names` together (consolidation.go,
        computeConsolidation)."""
        pods: list[Pod] = []
        for name in names:  # a candidate's pods must all land somewhere (helpers.go)
            for obj in view.pods.get(name, ()):
                try:
                    facts, _ = describe_pod(obj, self.config)
                except GibbousError:
                    return None
                selector = dict((obj.get("spec") or {}).get("nodeSelector") or {})
                pods.append((facts.key, facts, selector))
        moving = {key for key, _, _ in pods}
        pods += view.pending  # pending pods that fit nowhere do not block (helpers.go)
        others = [n for n in view.nodes if n.name not in names]
        left = self._onto(sort_largest_first(pods), others)
        new = self.pack(left, now)
        placed = {key for claim in new for key in claim.pods}
        if any(key in moving and key not in placed for key, _, _ in left):
            return None
        if not new:
            return Command("delete", names, None, now, "")
        if len(new) != 1:
            return None
        offers = [view.offers.get(name) for name in names]
        price = 0.0
        for offer in offers:
            if offer is None:
                return None
            price += offer.price
        cheaper = [o for o in new[0].offers if o.price < price]
        all_spot = all(o is not None and str(o.category) == "spot" for o in offers)
        spot = [o for o in cheaper if str(o.category) == "spot"]
        if all_spot and spot:
            return None  # SpotToSpotConsolidation is off by default
        if spot:
            cheaper = spot  # on-demand to [on-demand, spot]: the launch is spot
        if not cheaper:
            return None
        return Command("replace", names, replace(new[0], offers=cheaper), now, "")

    def _onto(self, pods: list[Pod], nodes: list[ExistingNode]) -> list[Pod]:
        """First fit of `pods` onto `nodes` (labels, taints, free requests); the pods left."""
        free = list(nodes)
        left = []
        for pod in pods:
            key, facts, _ = pod
            obj = self.world.pods_by_key[key].obj if key in self.world.pods_by_key else {}
            index = next(
                (
                    i
                    for i, n in enumerate(free)
                    if self.world._admits(facts, n, obj)
                    and fit_count(facts.requirement.requests, n.free) >= 1
                ),
                None,
            )
            if index is None:
                left.append(pod)
                continue
            free[index] = replace(free[index], free=free[index].free - facts.requirement.requests)
        return left

    def _still_valid(self, command: Command, now: float) -> bool:
        """After the 15 s wait: the candidates are still candidates within budgets, and the
        same simulation still deletes them (or, for a replacement, still consolidates)."""
        view = self.view()
        current = {n.name for n in self.candidates(view)}
        if not set(command.candidates) <= current:
            return False
        if command.method == "emptiness":
            return not any(view.pods.get(name) for name in command.candidates)
        again = self._simulate(command.candidates, now, view)
        if again is None:
            return False
        return command.kind == "replace" or again.kind == "delete"

    def _execute(self, command: Command, now: float) -> None:
        if command.kind == "delete":
            for name in command.candidates:
                self.drain_and_delete(name)
            return
        assert command.replacement is not None
        for name in command.candidates:  # karpenter.sh/disrupted:NoSchedule
            self.world.cordon(name)
            self.disrupting.add(name)
        launched = self.launch_flexible(replace(command.replacement, pods=[]), now)
        if launched is None:
            for name in command.candidates:
                self.world.cordoned.discard(name)
                self.disrupting.discard(name)
            return
        self.replacing[launched.instance_id] = command.candidates


def sort_largest_first(pods: list[Pod]) -> list[Pod]:
    return sorted(
        pods,
        key=lambda p: (
            p[1].requirement.requests.cpu_millis,
            p[1].requirement.requests.memory_bytes,
        ),
        reverse=True,
    )
