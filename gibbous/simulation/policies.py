"""Provisioning policies the simulator compares, each driving the same simulated cloud and
cluster. `gibbous` and `luna-rule` are Gibbous's own loop and node lifecycle; the others
are written from their projects' source (docs/decisions.md, "Simulation" and "Simulator
peers, calibrated"):

* `gibbous`: the autoscaler loop and node lifecycle as configured.
* `luna-rule`: the same with Luna's bin-pack rule (`binPackingNodeStrategy: cheapest-node`).
* `karpenter-like`: Karpenter v1's provisioning and disruption, in
  `gibbous/simulation/karpenterlike.py` (its docstring says what follows which upstream file).
* `ca-like`: fixed node groups (one per workload: the cheapest type and category its
  pod fits), scale-up with the least-waste expander every 10 s, failed groups backed off
  5 minutes, scale-down of a node below 50 % of requests whose pods fit elsewhere after
  10 minutes unneeded (counted during the 10 minutes after a scale-up too, when only the
  deletion waits), empty nodes together (up to 10), others one per scan; no interruption
  handling. Only nodes it launched are its to remove.
* `static`: the nodes Gibbous would buy for the scenario's peak, bought at the start and
  kept all day; kube-scheduler alone places pods on them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gibbous.autoscaler.cloud.base import (
    CloudError,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
)
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.choice.selection import Offer, build_offers, candidate_offers, offer_labels
from gibbous.core.errors import GibbousError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import ExistingNode, PendingPod, fit_count
from gibbous.core.planning.scaleup import existing_nodes, plan_scale_up
from gibbous.core.podmodel.pods import key_of, node_name_of, scheduling_gates
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config, render_config
from gibbous.simulation.cloud import SimCloud
from gibbous.simulation.scenario import Scenario
from gibbous.simulation.world import SimCluster

POLICIES = ("gibbous", "luna-rule", "karpenter-like", "ca-like", "static")


class Policy(Protocol):
    name: str

    def step(self) -> None: ...


class Tokens:
    def __init__(self, prefix: str) -> None:
        self.prefix, self.count = prefix, 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:06d}"


class GibbousPolicy:
    """Gibbous's own loop and node lifecycle, as they run in the cluster."""

    def __init__(
        self,
        name: str,
        config: Config,
        cloud: SimCloud,
        world: SimCluster,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.autoscaler = Autoscaler(
            config, cloud, world, clock=clock, new_token=Tokens(name), jitter=lambda: 0.5
        )
        self.lifecycle = NodeLifecycle(self.autoscaler, world, clock=clock)

    def step(self) -> None:
        self.autoscaler.step()
        self.lifecycle.step()


def luna_rule(config: Config) -> Config:
    values = render_config(config)
    values["binPackingNodeStrategy"] = "cheapest-node"
    return build_config(_nested(values))


def _nested(flat: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if rest:
            out.setdefault(head, {})[rest] = value
        else:
            out[key] = value
    return out


@dataclass
class _Claim:
    """A node being bought for some pods (a NodeClaim; a node-group node)."""

    token: str
    offer: Offer
    instance_id: str
    started_at: float
    pods: tuple[str, ...] = ()
    registered_at: float | None = None
    selector: dict[str, str] = field(default_factory=dict)


@dataclass
class _PeerBase:
    """What the peer policies share: reading pending pods, launching, nodes they own."""

    name: str
    config: Config
    cloud: SimCloud
    world: SimCluster
    clock: Callable[[], float]
    offers: list[Offer]
    claims: dict[str, _Claim] = field(default_factory=dict)  # token -> claim
    unavailable: dict[tuple[str, str], float] = field(default_factory=dict)  # -> until
    tokens: Tokens = field(default_factory=lambda: Tokens("peer"))
    launched: set[str] = field(default_factory=set)  # instance ids this policy created
    draining: set[str] = field(default_factory=set)  # nodes drained, deleted once empty
    offers_memo: dict[object, list[Offer]] = field(default_factory=dict)
    offers_by_key: dict[tuple[str, str], Offer] = field(init=False)

    def __post_init__(self) -> None:
        self.offers_by_key = {(o.name, str(o.category)): o for o in self.offers}

    def offer_of(self, instance_type: str, category: str) -> Offer:
        return self.offers_by_key[(instance_type, category)]

    def pending(self) -> list[tuple[str, PendingPod, dict[str, str]]]:
        """Unbound pods kube-scheduler found no node for: (key, facts, nodeSelector)."""
        nominated = {key for claim in self.claims.values() for key in claim.pods}
        out = []
        for pod in self.world.pods():
            key = key_of(pod)
            if node_name_of(pod) or scheduling_gates(pod) or key in nominated:
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("reason") == "Unschedulable" for c in conditions):
                continue
            try:
                facts, _ = describe_pod(pod, self.config)
            except GibbousError:
                continue
            selector = dict((pod.get("spec") or {}).get("nodeSelector") or {})
            out.append((key, facts, selector))
        return out

    def offers_for(self, facts: PendingPod, now: float) -> list[Offer]:
        """The offers the pod may run on, cheapest first, less those marked unavailable
        (remembered per pod requirement while the unavailable set stays the same)."""
        blocked = frozenset(k for k, until in self.unavailable.items() if until > now)
        try:
            key: object = (facts.requirement, blocked)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.offers_memo:
            return self.offers_memo[key]
        found = candidate_offers(facts.requirement, self.offers, self.config, backed_off=blocked)
        if key is not None:
            if len(self.offers_memo) > 10_000:
                self.offers_memo.clear()
            self.offers_memo[key] = list(found.offers)
        return list(found.offers)

    def launch(
        self,
        offer: Offer,
        pods: Sequence[str],
        selector: dict[str, str],
        now: float,
        taints: tuple[Mapping[str, str], ...] = (),
    ) -> _Claim | None:
        limit = self.config.cluster_gpu_limit
        if limit is not None and offer.instance.gpu_count:
            # Karpenter's NodePool `limits` (nvidia.com/gpu), cluster-autoscaler's
            # --gpu-total: the same cap clusterGPULimit puts on Gibbous.
            held = sum(
                self.offer_of(i.instance_type, i.category).instance.gpu_count
                for i in self.cloud.instances.values()
                if i.state is not InstanceState.TERMINATED
            )
            if held + offer.instance.gpu_count > limit:
                return None
        token = self.tokens()
        labels = offer_labels(offer, self.config)
        for key in (keys.CREATED_BY, keys.PLACEMENT, keys.CAPACITY_TYPE, keys.PRICE_PER_HOUR):
            labels.pop(key, None)
        labels.update(selector)
        request = LaunchRequest(
            token=token,
            cluster_id=self.config.cluster_id,
            instance_type=offer.name,
            category=str(offer.category),
            # A pod pinned to a zone is launched there (the NodeClaim's zone requirement).
            zones=(selector[keys.ZONE],) if keys.ZONE in selector else (),
            labels=labels,
            taints=taints,
        )
        try:
            instance = self.cloud.create(request)
        except (InsufficientCapacityError, QuotaExceededError):
            self.unavailable[(offer.name, str(offer.category))] = now + self.unavailable_s
            return None
        except CloudError:
            return None
        claim = _Claim(token, offer, instance.id, now, tuple(pods), selector=dict(selector))
        self.claims[token] = claim
        self.launched.add(instance.id)
        return claim

    unavailable_s = 180.0
    # Whether a launch that never registered marks its offering unavailable: a node group's
    # back-off in cluster-autoscaler; not in Karpenter, whose unavailable-offerings cache only
    # insufficient-capacity errors fill (provider-aws pkg/cache/unavailableofferings.go).
    timeout_marks_unavailable = True

    def settle(self, now: float, registration_timeout_s: float) -> None:
        """Claims whose node registered no longer nominate pods; launches that never came
        are deleted and their offering skipped."""
        for token, claim in list(self.claims.items()):
            instance = self.cloud.instances.get(claim.instance_id)
            if instance is None or instance.state is InstanceState.TERMINATED:
                if instance is not None and instance.failure_kind:
                    self.unavailable[(claim.offer.name, str(claim.offer.category))] = (
                        now + self.unavailable_s
                    )
                del self.claims[token]
                continue
            try:
                current = self.cloud.get(claim.instance_id)
            except InstanceNotFoundError:
                del self.claims[token]
                continue
            if current.state is InstanceState.RUNNING:
                # Its pods stay nominated until kube-scheduler had a step to bind them.
                if claim.registered_at is None:
                    claim.registered_at = now
                elif now > claim.registered_at:
                    del self.claims[token]
            elif now - claim.started_at >= registration_timeout_s:
                self._delete(claim.instance_id)
                if self.timeout_marks_unavailable:
                    self.unavailable[(claim.offer.name, str(claim.offer.category))] = (
                        now + self.unavailable_s
                    )
                del self.claims[token]

    def _delete(self, instance_id: str) -> None:
        with contextlib.suppress(CloudError):
            self.cloud.delete(instance_id)
        self.world.sweep_terminated()

    def own_nodes(self) -> list[ExistingNode]:
        """Schedulable nodes of instances this policy launched (a scenario's starting nodes
        are nobody's: neither Karpenter nor a node group would remove them)."""
        mine = {
            i.node_name
            for i in self.cloud.instances.values()
            if i.id in self.launched and i.node_name and i.state is not InstanceState.TERMINATED
        }
        return [n for n in self.all_nodes() if n.name in mine]

    def all_nodes(self) -> list[ExistingNode]:
        """Every schedulable node, with its free allocatable."""
        nodes = existing_nodes(self.world.nodes(), self.world.pods(), {}, self.config)
        return [n for n in nodes if n.name not in self.world.cordoned]

    def instance_of(self, node: str) -> str | None:
        for instance in self.cloud.instances.values():
            if instance.node_name == node and instance.state is not InstanceState.TERMINATED:
                return instance.id
        return None

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        return [p for p in self.world.pods() if node_name_of(p) == node]

    def fits_elsewhere(self, node: str, nodes: list[ExistingNode]) -> bool:
        """Whether every pod on `node` fits on the other nodes (first fit, requests only)."""
        others = [n for n in nodes if n.name != node]
        for pod in self.pods_on(node):
            try:
                facts, _ = describe_pod(pod, self.config)
            except GibbousError:
                return False
            index = next(
                (
                    i
                    for i, n in enumerate(others)
                    if self.world._admits(facts, n, pod)
                    and fit_count(facts.requirement.requests, n.free) >= 1
                ),
                None,
            )
            if index is None:
                return False
            others[index] = replace(
                others[index], free=others[index].free - facts.requirement.requests
            )
        return True

    def drain_and_delete(self, node: str) -> None:
        """Cordon, evict every pod, and delete the instance once no pod is left on it (pods
        may take the scenario's eviction grace to terminate)."""
        self.world.cordon(node)
        for pod in self.pods_on(node):
            self.world.evict(pod)
        self.draining.add(node)
        self.finish_drains()

    def finish_drains(self) -> None:
        for node in list(self.draining):
            if self.pods_on(node):
                continue
            self.draining.discard(node)
            instance_id = self.instance_of(node)
            if instance_id:
                self._delete(instance_id)


@dataclass
class CaLikePolicy(_PeerBase):
    groups: list[Offer] = field(default_factory=list)
    backoff_until: dict[tuple[str, str], float] = field(default_factory=dict)
    unneeded_since: dict[str, float] = field(default_factory=dict)
    last_scale_up: float = -math.inf
    last_scan: float = -math.inf

    unavailable_s = 300.0  # --initial-node-group-backoff-duration
    utilization_threshold = 0.5  # --scale-down-utilization-threshold
    unneeded_time_s = 600.0  # --scale-down-unneeded-time
    delay_after_add_s = 600.0  # --scale-down-delay-after-add
    max_empty_bulk_delete = 10  # --max-scale-down-parallelism (was --max-empty-bulk-delete)

    def step(self) -> None:
        now = self.clock()
        if now - self.last_scan < 10.0:  # --scan-interval
            return
        self.last_scan = now
        self.settle(now, registration_timeout_s=900.0)  # --max-node-provision-time
        self.finish_drains()
        self._scale_up(now)
        self._scale_down(now)

    def _scale_up(self, now: float) -> None:
        pending = self.pending()
        if not pending:
            return
        best: tuple[float, Offer, list[list[str]]] | None = None
        for group in self.groups:
            if self.unavailable.get((group.name, str(group.category)), 0) > now:
                continue
            bins: list[tuple[list[str], Resources]] = []
            for key, facts, _ in pending:
                if group not in self.offers_for(facts, now):
                    continue
                for index, (pods, used) in enumerate(bins):
                    need = used + facts.requirement.requests
                    if fit_count(need, group.allocatable) >= 1:
                        bins[index] = ([*pods, key], need)
                        break
                else:
                    if fit_count(facts.requirement.requests, group.allocatable) >= 1:
                        bins.append(([key], facts.requirement.requests))
            if not bins:
                continue
            # least-waste: the unused share of CPU and memory on the new nodes
            capacity = group.allocatable
            used_cpu = sum(b[1].cpu_millis for b in bins)
            used_memory = sum(b[1].memory_bytes for b in bins)
            waste = (1 - used_cpu / (capacity.cpu_millis * len(bins) or 1)) + (
                1 - used_memory / (capacity.memory_bytes * len(bins) or 1)
            )
            if best is None or waste < best[0]:
                best = (waste, group, [b[0] for b in bins])
        if best is None:
            return
        _, group, chosen = best
        for pods in chosen:
            if self.launch(group, pods, {}, now) is None:
                break
        self.last_scale_up = now

    def _scale_down(self, now: float) -> None:
        """Unneeded time is counted at every scan, the scale-up cooldown included (upstream
        updates its unneeded nodes before checking the cooldown, core/static_autoscaler.go);
        the cooldown only holds the deletions back. Empty nodes unneeded long enough go
        together, up to --max-scale-down-parallelism (10; it replaced the deprecated
        --max-empty-bulk-delete); a node with pods is drained alone (--max-drain-parallelism
        1), one per scan."""
        nodes = self.own_nodes()
        destinations = self.all_nodes()
        names = {n.name for n in nodes}
        self.unneeded_since = {k: v for k, v in self.unneeded_since.items() if k in names}
        for node in nodes:
            allocatable = self._allocatable(node.name)
            if allocatable is None:
                continue
            used = allocatable - node.free
            utilization = max(
                used.cpu_millis / (allocatable.cpu_millis or 1),
                used.memory_bytes / (allocatable.memory_bytes or 1),
            )
            if utilization < self.utilization_threshold and self.fits_elsewhere(
                node.name, destinations
            ):
                self.unneeded_since.setdefault(node.name, now)
            else:
                self.unneeded_since.pop(node.name, None)
        if now - self.last_scale_up < self.delay_after_add_s:
            return
        ripe = [
            name
            for name, since in sorted(self.unneeded_since.items(), key=lambda item: item[1])
            if now - since >= self.unneeded_time_s
        ]
        empty = [name for name in ripe if not self.pods_on(name)][: self.max_empty_bulk_delete]
        for name in empty:
            self.drain_and_delete(name)
            del self.unneeded_since[name]
        if empty:
            return
        for name in ripe[:1]:
            self.drain_and_delete(name)
            del self.unneeded_since[name]

    def _allocatable(self, node: str) -> Resources | None:
        instance_id = self.instance_of(node)
        if instance_id is None:
            return None
        instance = self.cloud.instances[instance_id]
        return self.offer_of(instance.instance_type, instance.category).allocatable


class StaticPolicy:
    """The peak's nodes, planned by Gibbous's own planner, bought at the start and kept all
    day (a launch refused or not done within scaleUpTimeout is planned again without that
    type and category); kube-scheduler alone places pods on them."""

    def __init__(
        self,
        config: Config,
        cloud: SimCloud,
        clock: Callable[[], float],
        peak: Sequence[dict[str, Any]],
    ) -> None:
        self.name = "static"
        self.config = config
        self.cloud = cloud
        self.clock = clock
        self.offers = build_offers(cloud.instance_types(), config)
        self.waiting: dict[str, PendingPod] = {}
        for pod in peak:
            facts, _ = describe_pod(pod, config)
            self.waiting[facts.key] = facts
        self.flying: dict[str, tuple[str, tuple[str, ...], float, tuple[str, str]]] = {}
        self.blocked: set[tuple[str, str]] = set()
        self.placed: dict[str, PendingPod] = {}
        self.tokens = Tokens("static")

    def step(self) -> None:
        now = self.clock()
        for token, (instance_id, pods, started, pair) in list(self.flying.items()):
            try:
                instance = self.cloud.get(instance_id)
            except InstanceNotFoundError:
                instance = None
            if instance is not None and instance.state is InstanceState.RUNNING:
                del self.flying[token]
                continue
            failed = instance is None or instance.state is InstanceState.TERMINATED
            if failed or now - started >= self.config.scale_up_timeout_s:
                if not failed:
                    with contextlib.suppress(CloudError):
                        self.cloud.delete(instance_id)
                self.blocked.add(pair)
                del self.flying[token]
                self._unplace(pods)
        if not self.waiting:
            return
        offers = [o for o in self.offers if (o.name, str(o.category)) not in self.blocked]
        plan = plan_scale_up(list(self.waiting.values()), offers, self.config, now=now)
        for key in plan.unsatisfiable:  # nothing to buy for it: kube-scheduler's to place
            self.waiting.pop(key, None)
        for launch in plan.launches:
            token = self.tokens()
            pair = (launch.offer.name, str(launch.offer.category))
            request = LaunchRequest(
                token=token,
                cluster_id=self.config.cluster_id,
                instance_type=launch.offer.name,
                category=str(launch.offer.category),
                zones=launch.zones,
                labels={k: v for k, v in launch.labels.items() if k != keys.ASSIGNED_POD_UID},
                taints=launch.taints,
            )
            try:
                instance = self.cloud.create(request)
            except CloudError:
                self.blocked.add(pair)
                continue
            self.flying[token] = (instance.id, launch.pods, now, pair)
            for key in launch.pods:
                self.placed[key] = self.waiting.pop(key)

    def _unplace(self, pods: tuple[str, ...]) -> None:
        for key in pods:
            facts = self.placed.pop(key, None)
            if facts is not None:
                self.waiting[key] = facts


def peak_pods(scenario: Scenario, config: Config) -> list[dict[str, Any]]:
    """The pods alive when the scenario's requested CPU is highest (arrivals and run times
    as written; evictions aside), for the static policy."""
    windows: list[tuple[float, float, float, dict[str, Any]]] = []
    for workload in scenario.workloads:
        template = {
            "metadata": dict(workload.pod.get("metadata") or {}),
            "spec": workload.pod["spec"],
        }
        probe = {
            **template,
            "metadata": {
                **template["metadata"],
                "name": "probe",
                "namespace": "default",
                "uid": "probe",
            },
        }
        try:
            facts, _ = describe_pod(probe, config)
        except GibbousError:
            continue
        cpu = facts.requirement.requests.cpu_millis
        for at in scenario.arrival_times(workload):
            end = at + workload.run_for_s if workload.run_for_s is not None else math.inf
            for _ in range(workload.count):
                windows.append((at, end, cpu, template))
    best_t, best_cpu = 0.0, -1.0
    for at, _, _, _ in windows:
        total = sum(cpu for start, end, cpu, _ in windows if start <= at < end)
        if total > best_cpu:
            best_t, best_cpu = at, total
    out = []
    for index, (_, _, _, template) in enumerate(w for w in windows if w[0] <= best_t < w[1]):
        meta = dict(template["metadata"])
        meta.update(name=f"peak-{index:05d}", namespace="default", uid=f"peak-{index:05d}")
        out.append({"metadata": meta, "spec": template["spec"]})
    return out


def node_groups(scenario: Scenario, config: Config, offers: list[Offer]) -> list[Offer]:
    """ca-like's node groups: per workload, the cheapest offer its pod fits (what a
    cluster's owner would have set up for it)."""
    groups = []
    for workload in scenario.workloads:
        probe = {
            "metadata": {
                **dict(workload.pod.get("metadata") or {}),
                "name": "probe",
                "namespace": "default",
                "uid": "probe",
            },
            "spec": workload.pod["spec"],
        }
        try:
            facts, _ = describe_pod(probe, config)
        except GibbousError:
            continue
        found = candidate_offers(facts.requirement, offers, config)
        if found.offers and found.offers[0] not in groups:
            groups.append(found.offers[0])
    return groups
