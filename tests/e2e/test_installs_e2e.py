"""Issue #28 on a real control plane: two autoscalers, each its own install (`installName`)
with its own `labels`, on one cluster and one clusterID. Each creates nodes for its pods;
install B, with a short nodeTTL and scale-down timings, cycles its own node and leaves A's
node and A's pod alone (before owner labels it drained A's node within minutes: none of
A's pods counts as managed for B)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from tests.e2e.conftest import (
    SUITE_LABEL,
    eventually,
    make_namespace,
    running_extender,
    start_autoscaler,
)
from tests.factories import api_pod, catalog, config

pytestmark = pytest.mark.e2e

SCHEDULER = "gibbous-installs-e2e"
CLUSTER_ID = "e2e-installs"
NAMESPACE = "installs-e2e"


def install(team: str, **options: object) -> Config:
    return config(
        clusterID=CLUSTER_ID,
        installName=f"team-{team}",
        labels=f"team={team}",
        placeNodeSelector=True,
        **options,
    )


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, install("a")) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def team_pod(name: str, team: str) -> dict[str, Any]:
    body = api_pod(
        name,
        cpu="300m",
        memory="256Mi",
        managed=False,
        labels={"team": team},
        # Put on its node by placeNodeSelector: each team's pods fit only its own nodes.
        node_selector={SUITE_LABEL: "installs", "team": team},
    )
    body["spec"]["schedulerName"] = SCHEDULER
    body["spec"]["terminationGracePeriodSeconds"] = 1
    return body


def start(api: client.ApiClient, cfg: Config, identity: str) -> AutoscalerService:
    provider = KwokCloudProvider(api, catalog(cfg.cloud), cfg, time.time, boot_s=2)
    return start_autoscaler(
        api,
        provider,
        cfg,
        identity,
        kubelet=lambda: provider.heartbeat(CLUSTER_ID, mark_pods_running=True),
    )


def node_of(core: client.CoreV1Api, name: str) -> str | None:
    try:
        pod = core.read_namespaced_pod(name, NAMESPACE)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return str(pod.spec.node_name) if pod.spec.node_name else None


def test_each_install_cycles_its_own_nodes_and_leaves_the_others_alone(
    api: client.ApiClient, scheduler: None
) -> None:
    make_namespace(api, NAMESPACE)
    core = client.CoreV1Api(api)
    a = start(api, install("a"), "install-a")
    b = start(
        api,
        install(
            "b",
            nodeTTL="20s",
            **{"scaleDown.unneededTime": "5s", "scaleDown.delayAfterAdd": "5s"},
        ),
        "install-b",
    )
    try:
        core.create_namespaced_pod(NAMESPACE, team_pod("a-1", "a"))
        core.create_namespaced_pod(NAMESPACE, team_pod("b-1", "b"))
        a_node = eventually(lambda: node_of(core, "a-1"), timeout_s=90, what="a-1 bound")
        b_node = eventually(lambda: node_of(core, "b-1"), timeout_s=90, what="b-1 bound")
        assert a_node != b_node
        labels = core.read_node(a_node).metadata.labels
        assert labels[keys.OWNER] == f"{CLUSTER_ID}.team-a"
        assert labels[keys.CREATED_BY] == "gibbous"
        assert core.read_node(b_node).metadata.labels[keys.OWNER] == f"{CLUSTER_ID}.team-b"

        def b_node_gone() -> bool:
            names = {n.metadata.name for n in core.list_node().items}
            return b_node not in names

        # B cycles its own node (nodeTTL 20s): it is acting, and acting on its own only.
        eventually(b_node_gone, timeout_s=120, what="install B cycles its own node")
        # Several more of B's reviews (counted) once A's node is older than B's nodeTTL.
        created = core.read_node(a_node).metadata.creation_timestamp.timestamp()
        eventually(lambda: time.time() - created > 21, timeout_s=60, what="A's node older than 20s")
        steps = b.steps
        eventually(lambda: b.steps >= steps + 10, timeout_s=60, what="ten more of B's steps")
        assert node_of(core, "a-1") == a_node
        assert a_node in {n.metadata.name for n in core.list_node().items}
    finally:
        a.stop()
        b.stop()
        core.delete_namespace(NAMESPACE)
        for node in core.list_node(label_selector=f"gibbous.dev/cluster-id={CLUSTER_ID}").items:
            core.delete_node(node.metadata.name)
