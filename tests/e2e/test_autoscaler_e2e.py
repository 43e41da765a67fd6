"""The autoscaler against the real control plane: pending managed pods become kwok nodes of
the cheapest fitting type and the real kube-scheduler (with our extender) binds them; a
crash in the middle of a launch leaves no duplicate and no leak."""

from __future__ import annotations

import csv
import gzip
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.cloud.kwok import READY_AT, KwokCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.leader import LeaderElector
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.lifecycle.disruption import DrainReason
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.kubeapi import parse_version
from tests.autoscaler.fakes import FakeCluster
from tests.e2e.conftest import (
    eventually,
    make_namespace,
    running_extender,
    server_minor,
    suite_pod,
)
from tests.factories import catalog, config

pytestmark = pytest.mark.e2e

SCHEDULER = "gibbous-autoscaler-e2e"
AWS_CATALOG = Path(__file__).resolve().parents[2] / "gibbous" / "catalogs" / "aws.csv.gz"


def suite_config(cluster_id: str) -> Config:
    # placeNodeSelector puts the pods' suite label on their nodes, so these pods only ever
    # fit on nodes made in this module, whatever other tests left in the cluster.
    return config(clusterID=cluster_id, placeNodeSelector=True, scaleUpTimeout="2m")


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, suite_config("e2e-autoscaler")) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def start_service(
    api: client.ApiClient, cfg: Config, *, identity: str, boot_s: float
) -> AutoscalerService:
    provider = KwokCloudProvider(api, catalog(cfg.cloud), cfg, time.time, boot_s=boot_s)
    version = client.VersionApi(api).get_code()
    cluster = KubeCluster(
        api, identity=identity, server_version=parse_version(version.major, version.minor)
    )
    elector = LeaderElector(
        api,
        namespace="kube-system",
        name=f"gibbous-{cfg.cluster_id}",
        identity=identity,
        lease_duration_s=4,
        renew_deadline_s=3,
        retry_period_s=0.5,
    )
    autoscaler = Autoscaler(cfg, provider, cluster, clock=time.time)
    service = AutoscalerService(
        autoscaler,
        cluster,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time),
        period_s=0.3,
        elector=elector,
        kubelet=lambda: provider.heartbeat(cfg.cluster_id, mark_pods_running=True),
        kubelet_period_s=0.5,
    )
    service.start()
    return service


def crash(service: AutoscalerService) -> None:
    """Stop acting without releasing the Lease, as a killed process would."""
    service.stopped.set()
    assert service.elector is not None
    service.elector.stopped.set()
    service.cluster.stop()


def pod(name: str, suite: str, *, cpu: str, gpus: int = 0, spot: bool = False) -> dict[str, Any]:
    return suite_pod(name, suite, scheduler=SCHEDULER, cpu=cpu, gpus=gpus, spot=spot)


def clean_up(api: client.ApiClient, namespace: str, cluster_id: str) -> None:
    """Leave nothing for the next module: other tests' pods tolerate every taint."""
    core = client.CoreV1Api(api)
    core.delete_namespace(namespace)
    for node in nodes_of(api, cluster_id):
        core.delete_node(node.metadata.name)


def diagnosis(core: client.CoreV1Api, namespace: str, service: AutoscalerService) -> str:
    """What a failing test should show: where each pod stands and what the loop thinks."""
    pods = [
        (p.metadata.name, p.spec.node_name, [c.message for c in p.status.conditions or []])
        for p in core.list_namespaced_pod(namespace).items
    ]
    return (
        f"pods={pods} caches_ready={service.cluster.ready()} leading={service.leading} "
        f"steps={service.steps} decisions={service.autoscaler.decisions} "
        f"launches={list(service.autoscaler.launches)}"
    )


def nodes_of(api: client.ApiClient, cluster_id: str) -> list[Any]:
    selector = f"gibbous.dev/cluster-id={cluster_id}"
    return list(client.CoreV1Api(api).list_node(label_selector=selector).items)


def cheapest_in_catalog(*, min_vcpu: int, gpus: bool, spot: bool) -> str:
    """The cheapest amd64 type of the AWS catalog file in us-west-2 with at least
    `min_vcpu` vCPUs (a 3 CPU pod fits no 2-vCPU type once the kubelet's reservation and
    the DaemonSets are taken; a 1 CPU pod fits 2 vCPUs), with GPUs or without; spot at its
    listed price, else half the on-demand one (spotPriceRatioEstimate's default)."""

    def price(row: dict[str, str]) -> float:
        on_demand = float(row["on_demand_usd_per_hour"])
        return float(row["spot_usd_per_hour"] or on_demand * 0.5) if spot else on_demand

    with gzip.open(AWS_CATALOG, "rt", newline="") as lines:
        rows = [
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2"
            and r["arch"] == "amd64"
            and (int(r["gpu_count"]) >= 1) is gpus
            and float(r["vcpu"]) >= min_vcpu
        ]
    return min(rows, key=lambda r: (price(r), r["instance_type"]))["instance_type"]


def test_pending_pods_become_the_cheapest_kwok_nodes_and_are_bound(
    api: client.ApiClient, scheduler: None
) -> None:
    cfg = suite_config("e2e-autoscaler")
    namespace = "autoscale-e2e"
    make_namespace(api, namespace)
    core = client.CoreV1Api(api)
    service = start_service(api, cfg, identity="autoscaler-a", boot_s=2)
    try:
        manifests = [
            *(pod(f"small-{i}", "main", cpu="300m") for i in range(3)),
            pod("big", "main", cpu="3"),
            pod("gpu", "main", cpu="1", gpus=1),
            pod("spot", "main", cpu="3", spot=True),
        ]
        for manifest in manifests:
            core.create_namespaced_pod(namespace, manifest)

        def all_bound() -> dict[str, str] | None:
            pods = core.list_namespaced_pod(namespace).items
            bound = {p.metadata.name: p.spec.node_name for p in pods if p.spec.node_name}
            return bound if len(bound) == len(manifests) else None

        try:
            bound = eventually(all_bound, timeout_s=90, what="every pod bound to a kwok node")
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core, namespace, service)}") from None
        nodes = {n.metadata.name: n for n in nodes_of(api, cfg.cluster_id)}
        assert set(bound.values()) <= set(nodes)
        labels = {name: n.metadata.labels for name, n in nodes.items()}
        # The three small pods share one bin-pack node; the others have their own.
        assert len({bound[f"small-{i}"] for i in range(3)}) == 1
        assert labels[bound["small-0"]][keys.PLACEMENT] == "bin-pack"
        big = core.read_namespaced_pod("big", namespace)
        assert labels[bound["big"]][keys.ASSIGNED_POD_UID] == big.metadata.uid
        assert int(labels[bound["gpu"]][keys.GPU_COUNT]) >= 1
        spot_node = nodes[bound["spot"]]
        assert labels[bound["spot"]][keys.CAPACITY_TYPE] == "spot"
        assert any(t.key == keys.SPOT_TAINT_KEY for t in spot_node.spec.taints or [])
        # Each bin-select pod got the cheapest type that fits it, found in the catalog file.
        expected = {
            "big": cheapest_in_catalog(min_vcpu=4, gpus=False, spot=False),
            "gpu": cheapest_in_catalog(min_vcpu=2, gpus=True, spot=False),
            "spot": cheapest_in_catalog(min_vcpu=4, gpus=False, spot=True),
        }
        for name, instance_type in expected.items():
            assert labels[bound[name]][keys.INSTANCE_TYPE] == instance_type, name
        assert len(nodes) == 4  # nothing more than needed
        eventually(
            lambda: all(
                p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items
            ),
            what="kwok marks the pods Running",
        )
        assert service.autoscaler.metrics.cost._value.get() > 0
    finally:
        service.stop()
        clean_up(api, namespace, cfg.cluster_id)


def test_a_crash_in_the_middle_of_a_launch_leaves_no_duplicate_and_no_leak(
    api: client.ApiClient, scheduler: None
) -> None:
    cfg = suite_config("e2e-restart")
    namespace = "autoscale-restart"
    make_namespace(api, namespace)
    core = client.CoreV1Api(api)
    first = start_service(api, cfg, identity="autoscaler-first", boot_s=8)
    try:
        core.create_namespaced_pod(namespace, pod("solo", "restart", cpu="3"))
        eventually(lambda: nodes_of(api, cfg.cluster_id), timeout_s=60, what="a launch")
        (launched,) = nodes_of(api, cfg.cluster_id)
        assert not any(
            c.type == "Ready" and c.status == "True" for c in launched.status.conditions or []
        )
    finally:
        crash(first)
    second = start_service(api, cfg, identity="autoscaler-second", boot_s=8)
    try:
        eventually(
            lambda: core.read_namespaced_pod("solo", namespace).spec.node_name,
            timeout_s=90,
            what="the pod bound after the restart",
        )
        assert second.elector is not None and second.elector.leading.is_set()
        (node,) = nodes_of(api, cfg.cluster_id)
        assert node.metadata.name == launched.metadata.name
        assert core.read_namespaced_pod("solo", namespace).spec.node_name == node.metadata.name
        # Several more steps of the loop (counted, not slept for): still one node.
        steps = second.steps
        eventually(lambda: second.steps >= steps + 5, timeout_s=30, what="five more steps")
        assert len(nodes_of(api, cfg.cluster_id)) == 1
    finally:
        second.stop()
        clean_up(api, namespace, cfg.cluster_id)


def test_one_leader_at_a_time_and_takeover_after_the_lease_expires(api: client.ApiClient) -> None:
    def elector(identity: str) -> LeaderElector:
        return LeaderElector(
            api,
            namespace="kube-system",
            name="gibbous-election-e2e",
            identity=identity,
            lease_duration_s=2,
            retry_period_s=0.2,
        )

    first, second = elector("one"), elector("two")
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()  # a live lease held by someone else
    assert first.try_acquire_or_renew()  # the holder renews
    # `one` stops renewing; `two` takes over once it has seen the record unchanged for 2s.
    deadline = time.monotonic() + 10
    while not second.try_acquire_or_renew():
        assert time.monotonic() < deadline, "the expired lease was never taken over"
        time.sleep(0.2)
    lease = client.CoordinationV1Api(api).read_namespaced_lease(
        "gibbous-election-e2e", "kube-system"
    )
    assert lease.spec.holder_identity == "two" and lease.spec.lease_transitions == 1
    assert not first.try_acquire_or_renew()


def test_lifecycle_drains_empty_nodes_keeps_do_not_evict_and_never_forces_a_pdb(
    api: client.ApiClient, scheduler: None
) -> None:
    cfg = config(
        clusterID="e2e-lifecycle",
        placeNodeSelector=True,
        **{"scaleDown.unneededTime": "2s", "scaleDown.delayAfterAdd": "0s", "nodeTTL": "30s"},
    )
    namespace = "lifecycle-e2e"
    make_namespace(api, namespace)
    core = client.CoreV1Api(api)
    service = start_service(api, cfg, identity="lifecycle", boot_s=1)
    try:
        keep = pod("keep", "lifecycle", cpu="3")
        keep["metadata"]["annotations"][keys.DO_NOT_EVICT] = "true"
        guarded = pod("guarded", "lifecycle", cpu="3")
        guarded["metadata"]["labels"]["app"] = "guarded"
        done = pod("done", "lifecycle", cpu="3")
        # Deleted as a user deletes it: the kwok kubelet stand-in finishes the deletion once
        # the grace period is served.
        done["spec"]["terminationGracePeriodSeconds"] = 1
        for manifest in (done, keep, guarded):
            core.create_namespaced_pod(namespace, manifest)
        # policy/v1 from 1.21; the typed client has no v1beta1 class, the dynamic one serves both.
        group = "policy/v1" if server_minor(api) >= 21 else "policy/v1beta1"
        budgets = DynamicClient(api).resources.get(api_version=group, kind="PodDisruptionBudget")
        budgets.create(
            namespace=namespace,
            body={
                "apiVersion": group,
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "guarded"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
            },
        )

        def bound(name: str) -> str:
            node_name: str = eventually(
                lambda: core.read_namespaced_pod(name, namespace).spec.node_name,
                timeout_s=90,
                what=f"{name} bound",
            )
            return node_name

        nodes = {name: bound(name) for name in ("done", "keep", "guarded")}
        assert len(set(nodes.values())) == 3
        eventually(
            lambda: all(
                p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items
            ),
            what="pods Running",
        )
        # The empty node is drained and removed once its pod is gone.
        core.delete_namespaced_pod("done", namespace)
        eventually(
            lambda: nodes["done"] not in {n.metadata.name for n in nodes_of(api, cfg.cluster_id)},
            timeout_s=60,
            what="the empty node removed",
        )
        # After nodeTTL the other two are due, but one holds a do-not-evict pod and the
        # other a pod whose PodDisruptionBudget allows no disruption: both stay, cordoned at
        # most, and the guarded pod is never force-deleted. Waited for: the TTL drain of the
        # guarded node (cordoned) and the review keeping the other for its pod.
        lifecycle = service.lifecycle
        assert lifecycle is not None

        def ttl_reached() -> bool:
            node = core.read_node(nodes["guarded"])
            kept = lifecycle.kept.get(nodes["keep"], "")
            return (
                nodes["guarded"] in lifecycle.draining
                and bool(node.spec.unschedulable)
                and ("must not be evicted" in kept)
            )

        eventually(ttl_reached, timeout_s=90, what="the TTL drain of the guarded node")
        drain = lifecycle.draining[nodes["guarded"]]
        created = core.read_node(nodes["guarded"]).metadata.creation_timestamp.timestamp()
        assert drain.drain.reason is DrainReason.TTL and drain.started_at - created >= 29
        # Drain steps after it began (counted): the guarded pod is still not forced.
        steps = service.steps
        eventually(lambda: service.steps >= steps + 5, timeout_s=30, what="five more steps")
        remaining = {n.metadata.name: n for n in nodes_of(api, cfg.cluster_id)}
        assert nodes["keep"] in remaining and nodes["guarded"] in remaining
        assert core.read_namespaced_pod("guarded", namespace).metadata.deletion_timestamp is None
        assert core.read_namespaced_pod("keep", namespace).spec.node_name == nodes["keep"]
        assert nodes["guarded"] in lifecycle.draining
    finally:
        service.stop()
        clean_up(api, namespace, cfg.cluster_id)


class Synced:
    """Caches that are always ready (the handover test runs no loop)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ready(self) -> bool:
        return True


def test_the_next_leader_takes_over_the_back_offs(api: client.ApiClient) -> None:
    cfg = config(clusterID="e2e-handover")

    def service(identity: str) -> AutoscalerService:
        elector = LeaderElector(
            api, namespace="kube-system", name="gibbous-handover-e2e", identity=identity
        )
        provider = FakeCloudProvider(catalog(cfg.cloud), time.time)
        autoscaler = Autoscaler(cfg, provider, FakeCluster(provider, cfg), clock=time.time)
        made = AutoscalerService(autoscaler, Synced(), elector=elector)
        elector.annotations = made._handover  # what start() wires
        return made

    first, second = service("first"), service("second")
    first.autoscaler.backoffs = first.autoscaler.backoffs.add(
        instance_type="g4dn.xlarge",
        category="spot",
        zone="",
        kind=FailureKind.LAUNCH_TIMEOUT,
        now=time.time(),
        duration_s=600,
    )
    assert first.elector is not None and second.elector is not None
    assert first.elector.try_acquire_or_renew()
    lease = client.CoordinationV1Api(api).read_namespaced_lease(
        "gibbous-handover-e2e", "kube-system"
    )
    assert "g4dn.xlarge" in lease.metadata.annotations[keys.BACKOFFS]
    first.elector.leading.set()
    first.elector.release()  # a clean shutdown keeps the annotation for the successor
    assert second.elector.try_acquire_or_renew()
    second._inherit()
    assert second.autoscaler.backoffs.blocked_pairs(time.time()) == {("g4dn.xlarge", "spot")}


def catalog_row(instance_type: str) -> dict[str, str]:
    with gzip.open(AWS_CATALOG, "rt", newline="") as lines:
        return next(
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2" and r["instance_type"] == instance_type
        )


def test_a_large_node_left_with_two_small_pods_is_replaced_by_a_small_one(
    api: client.ApiClient, scheduler: None
) -> None:
    """A ReplicaSet of 11 pods of 700m fills one 8-vCPU bin-pack node (cheaper than three
    4-vCPU ones); scaled in to 2 (1.4 of 8 CPU: under Luna's 20 %), its node is replaced:
    the cheapest bin-pack shape of the catalog file (4 vCPU, 16 GiB, no GPU, amd64) is
    launched first, the large node drained once it is Ready, and the pods' copies run there."""
    cfg = config(
        clusterID="e2e-consolidation",
        placeNodeSelector=True,
        scaleUpTimeout="2m",
        **{
            "scaleDown.unneededTime": "2s",
            "scaleDown.delayAfterAdd": "0s",
            "consolidation.validationDelay": "3s",
        },
    )
    namespace = "consolidation-e2e"
    make_namespace(api, namespace)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    service = start_service(api, cfg, identity="consolidation", boot_s=1)
    template = pod("web", "consolidation", cpu="700m")
    template = {
        "metadata": {"labels": {**template["metadata"]["labels"], "app": "web"}},
        "spec": template["spec"],
    }
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {"replicas": 11, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    with gzip.open(AWS_CATALOG, "rt", newline="") as lines:
        shapes = [
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2"
            and r["arch"] == "amd64"
            and int(r["gpu_count"]) == 0
            and float(r["vcpu"]) >= 4
            and float(r["memory_gib"]) >= 16
        ]
    small = min(shapes, key=lambda r: (float(r["on_demand_usd_per_hour"]), r["instance_type"]))
    try:
        apps.create_namespaced_replica_set(namespace, replica_set)

        def placed() -> dict[str, str] | None:
            pods = core.list_namespaced_pod(namespace).items
            bound = {p.metadata.name: p.spec.node_name for p in pods if p.spec.node_name}
            return bound if len(bound) == len(pods) == 11 else None

        try:
            bound = eventually(placed, timeout_s=60, what="11 pods bound")
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core, namespace, service)}") from None
        (large,) = set(bound.values())
        large_type = core.read_node(large).metadata.labels[keys.INSTANCE_TYPE]
        assert float(catalog_row(large_type)["vcpu"]) >= 8
        apps.patch_namespaced_replica_set("web", namespace, {"spec": {"replicas": 2}})

        def replaced() -> str | None:
            nodes = nodes_of(api, cfg.cluster_id)
            if len(nodes) != 1 or nodes[0].metadata.name == large:
                return None
            pods = core.list_namespaced_pod(namespace).items
            name = str(nodes[0].metadata.name)
            running = [p for p in pods if p.spec.node_name == name and p.status.phase == "Running"]
            return name if len(running) == len(pods) == 2 else None

        try:
            new = eventually(replaced, timeout_s=60, what="the large node replaced")
        except AssertionError as error:
            why = service.lifecycle.consolidation.why if service.lifecycle else ""
            raise AssertionError(f"{error}; {why}; {diagnosis(core, namespace, service)}") from None
        node = core.read_node(new)
        assert node.metadata.labels[keys.INSTANCE_TYPE] == small["instance_type"]
        assert node.metadata.labels[keys.CAPACITY_TYPE] == "on-demand"
        assert float(small["on_demand_usd_per_hour"]) < float(
            catalog_row(large_type)["on_demand_usd_per_hour"]
        )
        # The replacement was Ready before the drain began: the time the kwok node turns
        # Ready (its annotation; the kubelet stand-in rewrites the condition's transition
        # time at each heartbeat) is no later than the drain's event on the old node (event
        # times are whole seconds).
        events = core.list_namespaced_event("default").items
        about_large = {e.reason: e for e in events if e.involved_object.name == large}
        assert keys.EVENT_CONSOLIDATION_REPLACING in about_large
        draining = about_large[keys.EVENT_CONSOLIDATION_DRAINING]
        ready_at = float(node.metadata.annotations[READY_AT])
        assert math.floor(ready_at) <= draining.first_timestamp.timestamp()
    finally:
        service.stop()
        clean_up(api, namespace, cfg.cluster_id)
