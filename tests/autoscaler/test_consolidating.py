"""Consolidation in the loop, on a fake clock: a scale-in leaves a large node with two
small pods; Gibbous launches a smaller node, drains the large one only once the small one
is Ready, and the pods' controller copies run there. A failed launch drains nothing; a
PodDisruptionBudget holds; `consolidation.enabled: false` is Luna's behaviour."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from gibbous.autoscaler.lifecycle import Eviction
from gibbous.core import keys
from gibbous.core.podmodel.pods import key_of
from tests.autoscaler.test_lifecycle import World
from tests.factories import config, make_pod

AWS_CATALOG = Path(__file__).resolve().parents[2] / "gibbous" / "catalogs" / "aws.csv.gz"
SETTINGS = {
    "scaleDown.unneededTime": "2m",
    "scaleDown.delayAfterAdd": "1m",
    "consolidation.candidates": "all",
}


def cheapest_bin_pack_type() -> tuple[str, float]:
    """The cheapest us-west-2 amd64 row of the catalog meeting the bin-pack shape's
    defaults (4 vCPU, 16 GiB, no GPU), and its on-demand price."""
    with gzip.open(AWS_CATALOG, "rt", newline="") as lines:
        rows = [
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2"
            and r["arch"] == "amd64"
            and int(r["gpu_count"]) == 0
            and int(r["vcpu"]) >= 4
            and float(r["memory_gib"]) >= 16
        ]
    best = min(rows, key=lambda r: (float(r["on_demand_usd_per_hour"]), r["instance_type"]))
    return best["instance_type"], float(best["on_demand_usd_per_hour"])


class ReplicaSet:
    """Plays a ReplicaSet controller: an evicted pod of it is created again, unbound. Each
    eviction is recorded with the time and the Nodes listed (Ready) at that moment."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.made = 0
        self.evictions: list[tuple[float, str, list[str]]] = []
        self.kept: list[str] = []  # the two pods a scale-in left
        self.evict = w.cluster.evict
        w.cluster.evict = self._evict  # type: ignore[method-assign]

    def pod(self, name: str, **extra: Any) -> dict[str, Any]:
        pod = make_pod(name, cpu="1500m", memory="1Gi", **extra)
        pod["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs"}
            | {"controller": True}
        ]
        return pod

    def _evict(self, pod: Mapping[str, Any]) -> Eviction:
        result = self.evict(pod)
        if result is Eviction.EVICTED:
            self.evictions.append((self.w.clock.now, key_of(pod), self.w.nodes()))
            self.made += 1
            self.w.cluster.add(self.pod(f"web-copy-{self.made}"))
        return result


def scaled_in(**values: Any) -> tuple[World, ReplicaSet, str]:
    """20 pods of 1.5 CPU (bin-pack: under the 2 CPU bin-select threshold) on t3a.2xlarge
    nodes (8 vCPU, 5 pods each: lowest-total-cost), then every pod gone but two on one
    node, as a scale-in leaves them."""
    w = World(config(**{**SETTINGS, **values}))
    rs = ReplicaSet(w)
    w.cluster.add(*[rs.pod(f"web-{i}") for i in range(20)])
    w.run(60)
    node = w.node_of("web-0")
    kept = ["web-0", next(f"web-{i}" for i in range(1, 20) if w.node_of(f"web-{i}") == node)]
    for i in range(20):
        if f"web-{i}" not in kept:
            del w.cluster.pod_objects[f"default/web-{i}"]
    rs.kept = kept
    return w, rs, node


def test_a_large_node_left_with_two_small_pods_is_replaced_and_drained_after_ready() -> None:
    w, rs, old = scaled_in()
    old_type = next(i.instance_type for i in w.cloud.machines("gibbous") if i.node_name == old)
    small, small_price = cheapest_bin_pack_type()
    w.run(400)
    (new,) = w.nodes()
    assert new != old and old in w.cluster.deleted_nodes
    (instance,) = w.cloud.machines("gibbous")
    assert (instance.instance_type, instance.category) == (small, "on-demand")
    assert old_type == "t3a.2xlarge" and small != old_type
    # The pods of the old node were evicted only while the replacement was a Ready Node.
    assert sorted(key for _, key, _ in rs.evictions) == [f"default/{k}" for k in sorted(rs.kept)]
    for _, _, listed in rs.evictions:
        assert new in listed
    assert {w.node_of("web-copy-1"), w.node_of("web-copy-2")} == {new}
    reasons = [r for _, r, _, _ in w.cluster.events]
    assert keys.EVENT_CONSOLIDATION_REPLACING in reasons
    assert keys.EVENT_CONSOLIDATION_DRAINING in reasons
    assert reasons.count(keys.EVENT_CONSOLIDATION_MOVING_POD) == 2
    replacing = next(
        m for _, r, m, _ in w.cluster.events if r == keys.EVENT_CONSOLIDATION_REPLACING
    )
    assert f"{small} (on-demand, ${small_price:.4f}/hr)" in replacing
    text = generate_latest(w.autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_consolidations_total{outcome="started"} 1.0' in text
    assert 'gibbous_autoscaler_consolidations_total{outcome="done"} 1.0' in text
    assert 'gibbous_autoscaler_terminations_total{reason="consolidation"} 1.0' in text


def test_nothing_is_replaced_before_the_validation_delay() -> None:
    w, _, old = scaled_in(**{"consolidation.validationDelay": "10m"})
    consolidation = w.lifecycle.consolidation
    while consolidation.proposal is None:
        assert w.clock.now < 1_800_000_000.0 + 600, "no replacement proposed"
        w.run(5)
    found_at = consolidation.proposal.found_at
    launched = len(w.cloud.create_calls)
    while len(w.cloud.create_calls) == launched:
        assert w.clock.now < found_at + 700, "the replacement was never launched"
        assert "validating" in consolidation.why
        w.run(5)
    assert w.clock.now >= found_at + 600
    assert w.cloud.create_calls[-1].instance_type == cheapest_bin_pack_type()[0]
    assert old in w.nodes()


def test_a_launch_that_fails_drains_nothing() -> None:
    small, _ = cheapest_bin_pack_type()
    w, _, old = scaled_in()
    w.cloud.stockouts.add((small, "on-demand", ""))
    w.run(300)
    assert w.cluster.evictions == [] and old in w.nodes()
    abandoned = [m for _, r, m, _ in w.cluster.events if r == keys.EVENT_CONSOLIDATION_ABANDONED]
    assert abandoned and "nothing is drained" in abandoned[0]


def test_a_pod_budget_refusal_is_never_forced() -> None:
    w, rs, old = scaled_in()
    w.cluster.pdb_protected.add("default/web-0")
    w.run(400)
    # The other pod moved; web-0 stays on the old node, cordoned, which is not deleted.
    assert w.node_of("web-0") == old and old in w.cluster.cordoned
    assert [key for _, key, _ in rs.evictions] == [f"default/{rs.kept[1]}"]
    assert old in w.nodes()


def test_lunas_behaviour_with_consolidation_off() -> None:
    w, _, old = scaled_in(**{"consolidation.enabled": "false"})
    created = len(w.cloud.create_calls)
    w.run(600)
    assert w.nodes() == [old] and len(w.cloud.create_calls) == created
    assert w.cluster.evictions == []


def test_a_do_not_evict_pod_keeps_its_node() -> None:
    w = World(config(**SETTINGS))
    rs = ReplicaSet(w)
    w.cluster.add(rs.pod("web-0", annotations={keys.DO_NOT_EVICT: "true"}), rs.pod("web-1"))
    w.run(600)
    assert w.cluster.evictions == []
    assert "must not be evicted" in next(iter(w.lifecycle.consolidation.kept.values()))


BLOCKERS: tuple[dict[str, str], ...] = (
    {},
    {keys.DO_NOT_EVICT: "true"},
    {keys.KARPENTER_DO_NOT_DISRUPT: "true"},
    {keys.CA_SAFE_TO_EVICT: "false"},
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blockers=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    budgeted=st.tuples(st.booleans(), st.booleans()),
)
def test_a_protected_pod_is_never_evicted_and_nothing_moves_before_the_replacement(
    blockers: tuple[int, int], budgeted: tuple[bool, bool]
) -> None:
    w, rs, old = scaled_in()
    for name, blocker, protected in zip(rs.kept, blockers, budgeted, strict=True):
        w.cluster.pod_objects[f"default/{name}"]["metadata"]["annotations"].update(
            BLOCKERS[blocker]
        )
        if protected:
            w.cluster.pdb_protected.add(f"default/{name}")
    w.run(400)
    never = {
        f"default/{name}"
        for name, blocker, protected in zip(rs.kept, blockers, budgeted, strict=True)
        if blocker or protected
    }
    evicted = [key for _, key, _ in rs.evictions]
    assert not never & set(evicted)
    if any(blockers):
        # A node with a pod that must not be evicted is never a candidate: nothing moves.
        assert evicted == [] and old in w.nodes()
    for _, _, listed in rs.evictions:
        assert len(listed) >= 2  # the replacement was a listed Node beside the old one
