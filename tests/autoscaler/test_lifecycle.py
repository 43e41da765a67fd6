"""Node lifecycle on a fake clock: scale-down, budget, TTL, spot interruption, hot nodes
(including the two HNM experiments of P15)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.settings.config import Config
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod

FAST = {"scaleDown.unneededTime": "2m", "scaleDown.delayAfterAdd": "1m"}
AUTOSCALER_POD = {
    "metadata": {
        "name": "gibbous-autoscaler-0",
        "namespace": "gibbous",
        "uid": "autoscaler-pod-uid",
    }
}


class World:
    def __init__(self, cfg: Config) -> None:
        self.clock = Clock()
        self.cloud = FakeCloudProvider(catalog(cfg.cloud), self.clock, boot_s=20)
        self.cluster = FakeCluster(self.cloud, cfg)
        self.autoscaler = Autoscaler(
            cfg, self.cloud, self.cluster, clock=self.clock, new_token=Tokens(), jitter=lambda: 0.5
        )
        self.lifecycle = NodeLifecycle(
            self.autoscaler, self.cluster, clock=self.clock, own_pod=AUTOSCALER_POD
        )

    def run(self, seconds: float, tick: float = 5.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.autoscaler.step()
            self.lifecycle.step()
            self.cluster.schedule()
            self.clock.advance(tick)

    def nodes(self) -> list[str]:
        return sorted(str(n["metadata"]["name"]) for n in self.cluster.nodes())

    def node_of(self, name: str) -> str:
        return str(self.cluster.pod_objects[f"default/{name}"]["spec"]["nodeName"])


def world(**values: Any) -> World:
    return World(config(**{**FAST, **values}))


def test_an_empty_node_goes_after_the_unneeded_time_and_not_before() -> None:
    w = world()
    w.cluster.add(make_pod("job", cpu="3"))
    w.run(60)
    (node,) = w.nodes()
    del w.cluster.pod_objects["default/job"]  # the job finished
    w.run(110)
    assert w.nodes() == [node]  # unneeded, but not yet for 2 minutes
    w.run(30)
    assert w.nodes() == [] and node in w.cluster.deleted_nodes
    assert len(w.cloud.delete_calls) == 1


def test_a_pod_with_lunas_ignore_annotation_gets_no_node() -> None:
    w = world()
    w.cluster.add(make_pod("opted-out", cpu="3", annotations={"pod.elotl.co/ignore": "true"}))
    w.run(120)
    assert w.nodes() == [] and w.cloud.create_calls == []


def test_a_bin_select_node_stays_while_its_pod_runs() -> None:
    w = world()
    w.cluster.add(make_pod("big", cpu="3"))
    w.run(600)
    assert len(w.nodes()) == 1 and w.cloud.delete_calls == []


def test_a_bin_select_node_stays_while_an_unmanaged_pod_runs_there() -> None:
    # P09: "The bin-select node will automatically get scaled-in (or deleted) if no other
    # pods were also running on that node."
    w = world()
    w.cluster.add(make_pod("big", cpu="3"))
    w.run(60)
    (node,) = w.nodes()
    sidecar = make_pod("other-team", managed=False)
    sidecar["spec"]["nodeName"] = node
    w.cluster.add(sidecar)
    del w.cluster.pod_objects["default/big"]  # its bin-select pod is gone
    w.run(600)
    assert w.nodes() == [node] and w.cluster.evictions == []
    del w.cluster.pod_objects["default/other-team"]
    w.run(200)
    assert w.nodes() == [] and w.cluster.evictions == []


@pytest.mark.parametrize(("threshold", "consolidated"), [(0.75, True), (0.0, False)])
def test_an_underused_bin_select_node_goes_when_its_pod_fits_on_another(
    threshold: float, consolidated: bool
) -> None:
    # Luna's docs (v0.5 configuration, "Removal of under-utilized nodes"): a bin-select node
    # whose pods request under 75 % of its CPU or memory is removed once its pods can run
    # elsewhere. x (2 CPU) gets a 4-vCPU node: 2/4 is 50 %, under 75 %. y (5 CPU) then gets
    # an 8-vCPU node with 3 CPU to spare, room for x; y itself (5/8) fits nowhere else.
    w = world(**{"scaleDown.binSelectNodeUtilizationThreshold": threshold})
    w.cluster.add(make_pod("x", cpu="2", memory="1Gi"))
    w.run(60)
    (x_node,) = w.nodes()
    w.cluster.add(make_pod("y", cpu="5", memory="1Gi"))
    w.run(60)
    y_node = w.node_of("y")
    assert y_node != x_node and w.node_of("x") == x_node
    w.run(300)
    if consolidated:
        assert w.nodes() == [y_node] and w.cluster.evictions == ["default/x"]
    else:
        assert w.nodes() == sorted([x_node, y_node]) and w.cluster.evictions == []


def test_an_underused_bin_pack_node_is_consolidated_only_when_its_pods_fit_elsewhere() -> None:
    w = world(**{"scaleDown.binPackNodeUtilizationThreshold": 0.3})
    w.cluster.add(*(make_pod(f"s{i}", cpu="600m", memory="512Mi") for i in range(10)))
    w.run(60)
    nodes = w.nodes()
    assert len(nodes) == 2
    first, second = nodes
    on_first = [k for k, p in w.cluster.pod_objects.items() if p["spec"]["nodeName"] == first]
    on_second = [k for k, p in w.cluster.pod_objects.items() if p["spec"]["nodeName"] == second]
    # Leave one pod on the fuller node's partner, and room for it on the other.
    for key in on_first[1:] + on_second[:2]:
        del w.cluster.pod_objects[key]
    w.run(200)
    assert w.nodes() == [second]
    assert w.cluster.evictions == [on_first[0]]


def test_a_pod_that_must_not_be_evicted_keeps_its_node() -> None:
    w = world()
    w.cluster.add(make_pod("keep", cpu="3", annotations={keys.DO_NOT_EVICT: "true"}))
    w.run(60)
    w.cluster.pod_objects["default/keep"]["metadata"]["labels"].pop("elotl-luna")  # not managed
    w.run(600)
    assert len(w.nodes()) == 1 and w.cluster.evictions == []
    assert "must not be evicted" in next(iter(w.lifecycle.kept.values()))


def test_the_drain_budget_limits_nodes_draining_at_once() -> None:
    w = world(**{"scaleDown.maxDrainingNodes": 1, "nodeTTL": "1h"})
    w.cluster.add(*(make_pod(f"b{i}", cpu="3") for i in range(3)))
    w.cluster.pdb_protected = {f"default/b{i}" for i in range(3)}
    w.run(3600 + 60)
    assert len(w.lifecycle.draining) == 1  # TTL reached for all three, one at a time
    w.cluster.pdb_protected.clear()
    w.run(30)
    assert len(w.cluster.deleted_nodes) >= 1 and len(w.lifecycle.draining) <= 1


def test_node_ttl_replaces_old_nodes_and_pdb_refusals_are_retried_not_forced() -> None:
    w = world(nodeTTL="1h")
    w.cluster.add(make_pod("svc", cpu="3"))
    w.run(60)
    (old,) = w.nodes()
    w.cluster.pdb_protected.add("default/svc")
    w.run(3600)
    assert w.nodes() == [old] and old in w.lifecycle.draining and w.cluster.evictions == []
    assert old in w.cluster.cordoned
    w.cluster.pdb_protected.clear()
    w.run(10)
    assert w.cluster.evictions == ["default/svc"] and old in w.cluster.deleted_nodes
    w.cluster.add(make_pod("svc", cpu="3"))  # its controller recreates it
    w.run(60)
    (new,) = w.nodes()
    assert new != old and w.node_of("svc") == new


def spot_pod() -> dict[str, Any]:
    return make_pod(
        "sp",
        cpu="3",
        annotations={keys.INSTANCE_OFFERINGS: "spot"},
        tolerations=[{"key": keys.SPOT_TAINT_KEY, "operator": "Exists"}],
    )


def test_spot_interruption_drains_at_once_and_backs_off_the_type_in_that_zone() -> None:
    w = world()
    w.cluster.add(spot_pod())
    w.run(60)
    (instance,) = w.cloud.list(w.autoscaler.config.cluster_id)
    w.cloud.interrupt(instance.id)
    w.autoscaler.last_list_at = float("-inf")
    w.autoscaler.step()
    w.lifecycle.step()
    # The replacement is launched with the warning, before the pod is evicted.
    assert len(w.cloud.create_calls) == 2 and w.cluster.evictions == ["default/sp"]
    replacement_request = w.cloud.create_calls[1]
    assert (replacement_request.instance_type, replacement_request.zones) != (
        instance.instance_type,
        (instance.zone,),
    )
    w.run(10)  # removed in the next step
    assert w.cluster.evictions == ["default/sp"] and instance.node_name in w.cluster.deleted_nodes
    assert w.autoscaler.backoffs.is_blocked(
        instance.instance_type, "spot", instance.zone, w.clock.now
    )
    entry = next(
        e for e in w.autoscaler.backoffs.active(w.clock.now) if e.kind is FailureKind.INTERRUPTED
    )
    assert entry.zone == instance.zone
    w.cluster.add(spot_pod())  # recreated by its controller: it takes the launch in flight
    w.run(60)
    (replacement,) = w.cloud.list(w.autoscaler.config.cluster_id)
    assert (replacement.instance_type, replacement.zone) != (instance.instance_type, instance.zone)
    assert len(w.cloud.create_calls) == 2 and w.node_of("sp") == replacement.node_name


def test_gpu_nodes_scale_to_zero_when_nothing_needs_them() -> None:
    w = world()
    w.cluster.add(*(make_pod(f"g{i}", cpu="1", gpus=1) for i in range(2)))
    w.run(60)
    assert len(w.nodes()) == 2
    w.cluster.pod_objects.clear()
    w.run(200)
    assert w.nodes() == []


def hot_world() -> World:
    return world(
        **{"manageHighUtilization.enabled": True, "manageHighUtilization.loopPeriod": "30s"}
    )


def test_hnm_two_burstable_workers_one_is_evicted_and_replaced_elsewhere() -> None:
    # P15, experiment 1: two Ray workers, burstable, on one bin-pack node; their real CPU
    # use makes the node hot: one is evicted and comes back on another node.
    w = hot_world()
    w.cluster.add(make_pod("w1", cpu="500m"), make_pod("w2", cpu="500m"))
    w.run(60)
    (node,) = w.nodes()
    w.cluster.usage[node] = ("3600m", "2Gi")  # 90% of 4 vCPU
    w.cluster.pod_usage = {"default/w1": ("1500m", "500Mi"), "default/w2": ("2000m", "600Mi")}
    w.run(30)
    assert w.cluster.evictions == ["default/w2"]
    taints = w.cluster.node_taints[node]
    assert {"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"} in taints
    assert (
        w.cluster.node_annotations[node]["gibbous.dev/observed-utilization"]
        == "cpu=90.0,memory=12.5"
    )
    w.cluster.add(make_pod("w2", cpu="500m"))  # recreated by its controller
    w.run(60)
    assert w.node_of("w2") != node and w.node_of("w1") == node


def test_hnm_a_best_effort_hog_makes_the_node_warm_and_the_next_pod_goes_elsewhere() -> None:
    # P15, experiment 2: a best-effort pod (no requests) burns CPU; the node turns warm and
    # the next bin-pack pod is placed on another node; when the hog stops, the taint goes.
    w = hot_world()
    w.cluster.add(make_pod("app", cpu="500m"))
    w.run(60)
    (node,) = w.nodes()
    w.cluster.add(make_pod("hog", cpu=None, memory=None, managed=False), unschedulable=False)
    w.cluster.bind("default/hog", node)
    w.cluster.usage[node] = ("2600m", "1Gi")  # 65%
    w.cluster.pod_usage = {"default/hog": ("2400m", "100Mi"), "default/app": ("100m", "100Mi")}
    w.run(30)
    assert w.cluster.node_taints[node] == [
        {"key": keys.HOT_NODE_TAINT, "value": "warm", "effect": "NoSchedule"}
    ]
    assert w.cluster.evictions == []  # warm: no eviction
    w.cluster.add(make_pod("next", cpu="500m"))
    w.run(60)
    assert w.node_of("next") != node
    w.cluster.usage[node] = ("1200m", "1Gi")  # 30%: hysteresis, still warm
    w.run(30)
    assert w.cluster.node_taints[node][0]["value"] == "warm"
    w.cluster.usage[node] = ("200m", "1Gi")  # 5% CPU, 6% memory: green
    w.run(30)
    assert w.cluster.node_taints[node] == []


def test_hot_bin_select_nodes_are_left_alone() -> None:
    w = hot_world()
    w.cluster.add(make_pod("solo", cpu="3"))
    w.run(60)
    (node,) = w.nodes()
    w.cluster.usage[node] = ("3900m", "1Gi")
    w.cluster.pod_usage = {"default/solo": ("3900m", "1Gi")}
    w.run(60)
    assert w.cluster.node_taints.get(node, []) == [] and w.cluster.evictions == []
    assert "gibbous.dev/observed-utilization" in w.cluster.node_annotations[node]


def test_a_failed_node_delete_is_said_counted_and_retried_not_called_removed() -> None:
    w = world()
    w.cluster.add(make_pod("job", cpu="3"))
    w.run(60)
    assert len(w.nodes()) == 1
    del w.cluster.pod_objects["default/job"]
    w.cluster.node_delete_errors = [RuntimeError("etcd timeout")]
    w.run(140)
    failures = [m for _, r, m, _ in w.cluster.events if r == keys.EVENT_NODE_DELETE_FAILED]
    assert len(failures) == 1 and "etcd timeout" in failures[0]
    # Not counted as removed by Gibbous; here the Node then goes with its instance (as the
    # cloud's node controller removes Nodes of terminated instances).
    assert w.cluster.deleted_nodes == [] and w.lifecycle.deleted == []
    assert w.nodes() == []
    text = generate_latest(w.autoscaler.metrics.registry).decode()
    assert "gibbous_autoscaler_node_delete_failures_total 1.0" in text


def test_hot_nodes_without_metrics_api_warn_once_at_start_and_say_so_in_a_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = hot_world()
    w.cluster.metrics_api = False
    with caplog.at_level(logging.DEBUG, logger="gibbous.lifecycle"):
        w.run(120)  # four loopPeriods
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "metrics.k8s.io" in warnings[0].getMessage()
    # And one Warning event on the autoscaler's own pod, where `kubectl describe` shows it.
    reasons = [(uid, r) for uid, r, _, _ in w.cluster.events if r.startswith("GibbousHotNode")]
    assert reasons == [("autoscaler-pod-uid", "GibbousHotNodeMetricsUnavailable")]
    text = generate_latest(w.autoscaler.metrics.registry).decode()
    assert "gibbous_autoscaler_hot_node_metrics_readable 0.0" in text
    w.cluster.metrics_api = True
    w.run(60)
    text = generate_latest(w.autoscaler.metrics.registry).decode()
    assert "gibbous_autoscaler_hot_node_metrics_readable 1.0" in text


# --- scale-down by usage while mitigation is on (gibbous.core.lifecycle.usagefit) -------


def test_with_mitigation_on_a_node_cooled_by_its_pods_use_is_consolidated_not_kept() -> None:
    # Experiment 2's shape: the app heats its node to warm, the next pod gets a node of its
    # own; the app's use then falls to 30 % (still warm: Luna's hysteresis keeps the taint
    # until green). By requests (13 % and 25 % of 4 vCPU, threshold 0.2) nothing would go;
    # by use the two nodes' pods fit on one: 1100m + 300m is under 80 - 10 % of 4 CPUs.
    w = hot_world()
    w.cluster.add(make_pod("app", cpu="1"))
    w.run(60)
    (first,) = w.nodes()
    w.cluster.usage[first] = ("2600m", "1Gi")  # 65 %: warm
    w.cluster.pod_usage = {"default/app": ("2500m", "500Mi")}
    w.run(30)
    w.cluster.add(make_pod("next", cpu="500m"))
    w.run(60)
    (second,) = [n for n in w.nodes() if n != first]
    assert w.node_of("next") == second
    w.cluster.usage = {first: ("1200m", "1Gi"), second: ("350m", "1Gi")}
    # The next pod has no PodMetrics yet (metrics-server lag): its node's use is unknown,
    # so neither node goes (missing is not zero; by requests neither is under 0.2 with a
    # place for its pod, the first node being tainted).
    w.cluster.pod_usage = {"default/app": ("1100m", "500Mi")}
    w.run(300)
    assert sorted(w.nodes()) == sorted([first, second]) and w.cluster.evictions == []
    w.cluster.pod_usage["default/next"] = ("300m", "400Mi")
    w.run(300)
    (left,) = w.nodes()
    assert len(w.cluster.evictions) == 1
    (moved,) = w.cluster.evictions
    w.cluster.add(make_pod(moved.split("/")[1], cpu="1" if moved.endswith("app") else "500m"))
    w.run(30)
    assert w.node_of("app") == left and w.node_of("next") == left
    # The node that stayed takes the pod only untainted (the warm taint was lifted for it).
    assert all(t["key"] != keys.HOT_NODE_TAINT for t in w.cluster.node_taints.get(left, []))


def test_with_mitigation_on_a_node_it_cooled_is_held_for_delay_after_hot_eviction() -> None:
    w = world(
        **{
            "manageHighUtilization.enabled": True,
            "manageHighUtilization.loopPeriod": "30s",
            "scaleDown.delayAfterHotEviction": "5m",
        }
    )
    w.cluster.add(make_pod("w1", cpu="500m"), make_pod("w2", cpu="500m"))
    w.run(60)
    (hot,) = w.nodes()
    w.cluster.usage[hot] = ("3600m", "2Gi")  # 90 %: red
    w.cluster.pod_usage = {"default/w1": ("1500m", "500Mi"), "default/w2": ("2000m", "600Mi")}
    w.run(30)
    assert w.cluster.evictions == ["default/w2"]
    evicted_at = w.clock.now
    w.cluster.add(make_pod("w2", cpu="500m"))
    w.run(60)
    (other,) = [n for n in w.nodes() if n != hot]
    # Both light now: w1 (700m) would fit on the other node (700m + 700m < 2800m).
    w.cluster.usage = {hot: ("800m", "1Gi"), other: ("700m", "1Gi")}
    w.cluster.pod_usage = {"default/w1": ("700m", "500Mi"), "default/w2": ("700m", "500Mi")}
    w.run(evicted_at + 270 - w.clock.now)
    assert hot in w.nodes() and w.cluster.evictions == ["default/w2"]
    assert "delayAfterHotEviction" in w.lifecycle.kept[hot]
    # After the hold, scaleDown.unneededTime (2 m) more, then it goes.
    w.run(5 * 60)
    assert hot not in w.nodes() and w.cluster.evictions == ["default/w2", "default/w1"]
