"""`gibbous explain` and `gibbous status` against the real control plane, with the
autoscaler (kwok provider) publishing its status object: a pod no type can hold, a pod
waiting on a back-off and a pod bound to a new node are each explained as they are, and
the status shows a launch while it is in flight and the guardrail use after it."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.process import AutoscalerService
from gibbous.autoscaler.statuswriter import StatusWriter
from gibbous.cli import kubectl_main, main
from gibbous.core import keys
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.kubeapi import parse_version
from tests.e2e.conftest import eventually, make_namespace, running_extender, suite_pod
from tests.factories import catalog, config

pytestmark = pytest.mark.e2e

SCHEDULER = "gibbous-explain-e2e"
CLUSTER_ID = "e2e-explain"
NAMESPACE = "explain-e2e"
STATUS = ("kube-system", "gibbous-e2e-explain-status")
SETTINGS = {"clusterID": CLUSTER_ID, "placeNodeSelector": "true", "maxNodes": "10"}


def suite_config() -> Config:
    return config(clusterID=CLUSTER_ID, placeNodeSelector=True, maxNodes=10)


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, suite_config()) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


@pytest.fixture(scope="module")
def service(api: client.ApiClient, scheduler: None) -> Iterator[AutoscalerService]:
    cfg = suite_config()
    make_namespace(api, NAMESPACE)
    provider = KwokCloudProvider(api, catalog(cfg.cloud), cfg, time.time, boot_s=8)
    version = client.VersionApi(api).get_code()
    cluster = KubeCluster(
        api, identity="explain-e2e", server_version=parse_version(version.major, version.minor)
    )
    autoscaler = Autoscaler(cfg, provider, cluster, clock=time.time)
    running = AutoscalerService(
        autoscaler,
        cluster,
        lifecycle=NodeLifecycle(autoscaler, cluster, clock=time.time),
        period_s=0.3,
        kubelet=lambda: provider.heartbeat(CLUSTER_ID, mark_pods_running=True),
        kubelet_period_s=0.5,
        status=StatusWriter(cluster, cfg, *STATUS, clock=time.time, interval_s=0.5),
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()
        core = client.CoreV1Api(api)
        core.delete_namespace(NAMESPACE)
        selector = f"gibbous.dev/cluster-id={CLUSTER_ID}"
        for node in core.list_node(label_selector=selector).items:
            core.delete_node(node.metadata.name)


def command(
    control_plane: ControlPlane, *words: str, entry: Any = main
) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    flags = ["--kubeconfig", str(control_plane.kubeconfig)]
    flags += ["--status-configmap", "/".join(STATUS), "--output", "json"]
    if words[0] == "explain":
        flags += [f"--set={key}={value}" for key, value in SETTINGS.items()]
    code = entry([*words, *flags], stdout=out)
    return code, json.loads(out.getvalue())


def explain(control_plane: ControlPlane, name: str, entry: Any = main) -> dict[str, Any]:
    code, out = command(control_plane, "explain", name, "-n", NAMESPACE, entry=entry)
    assert code == 0
    return out


def create(api: client.ApiClient, body: dict[str, Any]) -> None:
    client.CoreV1Api(api).create_namespaced_pod(NAMESPACE, body)


def test_a_launch_in_flight_then_the_pod_bound_to_its_node(
    api: client.ApiClient, control_plane: ControlPlane, service: AutoscalerService
) -> None:
    create(api, suite_pod("bound", "explain", scheduler=SCHEDULER, cpu="300m"))

    def flying() -> dict[str, Any] | None:
        code, out = command(control_plane, "status")
        launches = (out["status"] or {}).get("launches") or []
        return out if code == 0 and launches else None

    status = eventually(flying, timeout_s=60, what="a launch in flight in gibbous status")
    (launch,) = status["status"]["launches"]
    assert launch["pods"] == [f"{NAMESPACE}/bound"]
    during = explain(control_plane, "bound")
    assert during["summary"].startswith(f"waiting for a new {launch['instanceType']}")

    core = client.CoreV1Api(api)
    node = eventually(
        lambda: core.read_namespaced_pod("bound", NAMESPACE).spec.node_name,
        timeout_s=90,
        what="the pod bound",
    )
    after = explain(control_plane, "bound", entry=kubectl_main)
    assert after["summary"] == f"bound to node {node}"
    assert after["lastDecision"]["outcome"] == "launch"
    assert launch["instanceType"] in after["lastDecision"]["detail"]

    def settled() -> dict[str, Any] | None:
        out = command(control_plane, "status")[1]["status"]
        return out if not out["launches"] and out["guardrails"]["nodes"]["used"] == 1 else None

    final = eventually(settled, timeout_s=30, what="the launch done in gibbous status")
    assert final["guardrails"]["nodes"] == {"used": 1, "limit": 10}
    assert final["guardrails"]["costPerHour"]["used"] == pytest.approx(launch["pricePerHour"])
    assert final["cost"]["byCapacityType"]["on-demand"]["nodes"] == 1


def test_a_pod_no_type_can_hold(
    api: client.ApiClient, control_plane: ControlPlane, service: AutoscalerService
) -> None:
    body = suite_pod("nowhere", "explain", scheduler=SCHEDULER, cpu="300m")
    body["spec"]["nodeSelector"][keys.INSTANCE_TYPE] = "no-such-type"
    create(api, body)

    def decided() -> dict[str, Any] | None:
        out = explain(control_plane, "nowhere")
        return out if out["lastDecision"] else None

    out = eventually(decided, timeout_s=60, what="a decision for the pod")
    assert out["managed"]["managed"] is True
    assert out["class"]["placement"] == "bin-pack"  # 300m: below every bin-select threshold
    assert out["existingNodes"]["fit"] == 0
    assert out["instanceTypes"]["fitting"] == 0
    affinity = "the pod's node selector and affinity (architecture, zone, labels)"
    ruled_out = out["instanceTypes"]["ruledOut"]
    # spot offers fall to the default on-demand offerings first, every on-demand one to the
    # selector
    assert set(ruled_out) == {"offerings on-demand", affinity}
    assert sum(ruled_out.values()) == out["instanceTypes"]["catalogOffers"]
    assert out["instanceTypes"]["decisiveRule"] == affinity
    # The summary is the planner's reason, naming the requirement no type meets; the
    # autoscaler's event says the same.
    unmet = f"no type meets {keys.INSTANCE_TYPE} In no-such-type"
    assert out["summary"] == out["instanceTypes"]["reason"]
    assert out["summary"].startswith(f"no instance type meets the bin-pack node spec: {unmet}")
    assert out["lastDecision"]["outcome"] == "unsatisfiable"
    reasons = [e["reason"] for e in out["events"]]
    assert keys.EVENT_NODE_ADD_REQUEST_WARNING in reasons
    assert any(unmet in e["message"] for e in out["events"])


def test_a_pod_waiting_on_a_back_off(
    api: client.ApiClient, control_plane: ControlPlane, service: AutoscalerService
) -> None:
    autoscaler = service.autoscaler
    autoscaler.backoffs = autoscaler.backoffs.add(
        instance_type="m5.xlarge",
        category="on-demand",
        zone="",
        kind=FailureKind.INSUFFICIENT_CAPACITY,
        now=time.time(),
        duration_s=600,
    )
    body = suite_pod("backed-off", "explain", scheduler=SCHEDULER, cpu="300m")
    body["metadata"].setdefault("annotations", {})[keys.INSTANCE_TYPE_REGEXP] = "^m5\\.xlarge$"
    create(api, body)

    def decided() -> dict[str, Any] | None:
        out = explain(control_plane, "backed-off")
        return out if out["lastDecision"] else None

    out = eventually(decided, timeout_s=60, what="a decision for the pod")
    (candidate,) = out["instanceTypes"]["cheapest"]
    assert candidate["instanceType"] == "m5.xlarge"
    assert candidate["blockedBy"].startswith("backed off (insufficient-capacity) for ")
    assert out["summary"].startswith("every fitting type is blocked: backed off")
    assert out["lastDecision"]["outcome"] == "unsatisfiable"
    assert "backed off" in out["lastDecision"]["detail"]
    text = io.StringIO()
    assert (
        main(
            [
                "status",
                "--kubeconfig",
                str(control_plane.kubeconfig),
                "--status-configmap",
                "/".join(STATUS),
            ],
            stdout=text,
        )
        == 0
    )
    assert "m5.xlarge on-demand zone=all insufficient-capacity, ends in" in text.getvalue()
