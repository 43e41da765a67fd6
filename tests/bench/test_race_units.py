"""bench.race's pure parts: the trace format, the metrics from observed objects, the
catalog in Karpenter's format and the pods as both systems read them. Expected values are
hand computations and the catalog's published prices (gibbous/catalogs/aws.csv rows)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.race.__main__ import provenance
from bench.race.catalog import karpenter_family, karpenter_instance_types, race_catalog
from bench.race.metrics import NodeRecord, Observation, PodRecord, compute, percentile
from bench.race.replay import pod_template
from bench.race.standin import wanted_taints
from bench.race.trace import PodShape, TraceError, parse_trace, scenario

M5 = {"node.kubernetes.io/instance-type": "m5.large", "karpenter.sh/capacity-type": "on-demand"}
C5_SPOT = {"node.kubernetes.io/instance-type": "c5.xlarge", "karpenter.sh/capacity-type": "spot"}
PRICES = {("m5.large", "on-demand"): 0.102, ("c5.xlarge", "spot"): 0.09}


def test_cost_is_each_nodes_lifetime_times_its_labels_price() -> None:
    observation = Observation(
        end=3600.0,
        nodes={
            "a": NodeRecord("a", created_at=0.0, labels=dict(M5), deleted_at=1800.0),
            "b": NodeRecord("b", created_at=600.0, labels=dict(C5_SPOT)),  # alive at the end
        },
        pods={},
    )
    metrics = compute(observation, PRICES)
    # 0.5 h x $0.102 + (3000/3600) h x $0.09 = 0.051 + 0.075
    assert metrics.cost == pytest.approx(0.126)
    assert (metrics.nodes_created, metrics.nodes_deleted, metrics.peak_nodes) == (2, 1, 2)
    assert metrics.samples[0].nodes == 1
    assert metrics.samples[0].cost_per_hour == pytest.approx(0.102)


def test_a_node_without_a_known_price_is_an_error_not_free() -> None:
    labels = {"node.kubernetes.io/instance-type": "x9.huge", "karpenter.sh/capacity-type": "spot"}
    observation = Observation(10.0, {"n": NodeRecord("n", 0.0, labels)}, {})
    with pytest.raises(ValueError, match=r"x9\.huge"):
        compute(observation, PRICES)


def test_bound_times_unbound_pods_and_evictions() -> None:
    nodes = {
        "drained": NodeRecord("drained", 0.0, dict(M5), drained_at=100.0, deleted_at=130.0),
        "kept": NodeRecord("kept", 0.0, dict(M5)),
    }
    pods = {
        "1": PodRecord("p1", 0.0, bound_at=2.0, node="drained", deleted_at=100.5),  # evicted
        "2": PodRecord("p2", 0.0, bound_at=4.0, node="kept", deleted_at=50.0),  # scaled down
        "3": PodRecord("p3", 1.0, bound_at=11.0, node="kept"),
        "4": PodRecord("p4", 5.0),  # never bound
        "5": PodRecord("p5", 5.0, deleted_at=6.0),  # deleted before binding: not unbound
    }
    metrics = compute(Observation(200.0, nodes, pods), PRICES)
    # waits 2, 4, 10: nearest-rank p50 = 4, p99 = 10
    assert (metrics.bound_p50_s, metrics.bound_p99_s, metrics.bound_max_s) == (4.0, 10.0, 10.0)
    assert metrics.pods_bound == 3
    assert metrics.pods_unbound == 1
    assert metrics.pods_evicted == 1
    assert metrics.peak_nodes == 2


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0


def test_trace_round_trip_and_pods_created() -> None:
    trace = parse_trace(
        {
            "name": "mine",
            "durationSeconds": 100,
            "events": [
                {
                    "at": 0,
                    "op": "create",
                    "workload": "w",
                    "replicas": 3,
                    "pod": {"cpu": "1", "memory": "1Gi"},
                },
                {"at": 10, "op": "scale", "workload": "w", "replicas": 1},
                {"at": 20, "op": "scale", "workload": "w", "replicas": 4},
                {"at": 30, "op": "delete", "workload": "w"},
            ],
        }
    )
    assert trace.boot_s == 5  # the documented default
    assert trace.pods_created() == 3 + 3
    assert parse_trace(trace.to_json()) == trace


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"at": 0, "op": "scale", "workload": "w", "replicas": 1}, "does not exist"),
        ({"at": 0, "op": "explode", "workload": "w"}, "op"),
        ({"at": 500, "op": "delete", "workload": "w"}, "outside"),
        (
            {
                "at": 0,
                "op": "create",
                "workload": "w",
                "replicas": 1,
                "pod": {"cpu": "lots", "memory": "1Gi"},
            },
            "quantity",
        ),
        (
            {
                "at": 0,
                "op": "create",
                "workload": "w",
                "replicas": 1,
                "pod": {"cpu": "1", "memory": "1Gi", "capacity": "free"},
            },
            "capacity",
        ),
        (
            {
                "at": 0,
                "op": "create",
                "workload": "W!",
                "replicas": 1,
                "pod": {"cpu": "1", "memory": "1Gi"},
            },
            "workload",
        ),
    ],
)
def test_bad_traces_are_refused_with_the_event_named(event: dict[str, Any], message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_trace({"name": "bad", "durationSeconds": 100, "events": [event]})


def test_events_must_be_in_time_order() -> None:
    create = {
        "at": 5,
        "op": "create",
        "workload": "w",
        "replicas": 1,
        "pod": {"cpu": "1", "memory": "1Gi"},
    }
    with pytest.raises(TraceError, match="time order"):
        parse_trace(
            {
                "name": "bad",
                "durationSeconds": 100,
                "events": [create, {**create, "at": 1, "workload": "v"}],
            }
        )


def test_the_named_scenarios_are_what_the_issue_asks() -> None:
    assert scenario("trickle").pods_created() == 200
    assert [e.at for e in scenario("trickle").events if e.op == "scale"][:3] == [0.0, 2.0, 4.0]
    burst = scenario("burst-scale-in")
    assert burst.pods_created() == 1000
    assert {e.at for e in burst.events if e.op == "scale"} == {600.0}
    assert any(e.pod and e.pod.gpus for e in burst.events)
    assert any(e.pod and e.pod.zone for e in burst.events)


def test_the_catalog_in_karpenters_format_has_the_same_prices_and_zones() -> None:
    catalog = race_catalog()
    exported = {entry["name"]: entry for entry in karpenter_instance_types(catalog)}
    m5 = exported["m5.large"]
    by_offer = {
        (o["Requirements"][0]["values"][0], o["Requirements"][1]["values"][0]): o["Price"]
        for o in m5["offerings"]
    }
    # aws.csv: m5.large $0.102 on demand in us-west-2a-d, no spot price: spotPriceRatioEstimate 0.5
    assert by_offer == {
        (capacity, zone): price
        for zone in ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d")
        for capacity, price in (("on-demand", 0.102), ("spot", 0.051))
    }
    assert m5["architecture"] == "amd64"
    assert exported["g4dn.xlarge"]["resources"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in m5["resources"]
    assert int(m5["resources"]["cpu"].removesuffix("m")) <= 2000
    assert catalog.price("m5.large", "spot") == 0.051


def test_karpenter_derives_families_as_parseFamilyFromType_does() -> None:
    assert karpenter_family("g4dn.xlarge") == "g4dn"
    assert karpenter_family("n1-standard-4") == "n1"
    assert karpenter_family("Standard") == "S"


def test_pods_say_what_capacity_they_accept_in_both_systems_words() -> None:
    on_demand = pod_template("w", PodShape("1", "1Gi"))
    assert on_demand["spec"]["nodeSelector"] == {"karpenter.sh/capacity-type": "on-demand"}
    assert on_demand["metadata"]["labels"]["elotl-luna"] == "true"
    spot = pod_template("w", PodShape("1", "1Gi", capacity="spot", zone="us-west-2b"))
    assert spot["spec"]["nodeSelector"] == {
        "karpenter.sh/capacity-type": "spot",
        "topology.kubernetes.io/zone": "us-west-2b",
    }
    assert spot["metadata"]["annotations"]["node.elotl.co/instance-offerings"] == "spot"
    either = pod_template("w", PodShape("1", "1Gi", gpus=2, capacity="any"))
    assert "nodeSelector" not in either["spec"]
    assert either["metadata"]["annotations"]["node.elotl.co/instance-offerings"] == "spot,on-demand"
    assert either["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}


def _node(ready: str | None, taints: list[tuple[str, str]]) -> Any:
    conditions = [SimpleNamespace(type="Ready", status=ready)] if ready else []
    return SimpleNamespace(
        status=SimpleNamespace(conditions=conditions),
        spec=SimpleNamespace(
            taints=[SimpleNamespace(key=k, value=None, effect=e) for k, e in taints]
        ),
        metadata=SimpleNamespace(deletion_timestamp=None),
    )


def test_the_stand_in_keeps_not_ready_nodes_tainted_as_a_kubelet_registers_them() -> None:
    not_ready = {"key": "node.kubernetes.io/not-ready", "value": None, "effect": "NoSchedule"}
    # no Ready condition yet (how both kwok providers' nodes start): tainted
    assert wanted_taints(_node(None, [])) == [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    ]
    assert wanted_taints(_node("False", [("node.kubernetes.io/not-ready", "NoSchedule")])) is None
    # Ready: the taint goes, the others stay
    ready = _node(
        "True", [("node.kubernetes.io/not-ready", "NoSchedule"), ("nvidia.com/gpu", "NoSchedule")]
    )
    assert wanted_taints(ready) == [
        {"key": "nvidia.com/gpu", "value": None, "effect": "NoSchedule"}
    ]
    assert not_ready not in (wanted_taints(ready) or [])
    assert wanted_taints(_node("True", [])) is None


def test_results_name_the_commit_they_were_measured_on(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    measured = provenance(root)
    assert measured["commit"] == head
    assert measured["cpus"] == os.cpu_count()
    # outside a checkout there is no commit to name, and that is said, not invented
    assert provenance(tmp_path)["commit"] is None
