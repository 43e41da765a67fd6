"""`python -m bench.race`'s `smoke` scenario end to end: Gibbous and the real Karpenter
(built from the Go module proxy on first use, like the control plane: 32 minutes on 2 busy
cores, then cached), each on a fresh dev cluster with the not-ready taint stand-in and the
KWOK controller, the same four pods replayed into both, measured from the Node and Pod
objects. The race's two clusters cannot share the session's control plane: each system
gets its own, as in the benchmark."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from bench.race.__main__ import race
from bench.race.trace import scenario
from gibbous.devcluster.peers import find_peers
from tests.e2e.conftest import repo_root

pytestmark = pytest.mark.e2e


def published_prices() -> dict[str, float]:
    """On-demand $/hour per type, read straight from the built-in catalog's CSV."""
    path = repo_root() / "gibbous" / "catalogs" / "aws.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        return {
            row["instance_type"]: float(row["on_demand_usd_per_hour"])
            for row in csv.DictReader(handle)
            if row["region"] == "us-west-2"
        }


def test_smoke_race_binds_every_pod_in_both_and_costs_what_the_nodes_labels_say(
    tmp_path: Path,
) -> None:
    trace = scenario("smoke")
    lines: list[str] = []
    [result] = race([trace], 1, tmp_path, lines.append, peers=find_peers())
    prices = published_prices()
    for system in ("gibbous", "karpenter"):
        [run] = result.of(system)
        observation = run.observation
        assert observation is not None
        # three 500m web pods and one 1-CPU worker, all bound, none left pending
        assert run.metrics.pods_bound == 4, (system, lines)
        assert run.metrics.pods_unbound == 0, (system, lines)
        assert run.metrics.nodes_created >= 1
        assert run.metrics.bound_max_s is not None
        assert run.metrics.bound_max_s < trace.duration_s
        # every pod asked for on-demand: each node's lifetime x its type's on-demand price
        expected = 0.0
        for node in observation.nodes.values():
            assert node.labels["karpenter.sh/capacity-type"] == "on-demand", node.labels
            end = observation.end if node.deleted_at is None else node.deleted_at
            expected += (
                (end - node.created_at)
                / 3600
                * prices[node.labels["node.kubernetes.io/instance-type"]]
            )
        assert run.metrics.cost == pytest.approx(expected)
        # no pod runs on a node before it is Ready (two watch streams: 1 s of skew)
        for pod in observation.pods.values():
            node = observation.nodes[pod.node]
            assert node.ready_at is not None
            assert pod.bound_at is not None
            assert pod.bound_at >= node.ready_at - 1.0, (system, pod, node)
            assert node.ready_at - node.created_at >= trace.boot_s - 1.0, (system, node)
        assert run.metrics.cost > 0
    assert {run.order for run in result.runs} == {0, 1}
    assert result.cost_ratio() is not None
