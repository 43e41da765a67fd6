"""A scenario run under one policy on a virtual clock: no sleeping, a day in seconds.

Each step: the cloud events due are applied, pods arrive, the policy steps, kube-scheduler
binds what fits, kubelets finish what has run its time, spot instances whose notice ran
out are reclaimed, and the bill runs on. Steps are 2 s while anything waits (pods pending,
launches in flight) and up to 30 s otherwise, never past the next arrival or event.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.autoscaler.cloud.base import Instance, InstanceState
from gibbous.catalogs import load_catalog
from gibbous.core.choice.selection import Offer, build_offers
from gibbous.core.errors import GibbousError
from gibbous.core.lifecycle.hotnode import Level, Usage, level_of
from gibbous.core.podmodel.pods import node_name_of
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config
from gibbous.simulation.cloud import SimCloud
from gibbous.simulation.karpenterlike import KarpenterLikePolicy
from gibbous.simulation.policies import (
    CaLikePolicy,
    GibbousPolicy,
    Policy,
    StaticPolicy,
    luna_rule,
    node_groups,
    peak_pods,
)
from gibbous.simulation.scenario import INTERRUPT_NOTICE_S, CloudEvent, Scenario
from gibbous.simulation.world import SimCluster

START = 1_800_000_000.0
BUSY_STEP_S = 2.0
IDLE_STEP_S = 30.0
SAMPLE_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Sample:
    t_s: float
    nodes: int
    cost_per_hour: float
    pending: int
    running: int


@dataclass(frozen=True)
class FirstNode:
    """One of the first nodes that ran: its type, category and when it first ran."""

    instance_id: str
    instance_type: str
    category: str
    ran_at_s: float


@dataclass
class Result:
    scenario: str
    policy: str
    seed: int
    total_cost: float = 0.0
    node_hours: float = 0.0
    pending_p50_s: float = 0.0
    pending_p99_s: float = 0.0
    pending_max_s: float = 0.0
    never_ran: int = 0
    capacity_p99_s: float = 0.0  # per arrival: until its last pod ran
    evictions: int = 0
    interruptions: int = 0
    peak_nodes: int = 0
    peak_gpus: int = 0
    above_red_node_s: float | None = 0.0  # None: no workload says what it uses
    spot_share: float = 0.0  # of node-hours
    nodes_created: int = 0  # launches that became nodes
    nodes_deleted: int = 0
    pods_bound: int = 0
    # $ with each node billed from its launch, not from Ready: what a cluster whose Node
    # objects appear at launch (KWOK providers) shows, as the race measures.
    cost_from_launch: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    first_nodes: list[FirstNode] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "policy": self.policy,
            "seed": self.seed,
            "total_cost": round(self.total_cost, 4),
            "node_hours": round(self.node_hours, 3),
            "pending_p50_s": round(self.pending_p50_s, 1),
            "pending_p99_s": round(self.pending_p99_s, 1),
            "pending_max_s": round(self.pending_max_s, 1),
            "never_ran": self.never_ran,
            "capacity_p99_s": round(self.capacity_p99_s, 1),
            "evictions": self.evictions,
            "interruptions": self.interruptions,
            "peak_nodes": self.peak_nodes,
            "peak_gpus": self.peak_gpus,
            "above_red_node_s": None
            if self.above_red_node_s is None
            else round(self.above_red_node_s, 1),
            "spot_share": round(self.spot_share, 3),
            "nodes_created": self.nodes_created,
            "nodes_deleted": self.nodes_deleted,
            "pods_bound": self.pods_bound,
            "cost_from_launch": round(self.cost_from_launch, 4),
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def scenario_config(
    scenario: Scenario,
    overrides: list[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> Config:
    """The scenario's options, then a configuration file's (`--config`), then `--set`."""
    document: dict[str, Any] = {"cloudProvider": scenario.cloud, "clusterID": "simulated"}
    for layer in (scenario.config, configuration or {}):
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(document.get(key), Mapping):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
    document["cloudProvider"] = scenario.cloud
    return build_config(document, overrides=overrides)


def run(
    scenario: Scenario,
    policy_name: str,
    *,
    seed: int = 1,
    overrides: list[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Result:
    """Run `scenario` under `policy_name`; `progress` is told the fraction done at each
    sample."""
    simulation = _Run(
        scenario, policy_name, seed, scenario_config(scenario, overrides, configuration)
    )
    while simulation.clock.now <= simulation.end:
        simulation.step(progress)
    return simulation.finish()


def _policy(
    policy_name: str,
    scenario: Scenario,
    config: Config,
    *,
    cloud: SimCloud,
    world: SimCluster,
    clock: Clock,
    offers: list[Offer],
) -> Policy:
    if policy_name in ("gibbous", "luna-rule"):
        return GibbousPolicy(policy_name, config, cloud, world, clock)
    if policy_name == "karpenter-like":
        return KarpenterLikePolicy("karpenter-like", config, cloud, world, clock, offers)
    if policy_name == "ca-like":
        return CaLikePolicy(
            "ca-like",
            config,
            cloud,
            world,
            clock,
            offers,
            groups=node_groups(scenario, config, offers),
        )
    if policy_name == "static":
        return StaticPolicy(config, cloud, clock, peak_pods(scenario, config))
    raise GibbousError(f"unknown policy {policy_name!r}")


class _Run:
    """One run: the simulated cloud and cluster, the policy, what is still to come, and
    what has been measured so far."""

    def __init__(self, scenario: Scenario, policy_name: str, seed: int, config: Config) -> None:
        self.scenario = scenario
        self.rng = random.Random(seed)
        if policy_name == "luna-rule":
            config = luna_rule(config)
        self.config = config
        self.clock = Clock()
        catalog = load_catalog(None, config.cloud, config.effective_region)
        self.cloud = SimCloud(catalog, self.clock, boot_s=scenario.boot_s, launch_concurrency=8)
        if scenario.boot_max_s is not None:
            low, high = scenario.boot_s, scenario.boot_max_s
            boots = random.Random(f"boot-{seed}")
            self.cloud.draw_boot = lambda: boots.uniform(low, high)
        offers = build_offers(catalog, config)
        self.offers_by_key = {(o.name, str(o.category)): o for o in offers}
        self.world = SimCluster(
            self.cloud,
            config,
            self.clock,
            self.offers_by_key,
            steering=policy_name in ("gibbous", "luna-rule"),
            metrics_lag_s=scenario.metrics_lag_s,
            eviction_grace_s=scenario.eviction_grace_s,
        )
        for node in scenario.nodes:
            self.cloud.start_running(node, config.cluster_id)
        self.policy = _policy(
            policy_name,
            scenario,
            config,
            cloud=self.cloud,
            world=self.world,
            clock=self.clock,
            offers=offers,
        )
        self.arrivals = sorted(
            (
                (at, index, workload)
                for workload in scenario.workloads
                for index, at in enumerate(scenario.arrival_times(workload))
            ),
            key=lambda item: (item[0], item[2].name, item[1]),
        )
        self.events = list(scenario.events)
        self.active: list[CloudEvent] = []
        self.reclaim_at: dict[str, float] = {}
        self.result = Result(scenario=scenario.name, policy=policy_name, seed=seed)
        # Time above red means something only where pods say what they use (without a usage
        # profile a pod uses its requests, and a well-packed node would count as hot).
        self.measured_usage = any(w.usage for w in scenario.workloads)
        if not self.measured_usage:
            self.result.above_red_node_s = None
        self.end = START + scenario.duration_s
        self.next_sample = START
        self.spot_node_s = 0.0
        self.node_s = 0.0
        self.recorded: set[str] = set()  # instances in result.first_nodes
        self.scaled = 0  # scale events applied

    def step(self, progress: Callable[[float], None] | None) -> None:
        """One step of the virtual clock (the order is the module docstring's)."""
        t = self.clock.now - START
        self._cloud_events(t)
        self._arrivals(t)
        self.policy.step()
        self.world.sweep_terminated()
        self.world.schedule()
        self.world.run_kubelets()
        self._reclaim()
        running = self.cloud.running()
        step = self._step_length()
        # The bill stops at the scenario's end: the last step (up to 30 s when idle) would
        # otherwise charge every node past it, 8 % of a 6-minute race scenario.
        cost = self._bill(running, min(step, max(0.0, self.end - self.clock.now)))
        if self.clock.now >= self.next_sample:
            self._sample(running, cost, progress)
        self.clock.now += step

    def _cloud_events(self, t: float) -> None:
        cloud, events = self.cloud, self.events
        while events and events[0].at_s <= t:
            event = events.pop(0)
            if event.kind == "resize":
                self.world.resize(event.workload, event.requests)
            elif event.kind == "scale":
                workload = next(w for w in self.scenario.workloads if w.name == event.workload)
                self.scaled += 1
                self.world.scale(
                    workload.pod,
                    workload=workload.name,
                    replicas=event.count,
                    run_for_s=workload.run_for_s,
                    usage=workload.usage,
                    arrival=10**6 + self.scaled,  # an arrival of its own
                )
            elif event.kind == "interrupt":
                spot = [
                    i for i in cloud.running() if i.category == event.category and not i.interrupted
                ]
                for instance in self.rng.sample(spot, min(event.count, len(spot))):
                    cloud.interrupt(instance.id)
                    self.reclaim_at[instance.id] = self.clock.now + INTERRUPT_NOTICE_S
                    self.result.interruptions += 1
            else:
                _apply(cloud, event, on=True)
                self.active.append(event)
        for event in [e for e in self.active if e.until_s is not None and e.until_s <= t]:
            _apply(cloud, event, on=False)
            self.active.remove(event)

    def _arrivals(self, t: float) -> None:
        while self.arrivals and self.arrivals[0][0] <= t:
            _, index, workload = self.arrivals.pop(0)
            for _ in range(workload.count):
                self.world.create_pod(
                    workload.pod,
                    workload=workload.name,
                    run_for_s=workload.run_for_s,
                    replace_pods=workload.replace,
                    usage=workload.usage,
                    arrival=index,
                    usage_follows_workload=workload.usage_follows_workload,
                )

    def _reclaim(self) -> None:
        for instance_id, at in list(self.reclaim_at.items()):
            if self.clock.now >= at:
                self.world.reclaim(instance_id)
                del self.reclaim_at[instance_id]

    def _step_length(self) -> float:
        """Fine steps while something is on its way (launches, new pods, reclaims); pods
        waiting on nothing (backed off, unsatisfiable) do not need them. Never past the
        next thing due."""
        now, world = self.clock.now, self.world
        fresh = any(
            now - p.created_at < 120 for p in world.pods_by_key.values() if p.bound_at is None
        )
        in_flight = any(i.state is InstanceState.PENDING for i in self.cloud.instances.values())
        step = BUSY_STEP_S if (fresh or in_flight or self.reclaim_at) else IDLE_STEP_S
        upcoming = [START + a[0] for a in self.arrivals[:1]] + [
            START + e.at_s for e in self.events[:1]
        ]
        upcoming += [START + e.until_s for e in self.active if e.until_s is not None]
        upcoming += [
            p.bound_at + p.run_for_s
            for p in world.pods_by_key.values()
            if p.bound_at is not None and p.run_for_s is not None
        ]
        nearest = min((u for u in upcoming if u > now), default=now + step)
        return max(1.0, min(step, nearest - now))

    def _bill(self, running: list[Instance], step: float) -> float:
        """Charge `step` seconds of the running instances and update the peaks; the cost
        per hour now."""
        result, offers_by_key = self.result, self.offers_by_key
        cost = 0.0
        for instance in running:
            offer = offers_by_key.get((instance.instance_type, instance.category))
            if offer is not None:
                cost += offer.price
            if instance.category == "spot":
                self.spot_node_s += step
            self.node_s += step
            if len(result.first_nodes) < 8 and instance.id not in self.recorded:
                self.recorded.add(instance.id)
                result.first_nodes.append(
                    FirstNode(
                        instance.id,
                        instance.instance_type,
                        instance.category,
                        self.clock.now - START,
                    )
                )
        result.total_cost += cost * step / 3600
        booting = sum(
            offers_by_key[(i.instance_type, i.category)].price
            for i in self.cloud.instances.values()
            if i.state is InstanceState.PENDING and (i.instance_type, i.category) in offers_by_key
        )
        result.cost_from_launch += (cost + booting) * step / 3600
        if self.measured_usage and result.above_red_node_s is not None:
            result.above_red_node_s += step * _hot_nodes(self.world, self.config)
        result.peak_nodes = max(result.peak_nodes, len(running))
        gpus = sum(
            offers_by_key[(i.instance_type, i.category)].instance.gpu_count
            for i in self.cloud.instances.values()
            if i.state is not InstanceState.TERMINATED
            and (i.instance_type, i.category) in offers_by_key
        )
        result.peak_gpus = max(result.peak_gpus, gpus)
        return cost

    def _sample(
        self, running: list[Instance], cost: float, progress: Callable[[float], None] | None
    ) -> None:
        pods = self.world.pods()
        self.result.samples.append(
            Sample(
                t_s=self.clock.now - START,
                nodes=len(running),
                cost_per_hour=round(cost, 4),
                pending=sum(1 for p in pods if not node_name_of(p)),
                running=sum(1 for p in pods if node_name_of(p)),
            )
        )
        self.next_sample += SAMPLE_S
        if progress is not None:
            progress(min(1.0, (self.clock.now - START) / self.scenario.duration_s))

    def finish(self) -> Result:
        """The waits, capacity delays and shares, once the clock has run out (pods still
        waiting at the end waited until then)."""
        result, end, tally = self.result, self.end, self.world.tally
        waits = list(tally.pending_s)
        for pod in self.world.pods_by_key.values():
            if pod.bound_at is None:
                waits.append(end - pod.created_at)
                result.never_ran += 1
        result.pending_p50_s = percentile(waits, 0.5)
        result.pending_p99_s = percentile(waits, 0.99)
        result.pending_max_s = max(waits, default=0.0)
        capacity = []
        for key, bound in tally.arrivals.items():
            arrived = tally.arrival_times[key]
            count = tally.arrival_counts.get(key) or next(
                (w.count for w in self.scenario.workloads if w.name == key[0]), 0
            )
            if count == 0:
                continue
            capacity.append((sorted(bound)[count - 1] if len(bound) >= count else end) - arrived)
        result.capacity_p99_s = percentile(capacity, 0.99)
        result.evictions = tally.evictions
        started = {f"start-{n.name}" for n in self.scenario.nodes}
        launched = [i for i in self.cloud.instances.values() if i.id not in started and i.node_name]
        result.nodes_created = len(launched)
        result.nodes_deleted = sum(1 for i in launched if i.state is InstanceState.TERMINATED)
        result.pods_bound = tally.bound
        result.node_hours = self.node_s / 3600
        result.spot_share = self.spot_node_s / self.node_s if self.node_s else 0.0
        return result


def _apply(cloud: SimCloud, event: CloudEvent, *, on: bool) -> None:
    pair = (event.instance_type, event.category)
    if event.kind == "hang":
        (cloud.hangs.add if on else cloud.hangs.discard)(pair)
    elif event.kind == "quota":
        (cloud.quota_exhausted.add if on else cloud.quota_exhausted.discard)(pair)
    elif event.kind == "stockout":
        key = (event.instance_type, event.category, event.zone)
        (cloud.stockouts.add if on else cloud.stockouts.discard)(key)


def _hot_nodes(world: SimCluster, config: Config) -> int:
    """Nodes at or above red now (usage over capacity, as hot-node mitigation reads it)."""
    usage = {m["metadata"]["name"]: m["usage"] for m in world.node_metrics() or []}
    if not usage:
        return 0
    hot = 0
    for node in world.nodes():
        measured = usage.get(node["metadata"]["name"])
        if measured is None:
            continue
        capacity = node["status"]["capacity"]
        cpu = float(measured["cpu"].rstrip("n")) / 1e9 / float(capacity["cpu"])
        memory = float(measured["memory"]) / float(capacity["memory"])
        if level_of(Usage(cpu * 100, memory * 100), config.hot_node) is Level.RED:
            hot += 1
    return hot
