"""The real kube-scheduler calls the Gibbous extender (nodeCacheCapable) for managed pods."""

from __future__ import annotations

import datetime
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from gibbous.certs.authority import generate_ca, generate_client, write_private
from gibbous.core import keys
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.installtools import helm_tools
from tests.e2e.conftest import (
    eventually,
    log_path,
    make_namespace,
    repo_root,
    running_extender,
    server_minor,
)
from tests.factories import config as make_config

pytestmark = pytest.mark.e2e
# The shipped v1 scheduler configuration on the current release, the v1beta1 overlay on 1.20.
RELEASES = ("current", "1.20")
SCHEDULER = "gibbous-scheduler"


def node(
    name: str,
    labels: dict[str, str],
    taints: list[dict[str, str]] | None = None,
    cpu: str = "8",
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": "32Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {keys.HOSTNAME: name, keys.ARCH: "amd64", **labels}},
        "spec": {"taints": taints or []},
        "status": {"capacity": allocatable, "allocatable": allocatable},
    }


def register_node(api: client.ApiClient, body: dict[str, Any]) -> None:
    core = client.CoreV1Api(api)
    core.create_node(body)
    # No kubelet here: report Ready ourselves, and keep only our own taints
    # (admission may add node.kubernetes.io/not-ready on create).
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        **body["status"],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
    }
    core.patch_node_status(body["metadata"]["name"], {"status": status})
    core.patch_node(body["metadata"]["name"], {"spec": {"taints": body["spec"]["taints"] or None}})


def gibbous_labels(placement: str, **extra: str) -> dict[str, str]:
    return {
        keys.CREATED_BY: keys.CREATED_BY_VALUE,
        keys.PLACEMENT: placement,
        keys.CAPACITY_TYPE: "on-demand",
        keys.INSTANCE_TYPE: "m5.2xlarge",
        keys.PRICE_PER_HOUR: "0.3840",
        **extra,
    }


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[str]:
    # Mutual TLS, as the chart runs it: the scheduler presents the plane's client pair.
    with running_extender(api, make_config(), tls=control_plane.extender_tls) as url:
        # The scheduler configuration the manifests ship, in the form this server version takes.
        overlay = "base" if server_minor(api) >= 23 else "overlays/scheduler-v1beta1"
        rendered = subprocess.run(
            [str(helm_tools().kubectl), "kustomize", str(repo_root() / "manifests" / overlay)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (config_map,) = [
            d
            for d in yaml.safe_load_all(rendered)
            if d and d["metadata"]["name"] == "gibbous-scheduler-config"
        ]
        shipped = yaml.safe_load(config_map["data"]["scheduler-config.yaml"])
        control_plane.start_scheduler(
            scheduler_name=SCHEDULER, extender_url=url, configuration=shipped
        )
        yield url


def pod(name: str, cpu: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"elotl-luna": "true", **labels}},
        "spec": {
            "schedulerName": SCHEDULER,
            # Tolerating every taint takes the in-tree TaintToleration filter out of
            # the picture: only the extender keeps pods off hot nodes here.
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "c",
                    "image": "registry.k8s.io/pause:3.9",
                    "resources": {"requests": {"cpu": cpu}},
                }
            ],
        },
    }


def bound_node(api: client.ApiClient, namespace: str, name: str) -> str:
    core = client.CoreV1Api(api)
    node_name: str = eventually(
        lambda: core.read_namespaced_pod(name, namespace).spec.node_name, what=f"{name} bound"
    )
    return node_name


def test_hot_nodes_and_placement_classes_are_respected(
    api: client.ApiClient, scheduler: str
) -> None:
    register_node(
        api,
        node(
            "gib-hot",
            gibbous_labels("bin-pack"),
            [{"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"}],
        ),
    )
    register_node(api, node("gib-pack", gibbous_labels("bin-pack")))
    register_node(
        api,
        node(
            "gib-other-select",
            gibbous_labels("bin-select", **{keys.ASSIGNED_POD_UID: "someone-else"}),
        ),
    )
    make_namespace(api, "sched-a")
    core = client.CoreV1Api(api)
    for index in range(4):
        core.create_namespaced_pod("sched-a", pod(f"small-{index}", "100m"))
    placed = {bound_node(api, "sched-a", f"small-{index}") for index in range(4)}
    assert placed == {"gib-pack"}  # never the hot node, never a bin-select node

    big = core.create_namespaced_pod("sched-a", pod("big", "4"))
    register_node(
        api,
        node(
            "gib-select-big",
            gibbous_labels("bin-select", **{keys.ASSIGNED_POD_UID: big.metadata.uid}),
        ),
    )
    assert bound_node(api, "sched-a", "big") in ("gib-select-big", "gib-other-select")
    events = core.list_namespaced_event("sched-a").items
    assert not any(
        e.reason == "FailedScheduling" and "gib-pack" in (e.message or "") for e in events
    )


def test_unschedulable_message_carries_gibbous_reasons(
    api: client.ApiClient, scheduler: None
) -> None:
    make_namespace(api, "sched-b")
    core = client.CoreV1Api(api)
    spot_only = pod("spot-only", "100m")
    spot_only["metadata"]["annotations"] = {keys.INSTANCE_OFFERINGS: "spot"}
    core.create_namespaced_pod("sched-b", spot_only)

    def condition() -> str | None:
        current = core.read_namespaced_pod("spot-only", "sched-b")
        for c in current.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.message:
                return str(c.message)
        return None

    message: str = eventually(condition, what="PodScheduled=False")
    assert message.startswith("0/")
    assert "gibbous: node is on-demand, pod allows spot" in message


def test_only_callers_with_a_client_certificate_are_answered(
    scheduler: str, control_plane: ControlPlane
) -> None:
    tls = control_plane.extender_tls
    body = b'{"Pod": {}, "NodeNames": []}'
    # Plain HTTP to the TLS port: no HTTP answer at all.
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(scheduler.replace("https://", "http://") + "/filter", body, 5)
    # TLS that trusts the extender but presents no certificate: the handshake is refused.
    anonymous = ssl.create_default_context(cafile=str(tls.client_ca))
    with pytest.raises(OSError):
        urllib.request.urlopen(scheduler + "/filter", body, 5, context=anonymous)
    # A certificate of another CA is refused too.
    stranger_ca = generate_ca(
        common_name="stranger", days=1, now=datetime.datetime.now(datetime.UTC)
    )
    stranger = generate_client(
        stranger_ca,
        common_name="gibbous-scheduler",
        days=1,
        now=datetime.datetime.now(datetime.UTC),
    )
    directory = tls.cert.parent
    write_private(directory / "stranger.key", stranger.key_pem)
    (directory / "stranger.crt").write_bytes(stranger.cert_pem)
    impostor = ssl.create_default_context(cafile=str(tls.client_ca))
    impostor.load_cert_chain(str(directory / "stranger.crt"), str(directory / "stranger.key"))
    with pytest.raises(OSError):
        urllib.request.urlopen(scheduler + "/filter", body, 5, context=impostor)
    # The scheduler's pair is answered.
    with urllib.request.urlopen(
        scheduler + "/readyz", timeout=5, context=tls.client_context()
    ) as reply:
        assert reply.status == 200


def flood(url: str, ca: str, body: bytes, stop: threading.Event, tally: dict[str, int]) -> None:
    """One hostile caller: TLS that trusts the extender but has no client certificate,
    posting a large node list again and again until `stop`. Counts refusals (the
    handshake or the request fails) and HTTP answers (which must not come)."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=ca)
    request = (
        f"POST /filter HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    while not stop.is_set():
        try:
            with (
                socket.create_connection((host, int(port)), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(request)
                answer = tls.recv(64)
        except OSError:
            tally["refused"] += 1  # counting from several threads: += under the GIL is enough
            continue
        tally["answered" if answer.startswith(b"HTTP/") else "refused"] += 1


def test_a_flood_of_unauthenticated_callers_does_not_change_a_placement(
    api: client.ApiClient, scheduler: str, control_plane: ControlPlane
) -> None:
    """Issue #32: four callers posting 19k-node lists made kube-scheduler skip the
    extender ("context deadline exceeded") and place a bin-pack pod on a bin-select node.
    With mutual TLS such callers are refused at the handshake."""
    # Luna: a pod under the bin-select thresholds (2 CPUs) is bin-packed, onto bin-pack
    # nodes; a bin-select node is the one pod's it was brought up for. The bin-select node
    # is the emptier and larger: kube-scheduler's own scoring (least allocated) would
    # prefer it if the extender were skipped.
    register_node(api, node("flood-pack", gibbous_labels("bin-pack")))
    register_node(
        api,
        node(
            "flood-select",
            gibbous_labels("bin-select", **{keys.ASSIGNED_POD_UID: "someone-else"}),
            cpu="64",
        ),
    )
    make_namespace(api, "sched-flood")
    scheduler_log = log_path(control_plane, f"kube-scheduler-{SCHEDULER}")
    seen = scheduler_log.stat().st_size
    names = [f"ip-10-0-{i // 250}-{i % 250}.ec2.internal" for i in range(19_000)]
    body = json.dumps({"Pod": {"metadata": {"name": "p"}}, "NodeNames": names}).encode()
    tally = {"refused": 0, "answered": 0}
    stop = threading.Event()
    ca = str(control_plane.extender_tls.client_ca)
    callers = [
        threading.Thread(target=flood, args=(scheduler, ca, body, stop, tally), daemon=True)
        for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    try:
        eventually(lambda: tally["refused"] >= 100, timeout_s=30, what="the flood under way")
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("sched-flood", pod("packed", "500m"))
        placed = bound_node(api, "sched-flood", "packed")
        eventually(lambda: tally["refused"] >= 300, timeout_s=60, what="300 refused callers")
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=10)
    assert tally["answered"] == 0
    labels = client.CoreV1Api(api).read_node(placed).metadata.labels
    assert labels[keys.PLACEMENT] == "bin-pack"
    with scheduler_log.open("rb") as log:
        log.seek(seen)
        assert b"Skipping extender" not in log.read()
