"""`python -m bench.race.calibrate`: a race trace becomes the same workload in the
simulator, real results from any number of race JSON files are pooled, and the table
compares each metric with its real median."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.race.calibrate import (
    CalibrationError,
    check_catalog,
    compare,
    difference,
    main,
    read_real,
    trace_scenario,
    verdicts,
)
from bench.race.trace import parse_trace, scenario


def test_a_trace_becomes_the_same_workloads_and_replica_changes() -> None:
    trace = parse_trace(
        {
            "name": "mine",
            "durationSeconds": 300,
            "bootSeconds": 7,
            "events": [
                {"at": 0, "op": "create", "workload": "web", "replicas": 3,
                 "pod": {"cpu": "500m", "memory": "1Gi", "capacity": "spot", "zone": "us-west-2a",
                         "usage": "cpu=400m,memory=300Mi"}},
                {"at": 30, "op": "scale", "workload": "web", "replicas": 5},
                {"at": 60, "op": "delete", "workload": "web"},
            ],
        }
    )  # fmt: skip
    simulated = trace_scenario(trace, "aws")
    (web,) = simulated.workloads
    assert (web.name, web.count, web.at_s, web.replace) == ("web", 3, 0.0, True)
    assert simulated.duration_s == 300 and simulated.boot_s == 7
    spec = web.pod["spec"]
    # The race's own pod: spot said in both systems' words, the zone pinned.
    assert spec["nodeSelector"] == {
        "karpenter.sh/capacity-type": "spot",
        "topology.kubernetes.io/zone": "us-west-2a",
    }
    assert web.pod["metadata"]["annotations"]["node.elotl.co/instance-offerings"] == "spot"
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert [(u.cpu, u.memory) for u in web.usage] == [(0.4, 300 * 2**20)]
    assert [(e.at_s, e.kind, e.workload, e.count) for e in simulated.events] == [
        (30.0, "scale", "web", 5),
        (60.0, "scale", "web", 0),
    ]


def test_the_simulator_prices_the_race_catalog_alike() -> None:
    check_catalog(trace_scenario(scenario("smoke"), "aws"))  # raises on any difference


def test_real_runs_are_pooled_across_files(tmp_path: Path) -> None:
    def document(costs: list[float]) -> dict[str, object]:
        runs = [{"cost": c, "boundP99": 10.0} for c in costs]
        return {"scenarios": {"smoke": {"karpenter": {"runs": runs}, "gibbous": {"runs": []}}}}

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(document([1.0, 3.0])))
    second.write_text(json.dumps(document([2.0])))
    pooled = read_real([first, second])
    assert pooled["smoke"]["karpenter"]["cost"] == [1.0, 3.0, 2.0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": []}))
    with pytest.raises(CalibrationError, match=r"bench\.race --output json"):
        read_real([bad])


def test_differences_are_relative_to_the_real_median() -> None:
    assert difference(11.5, 10.0) == pytest.approx(0.15)
    assert difference(8.0, 10.0) == pytest.approx(-0.2)
    assert difference(0.0, 0.0) == 0.0
    assert difference(3.0, 0.0) is None and difference(3.0, None) is None


def test_the_smoke_trace_runs_through_the_peer_and_is_compared(tmp_path: Path) -> None:
    real = {"smoke": {"karpenter": {"cost": [0.002, 0.004, 0.003]}}}
    rows = compare([scenario("smoke")], real, ["karpenter-like"])
    cost = next(r for r in rows if r["metric"] == "cost")
    assert cost["real karpenter"] == {"median": 0.003, "low": 0.002, "high": 0.004, "runs": 3}
    assert cost["karpenter-like"] > 0
    assert cost["karpenter-likeDifference"] == pytest.approx(
        (cost["karpenter-like"] - 0.003) / 0.003
    )
    unbound = next(r for r in rows if r["metric"] == "podsUnbound")
    assert unbound["karpenter-like"] == 0  # four small pods all run within 30 s
    # Nodes boot as long as the real runs measured (20 s here, not the trace's 5 s): no
    # pod binds sooner.
    slow = {"smoke": {"karpenter": {"cost": [0.003], "bootMedian": [20.0]}}}
    rows = compare([scenario("smoke")], slow, ["karpenter-like"])
    assert next(r for r in rows if r["metric"] == "boundP50")["karpenter-like"] >= 20


def test_the_command_refuses_an_unknown_policy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--scenarios", "smoke", "--policy", "yunikorn"])
    assert "yunikorn" in capsys.readouterr().err


def test_both_simulated_counterparts_are_held_to_the_15_percent_target() -> None:
    rows = [
        {"scenario": "posts", "metric": "boundP50", "gibbousDifference": 0.26},
        {"scenario": "posts", "metric": "cost", "gibbousDifference": -0.01},
        {"scenario": "posts", "metric": "cost", "karpenter-likeDifference": -0.34},
        # nodes are compared but not held to the target
        {"scenario": "posts", "metric": "nodesCreated", "gibbousDifference": 0.5},
    ]
    assert verdicts(rows) == [
        "posts boundP50: gibbous +26% of real gibbous",
        "posts cost: karpenter-like -34% of real karpenter",
    ]
