"""Capacity in flight, on the loop: pods that arrive while a launch boots are counted on
it (one launch for a trickle, not one per pod), and what was counted on a launch that
fails, times out or is taken by other pods is planned again, so no pod is stranded."""

from __future__ import annotations

from gibbous.autoscaler.cloud.base import InstanceState
from gibbous.core.podmodel.pods import node_name_of
from tests.autoscaler.fakes import FakeCluster
from tests.autoscaler.test_loop import cheapest_in_catalog, launched, run, setup
from tests.factories import config, make_pod

# The bin-pack node of the default options: at least binPackingNodeCpu 4 and
# binPackingNodeMemory 16Gi, on-demand (binPackingNodePricing), the cheapest such type.
BIN_PACK_NODE = cheapest_in_catalog(4, 16, "on-demand")


def trickle(count: int) -> list[dict[str, object]]:
    # 250m / 256Mi each: twelve are 3 CPU and 3 GiB, well within one 4-vCPU, 16-GiB node
    # less the kubelet's reservation (under 0.5 CPU and 2 GiB at that size).
    return [make_pod(f"t{i:02d}", cpu="250m", memory="256Mi") for i in range(count)]


def nodes_of(cluster: FakeCluster) -> set[str]:
    return {node_name_of(p) for p in cluster.pod_objects.values()}


def test_a_trickle_during_a_launch_ends_on_that_launch_node() -> None:
    clock, provider, cluster, autoscaler = setup()  # boot: 30 s
    for index, pod in enumerate(trickle(12)):  # one pod every 2 s for 24 s
        cluster.add(pod)
        run(clock, autoscaler, 2)
        if index == 0:  # not held: launched one idle second after the first pod
            assert launched(provider) == [BIN_PACK_NODE]
    assert launched(provider) == [BIN_PACK_NODE]  # one launch, not twelve
    (token,) = autoscaler.launches
    later = cluster.pod_objects["default/t05"]["metadata"]["uid"]
    assert autoscaler.decided[later].detail == f"room on the launch in flight {token}"
    assert cluster.schedule() == []  # still booting
    run(clock, autoscaler, 10)
    assert len(cluster.schedule()) == 12
    assert nodes_of(cluster) == {"fake-i-000001"}
    assert len(launched(provider)) == 1


def test_pods_counted_on_a_launch_that_fails_are_planned_again_at_once() -> None:
    # The launch is accepted, then fails 20 s later (a spot-style stock-out after
    # acceptance): the pods that arrived meanwhile were counted on it, and all of them go
    # to the one replacement, launched within the busy period that hears the failure.
    clock, provider, cluster, autoscaler = setup(fails_after_accept={BIN_PACK_NODE: 20.0})
    for pod in trickle(8):  # 16 s of arrivals, all counted on the first launch
        cluster.add(pod)
        run(clock, autoscaler, 2)
    assert len(launched(provider)) == 1
    run(clock, autoscaler, 8)  # the failure (at 21 s) is heard within 2 s
    assert provider.instances["i-000001"].state is InstanceState.TERMINATED
    assert len(launched(provider)) == 2
    provider.fails_after_accept.clear()
    run(clock, autoscaler, 40)
    assert len(cluster.schedule()) == 8
    assert nodes_of(cluster) == {"fake-i-000002"}
    assert len(launched(provider)) == 2


def test_pods_counted_on_a_launch_that_times_out_go_to_the_next_candidate() -> None:
    cfg = config(scaleUpTimeout="60s")
    clock, provider, cluster, autoscaler = setup(cfg)
    provider.hangs.add(BIN_PACK_NODE)  # accepted, never running
    for pod in trickle(6):
        cluster.add(pod)
        run(clock, autoscaler, 2)
    assert launched(provider) == [BIN_PACK_NODE]
    run(clock, autoscaler, 52)  # past scaleUpTimeout: terminated, pair backed off
    assert provider.instances["i-000001"].state is InstanceState.TERMINATED
    (first, second) = launched(provider)
    assert second != first  # the next candidate, for all six pods
    run(clock, autoscaler, 32)
    assert len(cluster.schedule()) == 6
    assert nodes_of(cluster) == {"fake-i-000002"}


def test_pods_the_scheduler_did_not_put_on_their_node_are_planned_again() -> None:
    # Six pods are counted on the launch; when it is Ready, a pod Gibbous does not manage
    # takes all but 1 CPU of it first (kube-scheduler's order, not Gibbous's plan). The
    # pods left pending are planned again within scaleUpBatchMax (10 s) and get a node.
    clock, provider, cluster, autoscaler = setup()
    pods = [make_pod(f"m{i}", cpu="500m", memory="512Mi") for i in range(6)]
    cluster.add(*pods)
    run(clock, autoscaler, 31)  # launched at 1 s, Ready at 31 s
    assert len(launched(provider)) == 1
    node = "fake-i-000001"
    allocatable_cpu = int(cluster.nodes()[0]["status"]["allocatable"]["cpu"].rstrip("m"))
    hog = make_pod("aaa-hog", cpu=f"{allocatable_cpu - 1000}m", memory="1Gi", managed=False)
    cluster.add(hog)
    bound = cluster.schedule()  # the hog first (name order), then two 500m pods
    assert "default/aaa-hog" in bound and len(bound) == 3
    run(clock, autoscaler, 11)
    assert len(launched(provider)) == 2  # the four left over, replanned
    run(clock, autoscaler, 31)
    assert len(cluster.schedule()) == 4
    assert nodes_of(cluster) == {node, "fake-i-000002"}
