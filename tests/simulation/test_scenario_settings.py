"""Scenario settings of `gibbous simulate` beyond the workloads: a boot-time spread, a
metrics lag, an eviction grace and replica changes (`scale`), each checked against the
rule it states; and the HTML report's shape for several scenarios."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.simulation import engine
from gibbous.simulation.engine import START, Result, run
from gibbous.simulation.report import cost_ratio, html_report
from gibbous.simulation.scenario import ScenarioError, parse_scenario
from gibbous.simulation.world import SimPod

POD = {
    "metadata": {"labels": {"elotl-luna": "true"}},
    "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
}


def scenario(**top: Any) -> Any:
    document = {
        "name": "s",
        "cloud": "aws",
        "duration": "20m",
        "workloads": [{"name": "web", "count": 4, "pod": POD}],
        **top,
    }
    return parse_scenario(document, "s.yaml")


def test_a_boot_time_spread_draws_each_launch_between_its_bounds() -> None:
    spread = scenario(bootTime={"min": "40s", "max": "80s"})
    assert (spread.boot_s, spread.boot_max_s) == (40.0, 80.0)
    result = run(spread, "karpenter-like")
    waits = [n.ran_at_s for n in result.first_nodes]
    # Launched at t=2 (the step after the pods were first found unschedulable); running
    # on the first 2 s step at or after 2 + boot: within [42, 82 + 2].
    assert waits and all(42 <= w <= 84 for w in waits)
    with pytest.raises(ScenarioError, match="max is below min"):
        scenario(bootTime={"min": "80s", "max": "40s"})


def test_the_metrics_lag_hides_pods_bound_more_recently() -> None:
    lagged = scenario(metricsLag="60s")
    simulation = engine._Run(lagged, "gibbous", 1, engine.scenario_config(lagged))
    while not any(p.bound_at for p in simulation.world.pods_by_key.values()):
        simulation.step(None)
    bound_at = min(p.bound_at for p in simulation.world.pods_by_key.values() if p.bound_at)
    assert simulation.world.pod_metrics() == []  # bound just now, 60 s lag
    while simulation.clock.now < bound_at + 60:
        simulation.step(None)
    assert simulation.world.pod_metrics()


def test_an_evicted_pod_holds_its_node_for_the_grace_while_its_replacement_waits() -> None:
    graceful = scenario(evictionGrace="30s")
    simulation = engine._Run(graceful, "gibbous", 1, engine.scenario_config(graceful))
    world = simulation.world
    while not world.pods_by_key or not all(p.bound_at for p in world.pods_by_key.values()):
        simulation.step(None)
    victim: SimPod = next(iter(world.pods_by_key.values()))
    evicted_at = simulation.clock.now
    world.evict(victim.obj)
    assert victim.terminating_until == evicted_at + 30
    assert "deletionTimestamp" in victim.obj["metadata"]
    assert len(world.pods_by_key) == 5  # the replacement is made at once
    world.evict(victim.obj)  # evicting it again changes nothing
    assert world.tally.evictions == 1
    simulation.clock.now = evicted_at + 29
    world.run_kubelets()
    assert victim in world.pods_by_key.values()
    simulation.clock.now = evicted_at + 30
    world.run_kubelets()
    assert victim not in world.pods_by_key.values() and len(world.pods_by_key) == 4


def test_scale_events_add_pods_as_one_arrival_and_remove_the_newest_first() -> None:
    scaled = scenario(
        events=[
            {"at": "5m", "scale": {"workload": "web", "replicas": 6}},
            {"at": "10m", "scale": {"workload": "web", "replicas": 1}},
        ]
    )
    simulation = engine._Run(scaled, "karpenter-like", 1, engine.scenario_config(scaled))
    world = simulation.world
    while simulation.clock.now < START + 5 * 60 + 1:
        simulation.step(None)
    assert len(world.pods_by_key) == 6
    first_four = sorted(p.created_at for p in world.pods_by_key.values())[:4]
    while simulation.clock.now < START + 10 * 60 + 1:
        simulation.step(None)
    (left,) = world.pods_by_key.values()
    # A ReplicaSet scaling down deletes unbound pods first, then the newest.
    assert left.created_at == first_four[0]
    result = simulation.finish()
    assert result.pods_bound == 6 and result.never_ran == 0
    with pytest.raises(ScenarioError, match="none of"):
        scenario(events=[{"at": "1m", "scale": {"workload": "api", "replicas": 2}}])
    with pytest.raises(ScenarioError, match="count >= 0"):
        scenario(events=[{"at": "1m", "scale": {"workload": "web", "replicas": -1}}])


def test_one_report_for_several_scenarios_with_titled_axes_and_gridlines() -> None:
    first, second = scenario(name="first"), scenario(name="second")
    pages = [(s, [run(s, "gibbous"), run(s, "ca-like")]) for s in (first, second)]
    page = html_report(pages)
    assert page.count("<html") == 1 and page.count("<section") == 2
    assert page.count("<svg") == 6
    assert page.count("simulated time (minutes)") == 6  # 20 minutes: a minute axis
    for title in ("cost rate ($/hour)", "nodes running", "pods pending"):
        assert page.count(title) == 2
    assert page.count('class="grid"') >= 6 * 4  # at least 2 ticks a side per plot


def test_no_cost_ratio_for_a_policy_that_left_pods_unrun() -> None:
    def result(policy: str, cost: float, never_ran: int) -> Result:
        return Result("s", policy, 1, total_cost=cost, never_ran=never_ran)

    gibbous = result("gibbous", 10.0, 0)
    assert cost_ratio(result("karpenter-like", 5.0, 0), gibbous) == "0.50"
    assert cost_ratio(result("karpenter-like", 2.0, 3), gibbous) == "- (3 pods never ran)"
    assert cost_ratio(gibbous, result("gibbous", 1.0, 2)).startswith("- (gibbous left 2")
