"""Launch flexibility on the loop: a stock-out or a quota error backs the pair off and the
next candidate is launched in the same step (Karpenter's CreateFleet hands EC2 several
types at once for the same reason), a chain of failures stops at its bound, and a launch
retried after throttling that stocks out hands the pods counted on it to its fallback.
Spot replicas of one workload take the zones of their type in turn."""

from __future__ import annotations

import csv
import gzip

from gibbous.autoscaler.cloud.base import ThrottledError
from gibbous.core import keys
from gibbous.core.podmodel.pods import node_name_of
from tests.autoscaler.test_loop import (
    BIG,
    CATALOG,
    SPOT_TOLERATION,
    cheapest_in_catalog,
    launched,
    run,
    setup,
)
from tests.factories import make_pod


def ranked_in_catalog(min_vcpu: float, min_memory_gib: float) -> list[str]:
    """The amd64 types without GPUs of at least this size in us-west-2, cheapest on-demand
    first (ties by name), read from the catalog file."""
    with gzip.open(CATALOG, "rt", newline="") as lines:
        rows = [
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2"
            and r["arch"] == "amd64"
            and r["gpu_count"] == "0"
            and float(r["vcpu"]) >= min_vcpu
            and float(r["memory_gib"]) >= min_memory_gib
        ]
    rows.sort(key=lambda r: (float(r["on_demand_usd_per_hour"]), r["instance_type"]))
    return [r["instance_type"] for r in rows]


# The planner's order for a 3 CPU / 4Gi on-demand pod (see BIG in test_loop).
RANKED = ranked_in_catalog(*BIG)
# The bound documented in docs/decisions.md: a launch and at most seven fallbacks per step.
CALLS_PER_STEP = 1 + 7


def test_stockouts_and_a_quota_error_land_the_next_cheapest_in_the_same_step() -> None:
    clock, provider, cluster, autoscaler = setup()
    first, second, third, fourth = RANKED[:4]
    provider.stockouts.update({(first, "on-demand", ""), (second, "on-demand", "")})
    provider.quota_exhausted.add((third, "on-demand"))
    cluster.add(make_pod("big", cpu="3", memory="4Gi"))
    autoscaler.step()  # the batching window opens
    assert provider.create_calls == []
    clock.advance(1)  # scaleUpBatchIdle
    autoscaler.step()  # one step: three failures and the launch that holds
    assert launched(provider) == [(t, "on-demand") for t in (first, second, third, fourth)]
    assert [i.instance_type for i in provider.instances.values()] == [fourth]
    for failed in (first, second, third):
        assert autoscaler.backoffs.is_blocked(failed, "on-demand", "us-west-2a", clock.now)
    tried = cluster.events_for("big", keys.EVENT_TRYING_NEXT_CANDIDATE)
    assert len(tried) == 3
    for message, failed, kind in zip(
        tried,
        (first, second, third),
        ("insufficient-capacity", "insufficient-capacity", "quota"),
        strict=True,
    ):
        assert message.startswith(f"launch of {failed} (on-demand")
        assert f"({kind}: " in message and message.endswith("launching the next candidate now")
    assert cluster.events_for("big", "NodeAddRequestWarning") == []
    run(clock, autoscaler, 35)  # boot: 30 s
    assert cluster.schedule() == ["default/big"]
    assert node_name_of(cluster.pod_objects["default/big"]) == "fake-i-000001"


def test_a_chain_of_stockouts_stops_at_the_bound_and_resumes_at_the_next_decision() -> None:
    clock, provider, cluster, autoscaler = setup()
    stocked_out = RANKED[:12]
    provider.stockouts.update((t, "on-demand", "") for t in stocked_out)
    cluster.add(make_pod("big", cpu="3", memory="4Gi"))
    run(clock, autoscaler, 2)  # the decision at 1 s
    assert launched(provider) == [(t, "on-demand") for t in RANKED[:CALLS_PER_STEP]]
    last = cluster.events_for("big", keys.EVENT_TRYING_NEXT_CANDIDATE)[-1]
    assert last.startswith(f"launch of {RANKED[CALLS_PER_STEP - 1]} ")
    assert last.endswith("7 fallbacks failed in a row; planned again at the next decision")
    run(clock, autoscaler, 7)  # no call until the next decision (scaleUpBatchMax, 10 s)
    assert len(provider.create_calls) == CALLS_PER_STEP
    run(clock, autoscaler, 3)
    # The next decision goes on from where the chain stopped: four more stock-outs, then
    # the thirteenth cheapest holds.
    assert launched(provider) == [(t, "on-demand") for t in RANKED[:13]]
    assert [i.instance_type for i in provider.instances.values()] == [RANKED[12]]
    run(clock, autoscaler, 35)
    assert cluster.schedule() == ["default/big"]


def test_a_throttled_launch_that_stocks_out_on_retry_hands_its_counted_pods_to_the_fallback() -> (
    None
):
    # The first create is throttled (retry after 10 s, times 1.5 with the test's jitter):
    # the launch stays in flight and pods arriving meanwhile are counted on its room. Its
    # retry stocks out: the fallback, launched in that same step, is for all of them.
    clock, provider, cluster, autoscaler = setup()
    # The bin-pack node of the default options: binPackingNodeCpu 4, binPackingNodeMemory
    # 16Gi, on-demand; 250m pods are bin-pack pods (under binSelectPodCpuThreshold 2).
    first, second = ranked_in_catalog(4, 16)[:2]
    provider.next_errors.append(ThrottledError(10.0))
    pods = [make_pod(f"w{i}", cpu="250m", memory="256Mi") for i in range(4)]
    start = clock.now
    cluster.add(pods[0])
    run(clock, autoscaler, 2)  # decided at 1 s, throttled
    assert launched(provider) == [(first, "on-demand")] and not provider.instances
    (token,) = autoscaler.launches
    for pod in pods[1:]:  # counted on the launch, not launched for
        cluster.add(pod)
        run(clock, autoscaler, 2)
    assert len(provider.create_calls) == 1
    uid = cluster.pod_objects["default/w3"]["metadata"]["uid"]
    assert autoscaler.decided[uid].detail == f"room on the launch in flight {token}"
    provider.stockouts.add((first, "on-demand", ""))
    while len(provider.create_calls) == 1:  # the retry at 16 s
        autoscaler.step()
        clock.advance(1)
        assert clock.now - start < 30
    assert launched(provider) == [(first, "on-demand")] * 2 + [(second, "on-demand")]
    assert token not in autoscaler.launches
    for pod in pods:  # each told, each on the fallback
        (told,) = cluster.events_for(pod["metadata"]["name"], keys.EVENT_TRYING_NEXT_CANDIDATE)
        assert told.startswith(f"launch of {first} (on-demand")
    run(clock, autoscaler, 35)
    assert len(cluster.schedule()) == 4
    assert {node_name_of(p) for p in cluster.pod_objects.values()} == {"fake-i-000001"}
    assert len(provider.create_calls) == 3


def spot_zones_in_catalog(instance_type: str) -> list[str]:
    with gzip.open(CATALOG, "rt", newline="") as lines:
        (row,) = (
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2" and r["instance_type"] == instance_type
        )
    return row["zones"].split(";")


def spot_replica(name: str, app: str) -> dict[str, object]:
    return make_pod(
        name,
        cpu="3",
        memory="4Gi",
        labels={"app": app, "pod-template-hash": "5d8f7"},
        annotations={keys.INSTANCE_OFFERINGS: "spot"},
        tolerations=[SPOT_TOLERATION],
    )


def test_spot_replicas_of_one_workload_go_to_different_zones() -> None:
    # Three spot replicas (bin-select: one node each) of one Deployment, and one of another:
    # the cheapest spot type is priced alike in every zone (one catalog price per type), so
    # the replicas take its zones in turn; the other workload's replica starts its own turn.
    clock, provider, cluster, autoscaler = setup()
    spot_type = cheapest_in_catalog(*BIG, "spot")
    zones = spot_zones_in_catalog(spot_type[0])
    assert len(zones) >= 3
    cluster.add(*(spot_replica(f"web-{i}", "web") for i in range(3)), spot_replica("db-0", "db"))
    run(clock, autoscaler, 2)
    assert launched(provider) == [spot_type] * 4
    by_pod = {
        pod: provider.instances[launch.instance_id].zone
        for launch in autoscaler.launches.values()
        for pod in launch.plan.pods
    }
    assert sorted(by_pod[f"default/web-{i}"] for i in range(3)) == sorted(zones[:3])
    assert by_pod["default/db-0"] == zones[0]
    run(clock, autoscaler, 35)
    assert len(cluster.schedule()) == 4
