"""The provisioning loop on a fake clock, a fake cloud and an in-memory cluster."""

from __future__ import annotations

import csv
import datetime
import gzip
import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from gibbous.autoscaler.cloud.base import (
    FatalConfigurationError,
    Instance,
    InstanceState,
    LaunchRequest,
    ThrottledError,
)
from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.planning.placement import node_view
from gibbous.core.settings.config import Config
from gibbous.simulation.world import unschedulable_status
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod, spot_post_ray_head

SPOT_TOLERATION = {
    "key": keys.SPOT_TAINT_KEY,
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def setup(
    cfg: Config | None = None, cloud: str = "aws", **cloud_options: Any
) -> tuple[Clock, FakeCloudProvider, FakeCluster, Autoscaler]:
    cfg = cfg or config(cloudProvider=cloud)
    clock = Clock()
    provider = FakeCloudProvider(catalog(cfg.cloud), clock, **cloud_options)
    cluster = FakeCluster(provider, cfg)
    autoscaler = Autoscaler(
        cfg, provider, cluster, clock=clock, new_token=Tokens(), jitter=lambda: 0.5
    )
    return clock, provider, cluster, autoscaler


def run(clock: Clock, autoscaler: Autoscaler, seconds: float, tick: float = 1.0) -> None:
    end = clock.now + seconds
    while clock.now < end:
        autoscaler.step()
        clock.advance(tick)


def launched(provider: FakeCloudProvider) -> list[tuple[str, str]]:
    return [(r.instance_type, r.category) for r in provider.create_calls]


CATALOG = Path(__file__).resolve().parents[2] / "gibbous" / "catalogs" / "aws.csv.gz"


def cheapest_in_catalog(min_vcpu: float, min_memory_gib: float, category: str) -> tuple[str, str]:
    """The cheapest amd64 type without GPUs of at least this size in us-west-2, read from
    the catalog file; spot at its listed price, else half the on-demand one (the
    spotPriceRatioEstimate default, docs/reference/options.md)."""

    def price(row: dict[str, str]) -> float:
        if category == "spot":
            return float(row["spot_usd_per_hour"] or float(row["on_demand_usd_per_hour"]) * 0.5)
        return float(row["on_demand_usd_per_hour"])

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
    return min(rows, key=lambda r: (price(r), r["instance_type"]))["instance_type"], category


# A 3 CPU / 4Gi pod (bin-select: 3 >= binSelectPodCpuThreshold 2) fits no type under 4
# vCPU and 8 GiB: the kubelet's reservation, the eviction threshold and the DaemonSets
# leave under 2 CPU of 2 vCPU and under 3 GiB of 4 GiB.
BIG = (4, 8)


def test_gke_spot_story_two_t4_timeouts_then_p4() -> None:
    # P10 on GKE: the two T4 spot types never come up and time out at 10m each; the P4 spot
    # type succeeds around 20m and is still cheaper than T4 on-demand.
    cfg = config(cloudProvider="gcp")
    t4_standard, t4_highmem = ("n1-standard-32+t4x2", "spot"), ("n1-highmem-32+t4x2", "spot")
    clock, provider, cluster, autoscaler = setup(cfg, hangs={t4_standard, t4_highmem}, boot_s=90)
    start = clock.now
    head = spot_post_ray_head()
    head["spec"]["tolerations"] = [SPOT_TOLERATION]  # as the webhook adds it
    cluster.add(head)
    times: list[float] = []
    while not cluster.schedule():
        before = len(provider.create_calls)
        autoscaler.step()
        if len(provider.create_calls) > before:
            times.append(clock.now - start)
        clock.advance(5)
        assert clock.now - start < 40 * 60
    assert launched(provider) == [t4_standard, t4_highmem, ("n1-standard-32+p4x2", "spot")]
    assert 600 <= times[1] - times[0] <= 610 and 600 <= times[2] - times[1] <= 610
    assert 20 * 60 <= times[2] <= 21 * 60
    # Both timed-out instances were terminated, never leaked.
    assert sorted(provider.delete_calls) == ["i-000001", "i-000002"]
    assert [i.instance_type for i in provider.list(cfg.cluster_id)] == ["n1-standard-32+p4x2"]
    node = node_view(next(n for n in cluster.nodes()))
    assert node.price_per_hour == 1.36 and node.price_per_hour < 2.22  # T4 on-demand
    # Nova re-places a workload on NodeAddRequestWarning (P00): none while Gibbous moves on.
    assert cluster.events_for("ray-head", "NodeAddRequestWarning") == []
    moving_on = cluster.events_for("ray-head", keys.EVENT_TRYING_NEXT_CANDIDATE)
    assert len(moving_on) == 2 and all("scaleUpTimeout" in w for w in moving_on)
    assert {e.instance_type for e in autoscaler.backoffs.active(clock.now)} == {
        t4_standard[0],
        t4_highmem[0],
    }


def test_stockout_tries_the_next_cheapest_in_the_same_step() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(make_pod("big", cpu="3", memory="4Gi"))
    first_choice = cheapest_in_catalog(*BIG, "on-demand")
    provider.stockouts.add((*first_choice, ""))
    run(clock, autoscaler, 2)
    assert launched(provider)[0] == first_choice
    assert len(provider.instances) == 1 and launched(provider)[1] != first_choice
    assert autoscaler.backoffs.is_blocked(*first_choice, "us-west-2a", clock.now)


def test_a_launch_that_fails_after_acceptance_is_replaced_within_seconds() -> None:
    # EC2 accepts a spot launch and terminates it 20 s later (pending -> terminated,
    # Server.InsufficientInstanceCapacity); GKE, AKS and OKE report stock-outs this way too.
    # The loop hears it by polling the launch and moves to the next candidate at once, not
    # at scaleUpTimeout (10 minutes).
    spot = {keys.INSTANCE_OFFERINGS: "spot"}
    first_choice = cheapest_in_catalog(*BIG, "spot")

    clock, provider, cluster, autoscaler = setup(fails_after_accept={first_choice: 20.0})
    cluster.add(
        make_pod("big", cpu="3", memory="4Gi", annotations=spot, tolerations=[SPOT_TOLERATION])
    )
    run(clock, autoscaler, 21)
    assert len(launched(provider)) == 1
    run(clock, autoscaler, 3)  # the failure is heard within one busy period (2 s)
    assert len(launched(provider)) == 2
    failed, replacement = provider.instances["i-000001"], provider.create_calls[1]
    assert failed.state is InstanceState.TERMINATED
    # The stock-out is zonal: the same (type, category) is backed off in that zone only.
    assert autoscaler.backoffs.is_blocked(*first_choice, failed.zone, clock.now)
    assert failed.zone not in replacement.zones
    assert autoscaler.metrics.failures.labels("insufficient-capacity")._value.get() == 1
    assert cluster.events_for("big", "NodeAddRequestWarning") == []
    moving_on = cluster.events_for("big", keys.EVENT_TRYING_NEXT_CANDIDATE)
    assert any("failed after the cloud accepted it" in w for w in moving_on)
    provider.fails_after_accept.clear()  # capacity elsewhere
    run(clock, autoscaler, 60)
    assert cluster.schedule() == ["default/big"]


class ThrottledReads:
    """The fake cloud as the loop sees it, its list and get answered `ThrottledError`
    (retry after 10 s) until `until`; the cluster still reads the cloud's truth."""

    def __init__(self, inner: FakeCloudProvider, clock: Clock, until: float) -> None:
        self.inner, self.clock, self.until = inner, clock, until
        self.reads: list[tuple[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _read(self, kind: str) -> None:
        self.reads.append((kind, self.clock.now))
        if self.clock.now < self.until:
            raise ThrottledError(10.0, "RequestLimitExceeded")

    def list(self, cluster_id: str) -> list[Instance]:
        self._read("list")
        return self.inner.list(cluster_id)

    def get(self, instance_id: str) -> Instance:
        self._read("get")
        return self.inner.get(instance_id)


def test_throttled_reads_pause_listing_and_polling_and_fail_no_launch() -> None:
    """A cloud throttling reads for a minute while a launch flies: the loop lists and
    polls again only when the answer's Retry-After (10 s) has passed, and decides nothing
    about the launch on reads it could not make: no failure, no termination, no second
    launch; the node is used when it registers."""
    cfg = config(cloudProvider="aws")
    clock = Clock()
    cloud = FakeCloudProvider(catalog(cfg.cloud), clock)
    throttled = ThrottledReads(cloud, clock, until=clock.now + 60)
    cluster = FakeCluster(cloud, cfg)
    autoscaler = Autoscaler(
        cfg, throttled, cluster, clock=clock, new_token=Tokens(), jitter=lambda: 0.5
    )
    cluster.add(make_pod("big", cpu="3", memory="4Gi"))
    start = clock.now
    run(clock, autoscaler, 90)
    assert len(cloud.create_calls) == 1 and not cloud.delete_calls
    assert cluster.schedule() == ["default/big"]
    for kind in ("list", "get"):
        during = [at - start for k, at in throttled.reads if k == kind and at < start + 60]
        # At most one read per 10 s while throttled (hand count: 60 s / 10 s = 6).
        assert len(during) <= 6, (kind, during)
        assert all(b - a >= 10 for a, b in itertools.pairwise(during)), during
    assert autoscaler.metrics.failures.labels("abandoned")._value.get() == 0


def test_quota_backs_off_the_pair_and_moves_on() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(make_pod("big", cpu="3", memory="4Gi"))
    first_choice = cheapest_in_catalog(*BIG, "on-demand")
    provider.quota_exhausted.add(first_choice)
    run(clock, autoscaler, 2)
    assert launched(provider)[0] == first_choice
    assert len(provider.instances) == 1 and launched(provider)[1] != first_choice
    assert autoscaler.metrics.failures.labels("quota")._value.get() == 1


def test_kai_queue_blocked_pods_never_scale_up_with_the_posts_kai_regexp() -> None:
    # P08's setting beside KAI (unset, Luna's default, every pending pod counts).
    kai = config(pendingPodReasonRegexp="(.*[Nn]o.*resources.*|^0/([0-9]+) nodes are available)")
    clock, provider, cluster, autoscaler = setup(kai)
    pod = make_pod("kai", cpu="1", gpus=1)
    pod["status"] = unschedulable_status(
        "OverLimit: default1 quota has reached the allowable limit of GPUs. "
        "Limit is 1 GPUs, currently 1 GPUs allocated and workload requested 1 GPU"
    )
    cluster.add(pod, unschedulable=False)
    run(clock, autoscaler, 60)
    assert provider.create_calls == []


def test_a_burst_of_a_thousand_pods_is_one_decision() -> None:
    clock, provider, cluster, autoscaler = setup()
    for wave in range(10):  # arriving over 0.9s: one window
        cluster.add(*(make_pod(f"p{wave}-{i}", cpu="250m") for i in range(100)))
        autoscaler.step()
        clock.advance(0.1)
    run(clock, autoscaler, 3, tick=0.25)
    assert autoscaler.decisions == 1
    cluster.schedule()  # nothing is Ready yet
    run(clock, autoscaler, 60)  # boot: 30s
    assert cluster.schedule() and all(
        (p.get("spec") or {}).get("nodeName") for p in cluster.pod_objects.values()
    )
    # No second wave of launches while the first was booting.
    nodes = len(provider.instances)
    run(clock, autoscaler, 60)
    assert len(provider.instances) == nodes


def test_a_steady_trickle_still_gets_decisions_within_the_max_window() -> None:
    clock, provider, cluster, autoscaler = setup()
    for i in range(24):  # a new pod every 0.5s: never idle for 1s
        cluster.add(make_pod(f"t{i}", cpu="3", memory="4Gi"))
        autoscaler.step()
        clock.advance(0.5)
    assert autoscaler.decisions == 1 and provider.create_calls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bursts=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["250m", "1", "3", "6"]), st.integers(0, 2)), max_size=12
        ),
        min_size=1,
        max_size=4,
    ),
    gpu_limit=st.integers(0, 4),
    max_nodes=st.integers(1, 6),
    max_cost=st.floats(1.0, 8.0),
)
def test_guardrails_hold_under_any_burst(
    bursts: list[list[tuple[str, int]]], gpu_limit: int, max_nodes: int, max_cost: float
) -> None:
    cfg = config(clusterGPULimit=gpu_limit, maxNodes=max_nodes, maxClusterCostPerHour=max_cost)
    clock, provider, cluster, autoscaler = setup(cfg)
    for b, burst in enumerate(bursts):
        cluster.add(
            *(make_pod(f"b{b}-{i}", cpu=cpu, gpus=gpus) for i, (cpu, gpus) in enumerate(burst))
        )
        for _ in range(8):
            autoscaler.step()
            clock.advance(5)
            cluster.schedule()
            live = provider.list(cfg.cluster_id)
            by_name = {t.name: t for t in provider.catalog}
            assert len(live) <= max_nodes
            assert sum(by_name[i.instance_type].gpu_count for i in live) <= gpu_limit
            assert sum(float(i.labels[keys.PRICE_PER_HOUR]) for i in live) <= max_cost + 1e-9


def test_restart_mid_launch_launches_nothing_twice() -> None:
    clock, provider, cluster, autoscaler = setup(boot_s=120)
    cluster.add(*(make_pod(f"w{i}", cpu="3", memory="4Gi") for i in range(3)))
    run(clock, autoscaler, 5)
    assert len(provider.instances) == 3
    # The process dies; a new one starts with nothing but the cloud and the API server.
    reborn = Autoscaler(
        cfg := autoscaler.config, provider, cluster, clock=clock, new_token=Tokens("r")
    )
    run(clock, reborn, 30)
    assert len(provider.create_calls) == 3 and len(reborn.launches) == 3
    assert all(launch.adopted for launch in reborn.launches.values())
    run(clock, reborn, 120)
    assert cluster.schedule() and len(provider.list(cfg.cluster_id)) == 3
    assert provider.delete_calls == []


def test_crash_between_create_and_record_is_adopted_not_duplicated() -> None:
    clock, provider, cluster, autoscaler = setup(boot_s=120)
    cluster.add(make_pod("solo", cpu="3", memory="4Gi"))
    run(clock, autoscaler, 3)
    (instance,) = provider.instances.values()
    autoscaler.launches.clear()  # as if the process died right after create() returned
    autoscaler.last_list_at = float("-inf")
    run(clock, autoscaler, 20)
    assert len(provider.create_calls) == 1
    assert [launch.instance_id for launch in autoscaler.launches.values()] == [instance.id]


def test_throttled_launch_is_retried_with_the_same_token_after_jittered_delay() -> None:
    clock, provider, cluster, autoscaler = setup()
    provider.throttle_next(retry_after_s=4)
    cluster.add(make_pod("solo", cpu="3", memory="4Gi"))
    run(clock, autoscaler, 2)
    assert len(provider.create_calls) == 1 and not provider.instances
    run(clock, autoscaler, 6)  # 4s * (1 + 0.5 jitter) = 6s after the first try
    assert len(provider.create_calls) == 2 and len(provider.instances) == 1
    assert provider.create_calls[0].token == provider.create_calls[1].token


def test_an_instance_that_never_registers_is_collected_as_an_orphan() -> None:
    cfg = config(registrationTimeout="15m", orphanGracePeriod="5m")
    clock, provider, _cluster, autoscaler = setup(cfg)
    provider.hangs.add(("m5.large", "on-demand"))
    stray = provider.create(
        LaunchRequest(
            token="lost",
            cluster_id=cfg.cluster_id,
            instance_type="m5.large",
            category="on-demand",
            zones=(),
        )
    )
    autoscaler.launches.clear()
    # Adopted while young, then timed out by scaleUpTimeout like any launch of ours.
    run(clock, autoscaler, 11 * 60, tick=10)
    assert stray.id in provider.delete_calls


def test_gpu_nodes_count_as_in_flight_until_their_gpus_are_allocatable() -> None:
    clock, provider, cluster, autoscaler = setup(boot_s=30)
    cluster.gpu_plugin_delay_s = 120
    cluster.add(make_pod("g", cpu="1", gpus=1))
    run(clock, autoscaler, 60)
    assert len(autoscaler.launches) == 1 and len(provider.instances) == 1
    run(clock, autoscaler, 150)
    assert autoscaler.launches == {} and len(provider.instances) == 1
    assert cluster.schedule() == ["default/g"]


def test_gated_bin_select_pod_is_pinned_to_its_node_and_released() -> None:
    clock, provider, cluster, autoscaler = setup()
    pod = make_pod("gated", cpu="3", memory="4Gi")
    pod["spec"]["schedulingGates"] = [{"name": "other.io/wait"}, {"name": keys.PROVISIONING_GATE}]
    cluster.add(pod)
    run(clock, autoscaler, 5)
    assert provider.create_calls == []  # a foreign gate holds it: not ours to provision
    cluster.pod_objects["default/gated"]["spec"]["schedulingGates"] = [
        {"name": keys.PROVISIONING_GATE}
    ]
    run(clock, autoscaler, 45)
    (instance,) = provider.list(autoscaler.config.cluster_id)
    assert instance.labels[keys.ASSIGNED_POD_UID] == "uid-gated"
    released = cluster.pod_objects["default/gated"]
    assert "schedulingGates" not in released["spec"]
    assert released["spec"]["nodeSelector"] == {keys.HOSTNAME: instance.node_name}
    assert cluster.schedule() == ["default/gated"]


def test_node_cost_estimate_once_per_pod_and_never_a_launch() -> None:
    clock, provider, cluster, autoscaler = setup()
    pods = [make_pod(f"e{i}", cpu="16", memory="32Gi", gpus=1) for i in range(2)]
    for pod in pods:
        pod["spec"]["schedulingGates"] = [{"name": keys.COST_ESTIMATE_GATE}]
    cluster.add(*pods)
    run(clock, autoscaler, 30)
    assert provider.create_calls == []
    messages = cluster.events_for("e0", keys.EVENT_NODE_COST_ESTIMATE)
    assert len(messages) == 1 and messages[0].startswith("Estimated cost $")
    assert len(cluster.events_for("e1", keys.EVENT_NODE_COST_ESTIMATE)) == 1


def test_node_add_request_warning_only_when_no_candidate_is_left() -> None:
    # One acceptable type; it times out: Gibbous backs it off and has nothing left to try,
    # which is when Luna reports NodeAddRequestWarning ("cannot obtain the resources to run
    # a pod", P00) and Nova tries the next cluster.
    only = ("m5.xlarge", "on-demand")
    clock, provider, cluster, autoscaler = setup(hangs={only})
    cluster.add(
        make_pod("one-type", cpu="3", annotations={keys.INSTANCE_TYPE_REGEXP: "^m5.xlarge$"})
    )
    run(clock, autoscaler, 590)
    assert launched(provider) == [only]
    assert cluster.events_for("one-type", "NodeAddRequestWarning") == []
    run(clock, autoscaler, 30)
    (moving_on,) = cluster.events_for("one-type", keys.EVENT_TRYING_NEXT_CANDIDATE)
    assert "scaleUpTimeout" in moving_on
    (gave_up,) = cluster.events_for("one-type", "NodeAddRequestWarning")
    assert gave_up.startswith("cannot obtain a node for this pod: ")
    assert launched(provider) == [only]


def test_nova_reads_the_events_by_their_exact_reasons_and_message_shapes() -> None:
    # Thrifty-Nova (P00, cost-schedule.sh): `kubectl get events --field-selector
    # involvedObject.name=<pod>,reason=NodeCostEstimate`; price = characters 17-24 of a
    # message starting `Estimated cost $`; count = 4th word of the `; `-part holding
    # "estimated node count"; a message starting `No node type found` means no capacity.
    clock, _provider, cluster, autoscaler = setup()
    gated = make_pod("gated", cpu="16", memory="32Gi", gpus=1)
    gated["spec"]["schedulingGates"] = [{"name": "nodecostestimate"}]
    hopeless = make_pod("hopeless", cpu="900", memory="1Ti")
    hopeless_gated = make_pod("hopeless-gated", cpu="900", memory="1Ti")
    hopeless_gated["spec"]["schedulingGates"] = [{"name": "nodecostestimate"}]
    cluster.add(gated, hopeless, hopeless_gated)
    run(clock, autoscaler, 30)
    reasons = {(uid, reason) for uid, reason, _, _ in cluster.events}
    assert (gated["metadata"]["uid"], "NodeCostEstimate") in reasons
    assert (hopeless["metadata"]["uid"], "NodeAddRequestWarning") in reasons
    (estimate,) = cluster.events_for("gated", "NodeCostEstimate")
    assert estimate.startswith("Estimated cost $")
    price = float(estimate[16:24])
    (count_part,) = [p for p in estimate.split("; ") if "estimated node count" in p]
    assert price > 0 and int(count_part.split(" ")[3]) == 1
    (none,) = cluster.events_for("hopeless-gated", "NodeCostEstimate")
    assert none.startswith("No node type found")


def test_node_add_request_warning_once_per_reason() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(make_pod("huge", cpu="900", memory="1Ti"))
    run(clock, autoscaler, 60)
    (warning,) = cluster.events_for("huge", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert warning.startswith("cannot obtain a node for this pod: no instance type with >= 900 CPU")
    assert provider.create_calls == []


def test_invalid_annotations_get_a_warning_not_a_crash() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(
        make_pod("bad", annotations={keys.INSTANCE_MAX_COST: "cheap"}), make_pod("good", cpu="3")
    )
    run(clock, autoscaler, 5)
    (warning,) = cluster.events_for("bad", keys.EVENT_NODE_ADD_REQUEST_WARNING)
    assert keys.INSTANCE_MAX_COST in warning
    assert len(provider.instances) == 1


def test_fatal_configuration_pauses_launches() -> None:
    clock, provider, cluster, autoscaler = setup()
    provider.next_errors.append(FatalConfigurationError("launch template lt-123 not found"))
    cluster.add(make_pod("x", cpu="3"))
    run(clock, autoscaler, 120)
    assert len(provider.create_calls) == 1 and "lt-123" in autoscaler.paused_reason
    run(clock, autoscaler, autoscaler.config.backoff_s)
    assert len(provider.instances) == 1


def test_spot_allowed_pods_get_spot_nodes_with_the_taint() -> None:
    clock, provider, cluster, autoscaler = setup()
    pod = make_pod(
        "sp",
        cpu="3",
        annotations={keys.INSTANCE_OFFERINGS: "spot"},
        tolerations=[SPOT_TOLERATION],
    )
    cluster.add(pod)
    run(clock, autoscaler, 40)
    (request,) = provider.create_calls
    assert request.category == "spot"
    assert request.taints == (
        {"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"},
    )
    assert cluster.schedule() == ["default/sp"]


def test_metrics_report_launches_and_cost() -> None:
    clock, _provider, cluster, autoscaler = setup()
    cluster.add(make_pod("m", cpu="3", memory="4Gi"))
    run(clock, autoscaler, 40)
    text = generate_latest(autoscaler.metrics.registry).decode()
    assert "gibbous_autoscaler_launches_total{" in text
    assert 'gibbous_autoscaler_launches_total{category="on-demand"' in text
    assert autoscaler.metrics.cost._value.get() > 0


def test_a_node_that_registers_without_our_labels_and_taints_is_repaired_once() -> None:
    # What happens on EKS with user data that does not carry Gibbous's labels (a stale
    # launch template, aws.userDataType None): the node must still be found by its
    # providerID, get the labels and the spot taint, and the repair must be reported.
    clock, provider, cluster, autoscaler = setup()
    cluster.bare_registration = True
    spot = {keys.INSTANCE_OFFERINGS: "spot"}
    cluster.add(make_pod("spotty", cpu="3", annotations=spot, tolerations=[SPOT_TOLERATION]))
    run(clock, autoscaler, 120)
    ((name, labels, taints),) = cluster.repairs
    launch_labels = provider.create_calls[0].labels
    assert labels == dict(launch_labels)
    assert labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
    assert taints == [{"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}]
    node = next(n for n in cluster.nodes() if n["metadata"]["name"] == name)
    assert node["metadata"]["labels"][keys.PLACEMENT] == labels[keys.PLACEMENT]
    events = [m for _, r, m, _ in cluster.events if r == keys.EVENT_NODE_REPAIRED]
    assert len(events) == 1 and keys.CREATED_BY in events[0] and "spot:NoSchedule" in events[0]
    assert cluster.schedule() == ["default/spotty"]


def test_labels_the_kubelet_may_not_set_are_added_after_registration_quietly() -> None:
    # placeNodeSelector asks for a node-role label; NodeRestriction keeps the kubelet from
    # registering with it (the fake cluster registers as a kubelet does): the autoscaler
    # puts it on, as a matter of course, with no warning event.
    role = "node-role.kubernetes.io/gpu"
    clock, provider, cluster, autoscaler = setup(config(placeNodeSelector=True))
    cluster.add(make_pod("role", cpu="3", node_selector={role: "yes"}))
    run(clock, autoscaler, 120)
    assert provider.create_calls[0].labels[role] == "yes"
    ((_, labels, taints),) = cluster.repairs
    assert labels == {role: "yes"} and taints == []
    assert not [e for e in cluster.events if e[1] == keys.EVENT_NODE_REPAIRED]
    assert cluster.schedule() == ["default/role"]


def test_nodes_with_our_labels_are_not_touched() -> None:
    clock, provider, cluster, autoscaler = setup()
    cluster.add(make_pod("plain", cpu="3"))
    run(clock, autoscaler, 120)
    assert len(provider.create_calls) == 1
    assert cluster.repairs == []


def stuck_setup(**options: object) -> tuple[Clock, FakeCluster, Autoscaler]:
    cfg = config(schedulerName="gibbous-scheduler", **options)
    clock = Clock()
    provider = FakeCloudProvider(catalog(cfg.cloud), clock)
    cluster = FakeCluster(provider, cfg)
    autoscaler = Autoscaler(
        cfg, provider, cluster, clock=clock, scheduler_lease=("gibbous", "gibbous-scheduler")
    )
    return clock, cluster, autoscaler


def orphan(name: str, clock: Clock, owner: str | None) -> dict[str, Any]:
    pod = make_pod(name)
    pod["spec"]["schedulerName"] = "gibbous-scheduler"
    created = datetime.datetime.fromtimestamp(clock.now - 120, datetime.UTC)
    pod["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    if owner:
        pod["metadata"]["ownerReferences"] = [{"kind": owner, "name": "x", "uid": "o"}]
    return pod


def renewed(clock: Clock, seconds_ago: float) -> dict[str, Any]:
    moment = datetime.datetime.fromtimestamp(clock.now - seconds_ago, datetime.UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"spec": {"renewTime": stamp, "leaseDurationSeconds": 15}}


def test_pods_waiting_on_a_stopped_scheduler_are_told_and_only_owned_ones_rerouted() -> None:
    clock, cluster, autoscaler = stuck_setup(reroutePodsOfStoppedScheduler=True)
    cluster.add(
        orphan("owned", clock, "ReplicaSet"), orphan("bare", clock, None), unschedulable=False
    )
    cluster.leases[("gibbous", "gibbous-scheduler")] = renewed(clock, 2)
    run(clock, autoscaler, 10)
    assert not [e for e in cluster.events if e[1] == keys.EVENT_SCHEDULER_STOPPED]
    cluster.leases[("gibbous", "gibbous-scheduler")] = renewed(clock, 120)  # stopped
    run(clock, autoscaler, 10)
    for name in ("owned", "bare"):
        (message,) = [
            m
            for u, r, m, _ in cluster.events
            if r == keys.EVENT_SCHEDULER_STOPPED and u == f"uid-{name}"
        ]
        assert "waiting for scheduler 'gibbous-scheduler', which is not running" in message
    assert cluster.deleted_pods == ["default/owned"]  # never a pod without a controller
    assert autoscaler.metrics.stuck_pods._value.get() == 1  # the bare one still waits


def test_without_the_option_nothing_is_deleted() -> None:
    clock, cluster, autoscaler = stuck_setup()
    cluster.add(orphan("owned", clock, "ReplicaSet"), unschedulable=False)
    run(clock, autoscaler, 10)  # no Lease at all: not running
    assert cluster.deleted_pods == []
    assert [r for _, r, _, _ in cluster.events] == [keys.EVENT_SCHEDULER_STOPPED]


def reasons(cluster: FakeCluster) -> list[str]:
    return [reason for _, reason, _, _ in cluster.events]


def test_a_provider_error_is_retried_then_abandoned_and_the_next_candidate_tried() -> None:
    # Errors of no known kind (a bug, an unexpected answer) are retried a few times with a
    # growing delay, then the launch is given up, its pair backed off, the pod told, and
    # the next candidate launched: never retried forever in silence.
    clock, provider, cluster, autoscaler = setup()
    provider.next_errors = [RuntimeError("boom")] * 5
    cluster.add(make_pod("p", cpu="3"))
    run(clock, autoscaler, 120)
    first = launched(provider)[0]
    assert launched(provider)[:5] == [first] * 5
    assert launched(provider)[5] != first  # the next candidate
    (message,) = cluster.events_for("p", keys.EVENT_LAUNCH_ABANDONED)
    assert "failed 5 times (RuntimeError: 'boom')" in message
    text = generate_latest(autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_launch_failures_total{kind="error"} 5.0' in text
    assert 'gibbous_autoscaler_launch_failures_total{kind="abandoned-after-errors"} 1.0' in text
    assert len(provider.instances) == 1


def test_a_refused_release_is_said_on_the_pod_and_retried_with_a_growing_delay() -> None:
    clock, _, cluster, autoscaler = setup()
    pod = make_pod("gated", cpu="3", memory="4Gi")
    pod["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    cluster.add(pod)
    cluster.release_errors = [RuntimeError("admission webhook denied the request")] * 3
    run(clock, autoscaler, 45)
    (message,) = cluster.events_for("gated", keys.EVENT_RELEASE_FAILED)
    assert "admission webhook denied the request" in message
    run(clock, autoscaler, 30)
    assert "schedulingGates" not in cluster.pod_objects["default/gated"]["spec"]
    text = generate_latest(autoscaler.metrics.registry).decode()
    assert 'gibbous_autoscaler_gate_releases_total{outcome="refused"} 3.0' in text
    assert 'gibbous_autoscaler_gate_releases_total{outcome="released"} 1.0' in text


def test_a_pod_pinned_to_another_host_is_released_with_a_word() -> None:
    # Narrowing a gated pod's nodeSelector is allowed: someone pins it to another host
    # while its node boots. The release keeps their choice and says so.
    clock, provider, cluster, autoscaler = setup(boot_s=20)
    pod = make_pod("pinned", cpu="3", memory="4Gi")
    pod["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    cluster.add(pod)
    run(clock, autoscaler, 5)
    assert len(provider.create_calls) == 1
    cluster.pod_objects["default/pinned"]["spec"]["nodeSelector"] = {keys.HOSTNAME: "chosen"}
    run(clock, autoscaler, 45)
    released = cluster.pod_objects["default/pinned"]["spec"]
    assert "schedulingGates" not in released
    assert released["nodeSelector"] == {keys.HOSTNAME: "chosen"}
    (message,) = cluster.events_for("pinned", keys.EVENT_RELEASED_UNPINNED)
    assert "kubernetes.io/hostname=chosen" in message
