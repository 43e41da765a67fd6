"""The peer policies follow their upstream rules, each checked on a small simulated cluster
with the expectation worked out by hand from the rule (Karpenter v1.15.0's
pkg/controllers/{provisioning,disruption}, pkg/apis/v1/nodepool.go; cluster-autoscaler's
core/static_autoscaler.go and its flags' defaults)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from gibbous.autoscaler.cloud.base import InstanceState
from gibbous.catalogs import load_catalog
from gibbous.core.choice.selection import build_offers
from gibbous.core.podmodel.resources import Resources
from gibbous.simulation.cloud import SimCloud, StartingNode
from gibbous.simulation.engine import START, Clock, scenario_config
from gibbous.simulation.karpenterlike import (
    GPU_TAINT,
    Command,
    KarpenterLikePolicy,
    NewClaim,
    View,
    batch_closed,
    budget,
)
from gibbous.simulation.policies import CaLikePolicy
from gibbous.simulation.scenario import parse_scenario
from gibbous.simulation.world import SimCluster

STEP = 2.0


class Rig:
    """A simulated AWS cluster with one peer policy, stepped by hand as the engine does."""

    def __init__(self, policy: str, *, boot_s: float = 10.0) -> None:
        scenario = parse_scenario({"name": "rig", "cloud": "aws"}, "rig")
        self.config = scenario_config(scenario)
        self.clock = Clock()
        catalog = load_catalog(None, self.config.cloud, self.config.effective_region)
        self.cloud = SimCloud(catalog, self.clock, boot_s=boot_s)
        self.offers = build_offers(catalog, self.config)
        self.world = SimCluster(
            self.cloud,
            self.config,
            self.clock,
            {(o.name, str(o.category)): o for o in self.offers},
            steering=False,
        )
        self.policy: KarpenterLikePolicy | CaLikePolicy
        if policy == "karpenter-like":
            self.policy = KarpenterLikePolicy(
                policy, self.config, self.cloud, self.world, self.clock, self.offers
            )
        else:
            self.policy = CaLikePolicy(
                policy, self.config, self.cloud, self.world, self.clock, self.offers
            )
        self.names = itertools.count(1)

    @property
    def t(self) -> float:
        return self.clock.now - START

    def pod(self, cpu: str, memory: str = "256Mi", *, gpus: int = 0, replace: bool = True) -> str:
        resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
        if gpus:
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        template = {
            "metadata": {"labels": {"app": "w"}},
            "spec": {"containers": [{"name": "c", "resources": resources}]},
        }
        made = self.world.create_pod(
            template,
            workload=f"w{next(self.names)}",
            run_for_s=None,
            replace_pods=replace,
            usage=(),
            arrival=0,
        )
        return str(made.obj["metadata"]["namespace"] + "/" + made.obj["metadata"]["name"])

    def step(self, seconds: float = STEP) -> None:
        """One engine step (policy, sweep, kube-scheduler), then the clock moves on."""
        self.policy.step()
        self.world.sweep_terminated()
        self.world.schedule()
        self.world.run_kubelets()
        self.clock.now += seconds

    def run_until(self, seconds: float) -> None:
        while self.t < seconds:
            self.step()

    def node_of(self, key: str) -> str:
        return str(self.world.pods_by_key[key].obj["spec"].get("nodeName") or "")

    def live(self) -> list[Any]:
        return [i for i in self.cloud.instances.values() if i.state is not InstanceState.TERMINATED]

    def price(self, instance: Any) -> float:
        return next(
            o.price
            for o in self.offers
            if o.name == instance.instance_type and str(o.category) == instance.category
        )


# --- Karpenter ------------------------------------------------------------------------------


def test_disruption_budgets_are_ten_percent_of_a_pools_nodes_rounded_up() -> None:
    # nodepool.go: GetScaledValueFromIntOrPercent(10%, nodes, roundUp=true) - disrupting.
    assert budget(3, 0) == 1  # 0.3 rounds up to 1
    assert budget(10, 0) == 1
    assert budget(11, 0) == 2  # 1.1 rounds up to 2
    assert budget(25, 1) == 2  # 2.5 -> 3, one already being disrupted
    assert budget(10, 1) == 0
    assert budget(0, 0) == 0


def test_a_batch_closes_after_one_idle_second_or_ten_seconds_in_all() -> None:
    # batcher.go with batchIdleDuration 1 s, batchMaxDuration 10 s.
    assert not batch_closed(now=100.5, began=100.0, newest_pod=100.0)
    assert batch_closed(now=101.0, began=100.0, newest_pod=100.0)
    assert not batch_closed(now=109.5, began=100.0, newest_pod=109.0)  # pods keep coming
    assert batch_closed(now=110.0, began=100.0, newest_pod=109.5)  # but 10 s is the most


def test_a_pod_arriving_while_a_node_launches_goes_onto_it_when_it_has_room() -> None:
    rig = Rig("karpenter-like", boot_s=20.0)
    first = rig.pod("1500m")
    rig.run_until(6)
    assert len(rig.live()) == 1  # the NodeClaim for the first pod is launching
    # 10m/16Mi fits in what any type's allocatable leaves beside a 1.5-CPU pod.
    second = rig.pod("10m", "16Mi")
    rig.run_until(40)
    assert len(rig.live()) == 1, "no second NodeClaim: the in-flight one had room"
    assert rig.node_of(first) and rig.node_of(first) == rig.node_of(second)


def test_an_insufficient_capacity_error_moves_the_same_launch_to_the_next_cheapest_type() -> None:
    rig = Rig("karpenter-like")
    pod = rig.pod("3", "4Gi")
    rig.run_until(4)
    first = rig.live()[0]
    cheapest = (first.instance_type, first.category)
    # Again on a fresh cluster where every zone of that offering is out of stock.
    rig = Rig("karpenter-like")
    for zone in ("", *next(t.zones for t in rig.cloud.catalog if t.name == cheapest[0])):
        rig.cloud.stockouts.add((*cheapest, zone))
    pod = rig.pod("3", "4Gi")
    rig.run_until(4)
    (launched,) = rig.live()
    refused = [r for r in rig.cloud.create_calls if r.instance_type == cheapest[0]]
    assert refused and (launched.instance_type, launched.category) != cheapest
    # Both asks in the same step: no back-off round between them.
    assert launched.created_at == START + 2
    assert rig.policy.unavailable[cheapest] == pytest.approx(START + 2 + 180)
    rig.run_until(30)
    assert rig.node_of(pod)


def test_a_registration_timeout_does_not_mark_the_offering_unavailable() -> None:
    rig = Rig("karpenter-like")
    rig.pod("3", "4Gi")
    rig.run_until(4)
    hung = rig.live()[0]
    rig.cloud.hangs.add((hung.instance_type, hung.category))
    rig.run_until(905)  # liveness.go: a NodeClaim not registered in 15 minutes goes
    assert rig.cloud.instances[hung.id].state is InstanceState.TERMINATED
    assert rig.policy.unavailable == {}
    # So the next NodeClaim asks for the same, cheapest offering again.
    again = [i for i in rig.live() if i.id != hung.id]
    assert [(i.instance_type, i.category) for i in again] == [(hung.instance_type, hung.category)]


def test_gpu_nodes_carry_the_gpu_pools_taint_and_only_gpu_pods_land_there() -> None:
    rig = Rig("karpenter-like")
    gpu_pod = rig.pod("2", "8Gi", gpus=1)
    rig.run_until(30)
    node = next(n for n in rig.world.nodes() if n["metadata"]["name"] == rig.node_of(gpu_pod))
    assert GPU_TAINT in node["spec"]["taints"]
    # The pod tolerates it through ExtendedResourceToleration (the API server's plugin).
    tolerations = rig.world.pods_by_key[gpu_pod].obj["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    small = rig.pod("10m", "16Mi")
    rig.run_until(60)
    assert rig.node_of(small) and rig.node_of(small) != rig.node_of(gpu_pod)


def test_an_empty_node_goes_only_after_the_fifteen_second_validation() -> None:
    rig = Rig("karpenter-like")
    pod = rig.pod("1")
    rig.run_until(30)
    node = rig.node_of(pod)
    rig.world.remove_pod(pod, why="scaled")
    emptied = rig.t
    gone_at = None
    while gone_at is None and rig.t < emptied + 60:
        rig.step()
        if not rig.live():
            gone_at = rig.t
    # Polled within 10 s of emptying, then 15 s of validation before the delete.
    assert gone_at is not None and emptied + 15 <= gone_at <= emptied + 10 + 15 + 2 * STEP
    assert node not in {n["metadata"]["name"] for n in rig.world.nodes()}


def test_a_pod_landing_during_validation_cancels_the_emptiness_command() -> None:
    rig = Rig("karpenter-like")
    pod = rig.pod("1")
    rig.run_until(30)
    node = rig.node_of(pod)
    rig.world.remove_pod(pod, why="scaled")
    policy = rig.policy
    assert isinstance(policy, KarpenterLikePolicy)
    while policy.command is None:
        rig.step()
    newcomer = rig.pod("10m", "16Mi")
    rig.step()  # kube-scheduler binds it to the empty node
    assert rig.node_of(newcomer) == node
    rig.run_until(rig.t + 20)
    assert command_of(policy) is None
    assert node in {n["metadata"]["name"] for n in rig.world.nodes()}


def command_of(policy: KarpenterLikePolicy) -> Command | None:
    return policy.command


def test_a_node_left_with_a_small_pod_is_replaced_by_a_cheaper_one() -> None:
    rig = Rig("karpenter-like")
    big = rig.pod("14", "8Gi", replace=False)
    small = rig.pod("500m", "512Mi")
    rig.run_until(30)
    assert rig.node_of(big) == rig.node_of(small)
    (old,) = rig.live()
    rig.world.remove_pod(big, why="finished")
    rig.run_until(rig.t + 120)
    (new,) = rig.live()
    # singlenodeconsolidation.go: the small pod fits nowhere else, so a replacement,
    # launched first and strictly cheaper than the node it replaces.
    assert new.id != old.id and rig.price(new) < rig.price(old)
    # The evicted small pod's replacement (its controller's new pod) runs there.
    (moved,) = rig.world.pods_by_key.values()
    assert moved.workload == rig.world.pods_by_key.get(small, moved).workload
    assert moved.obj["spec"]["nodeName"] == new.node_name
    assert rig.world.tally.evictions == 1


def test_nodes_it_did_not_create_are_never_disrupted() -> None:
    for policy in ("karpenter-like", "ca-like"):
        rig = Rig(policy)
        machine = next(t for t in rig.cloud.catalog if t.name == "m5.large")
        rig.cloud.start_running(
            StartingNode("theirs", machine.name, "on-demand", machine.zones[0], {}),
            rig.config.cluster_id,
        )
        rig.run_until(1500)  # past CA's 10 minutes unneeded, many Karpenter polls
        assert [i.node_name for i in rig.live()] == ["theirs"], policy


# --- cluster-autoscaler ---------------------------------------------------------------------


def test_ca_counts_unneeded_time_during_the_scale_up_cooldown() -> None:
    rig = Rig("ca-like")
    policy = rig.policy
    assert isinstance(policy, CaLikePolicy)
    policy.groups = [
        o for o in rig.offers if o.name == "m5.large" and str(o.category) == "on-demand"
    ]
    pod = rig.pod("1")
    rig.run_until(60)
    scaled_up_at = policy.last_scale_up - START
    rig.world.remove_pod(pod, why="scaled")
    emptied = rig.t
    while rig.live() and rig.t < 2000:
        rig.step()
    gone = rig.t
    # Unneeded from the first scan after emptying (10 s scans), removed 10 minutes later;
    # the cooldown (10 minutes after the scale-up) has ended by then, so it does not add.
    assert scaled_up_at <= 10 and emptied + 600 <= gone <= emptied + 600 + 2 * 10 + STEP
    assert gone < scaled_up_at + 600 + 600  # the old model: cooldown, then 10 minutes


def _m5_large_group(rig: Rig) -> CaLikePolicy:
    policy = rig.policy
    assert isinstance(policy, CaLikePolicy)
    policy.groups = [
        o for o in rig.offers if o.name == "m5.large" and str(o.category) == "on-demand"
    ]
    return policy


def _deletions(rig: Rig, until: float) -> list[tuple[float, int]]:
    """(when, how many) each time live instances went down."""
    out = []
    before = len(rig.live())
    while rig.t < until:
        rig.step()
        now_live = len(rig.live())
        if now_live < before:
            out.append((rig.t, before - now_live))
            before = now_live
    return out


def test_ca_deletes_empty_nodes_in_bulk() -> None:
    rig = Rig("ca-like")
    _m5_large_group(rig)
    # m5.large: 2 vCPU, about 1.9 allocatable; each 1200m pod needs a node of its own.
    pods = [rig.pod("1200m") for _ in range(5)]
    rig.run_until(60)
    assert len(rig.live()) == 5
    for pod in pods:
        rig.world.remove_pod(pod, why="scaled")
    # All five empty nodes in one scan: at most --max-scale-down-parallelism (10) at once.
    assert [count for _, count in _deletions(rig, 1400)] == [5]


def test_ca_drains_one_node_with_pods_per_scan() -> None:
    rig = Rig("ca-like")
    _m5_large_group(rig)
    # Two 900m pods per m5.large: four pods, two nodes, each over 90 % requested.
    pods = [rig.pod("900m") for _ in range(4)]
    rig.run_until(60)
    assert len(rig.live()) == 2
    by_node: dict[str, list[str]] = {}
    for pod in pods:
        by_node.setdefault(rig.node_of(pod), []).append(pod)
    for on_node in by_node.values():
        rig.world.remove_pod(on_node[0], why="scaled")
    # Now each node is at about 47 % (< 50 %) and its pod fits on the other: both
    # unneeded. --max-drain-parallelism 1: one is drained; its pod moves to the other,
    # which is then needed (over 90 %) and stays.
    assert [count for _, count in _deletions(rig, 1400)] == [1]
    assert len(rig.live()) == 1 and rig.world.tally.evictions == 1


def test_a_multi_node_replacement_is_never_a_type_being_removed_nor_as_dear() -> None:
    # multinodeconsolidation.go, filterOutSameInstanceType: with m5.xlarge and m5.2xlarge
    # nodes being removed, a replacement option of a removed type caps the price at that
    # type's (here m5.xlarge's), and options at or above it go: only cheaper types stay.
    rig = Rig("karpenter-like")
    policy = rig.policy
    assert isinstance(policy, KarpenterLikePolicy)
    on_demand = {o.name: o for o in rig.offers if str(o.category) == "on-demand"}
    xlarge, double, large = on_demand["m5.xlarge"], on_demand["m5.2xlarge"], on_demand["m5.large"]
    assert large.price < xlarge.price < double.price  # in the built-in catalog
    view = View([], [], {}, {"a": xlarge, "b": double}, [], {})
    options = [large, xlarge, double]
    command = Command("replace", ("a", "b"), NewClaim([], Resources(), options, {}), 0.0, "")
    kept = policy._without_same_type(command, view)
    assert kept is not None and kept.replacement is not None
    assert kept.replacement.offers == [large]
    only_removed = replace(command, replacement=NewClaim([], Resources(), [xlarge], {}))
    assert policy._without_same_type(only_removed, view) is None
