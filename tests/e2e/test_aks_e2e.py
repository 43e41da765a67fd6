"""Issue #14 end to end: the real `azure` provider (azure-mgmt-containerservice over HTTPS,
retries off) against the AKS emulator, its node agent registering each VM as AKS would,
the real control plane, kube-scheduler and extender.

Only the agent pool's configuration and AKS's own labels and taints are on a node: a spot
node carries AKS's `kubernetes.azure.com/scalesetpriority=spot:NoSchedule`, which the pods
must tolerate as the webhook's spot tolerations make them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.aks import discover, sdk_client
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.azure.agent import AksNodeAgent
from gibbous.devcluster.azure.emulator import AksEmulator
from gibbous.devcluster.azure.state import Fault
from gibbous.devcluster.controlplane import ControlPlane
from tests.e2e.conftest import (
    SUITE_LABEL,
    bound_pods,
    delete_pods,
    eventually,
    make_namespace,
    repair_events,
    running_extender,
    start_autoscaler,
    suite_pod,
)
from tests.factories import catalog, config

pytestmark = pytest.mark.e2e

CLUSTER = "e2e-aks"
SCHEDULER = "gibbous-aks-e2e"
NAMESPACE = "aks-e2e"
AKS_SPOT = {
    "key": keys.AKS_SCALESET_PRIORITY,
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def aks_config(**extra: object) -> Config:
    return config(
        cloudProvider="azure",
        region="eastus",
        clusterID=CLUSTER,
        placeNodeSelector=True,
        provisioningGate=True,
        scaleUpTimeout="3m",
        azure={
            "resourceGroup": "gibbous-dev",
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
        },
        **extra,
    )


@pytest.fixture(scope="module")
def emulator(
    api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AksEmulator, str, str]]:
    emulated = AksEmulator(cluster=CLUSTER, operation_s=1.0, delete_s=0.5)
    server, ca = emulated.serve(directory=tmp_path_factory.mktemp("aks"))
    stopped = threading.Event()
    agent = AksNodeAgent(api, time.time, emulator=emulated, boot_s=1.0)
    thread = threading.Thread(target=agent.run, args=(stopped, 0.5), daemon=True)
    thread.start()
    make_namespace(api, NAMESPACE)
    yield emulated, emulated.base, str(ca)
    stopped.set()
    thread.join(timeout=10)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, aks_config()) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def azure_provider(endpoint: str, ca: str, cfg: Config) -> SizedPoolProvider:
    return discover(
        client=sdk_client(cfg.azure.subscription_id, endpoint, ca),
        config=cfg.azure,
        cluster_id=cfg.cluster_id,
        region=cfg.effective_region,
        catalog=catalog("azure"),
        clock=time.time,
        empty_pool_s=cfg.scale_down.unneeded_time_s,
    )


def start_service(
    api: client.ApiClient, world: tuple[AksEmulator, str, str], cfg: Config, identity: str
) -> AutoscalerService:
    return start_autoscaler(api, azure_provider(world[1], world[2], cfg), cfg, identity)


def pools_of(emulated: AksEmulator, suite: str) -> list[Any]:
    return [
        p
        for p in emulated.pools.values()
        if (p.properties.get("nodeLabels") or {}).get(SUITE_LABEL) == suite
    ]


def spot_pod(name: str, suite: str, cpu: str) -> dict[str, Any]:
    body = suite_pod(name, suite, scheduler=SCHEDULER, cpu=cpu, spot=True, gated=True)
    body["spec"]["tolerations"].append(AKS_SPOT)  # as the webhook's spot tolerations on AKS
    return body


def test_the_webhooks_spot_tolerations_cover_aks_spot_taint() -> None:
    cfg = aks_config()
    assert f"{keys.AKS_SCALESET_PRIORITY}=spot:NoSchedule" in cfg.effective_spot_tolerations


def test_p10_aks_leg_spot_nodes_with_aks_taint_and_a_failed_allocation_moves_on(
    api: client.ApiClient, scheduler: None, emulator: tuple[AksEmulator, str, str]
) -> None:
    """P10's AKS leg: a spot-tolerating Ray-style head and submitter get spot VMs carrying
    AKS's spot taint and bind; the first choice's allocation fails inside the operation
    (wrapped in ResourceOperationFailure) and the next candidate is launched in seconds."""
    emulated, _, _ = emulator
    cfg = aks_config()
    core = client.CoreV1Api(api)
    first_choice = min(
        (
            t
            for t in catalog("azure")
            if t.vcpu >= 4 and t.memory_bytes >= 8 * 2**30 and not t.gpu_count and t.arch == "amd64"
        ),
        key=lambda t: t.on_demand_price,
    )
    emulated.faults = [
        Fault("ZonalAllocationFailed", vm_size=first_choice.name, spot=True, wrapped=True)
    ]
    service = start_service(api, emulator, cfg, "aks-a")
    started = time.monotonic()
    names = ["ray-head", "submitter"]
    try:
        core.create_namespaced_pod(NAMESPACE, spot_pod("ray-head", "p10", cpu="3"))
        core.create_namespaced_pod(NAMESPACE, spot_pod("submitter", "p10", cpu="500m"))
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, names), timeout_s=120, what="both pods bound"
        )
        assert time.monotonic() - started < 60
        for node_name in set(placed.values()):
            node = core.read_node(node_name)
            assert node.metadata.labels[keys.AKS_SCALESET_PRIORITY] == "spot"
            assert any(
                t.key == keys.AKS_SCALESET_PRIORITY and t.effect == "NoSchedule"
                for t in node.spec.taints
            )
            assert node.spec.provider_id.startswith("azure:///subscriptions/")
        head_node = core.read_node(placed["ray-head"])
        assert head_node.metadata.labels[keys.INSTANCE_TYPE] != first_choice.name
        # The catalog's sizes come in the cluster's zones: ZonalAllocationFailed backs the
        # size off zone by zone, and the emulated fault failed it in every one.
        now = time.time()
        assert first_choice.zones and all(
            service.autoscaler.backoffs.is_blocked(first_choice.name, "spot", zone, now)
            for zone in first_choice.zones
        )
        assert repair_events(core) == []
    finally:
        emulated.faults = []
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_a_bin_pack_deployment_gets_the_cheapest_8_vcpu_size(
    api: client.ApiClient, scheduler: None, emulator: tuple[AksEmulator, str, str]
) -> None:
    emulated, _, _ = emulator
    cfg = aks_config(binPackingNodeCpu=8)
    core = client.CoreV1Api(api)
    # Independently: the cheapest x86 size of the catalog with 8 vCPUs and the bin-pack
    # node's 16 GiB (binPackingNodeMemory's default).
    cheapest = min(
        (
            t
            for t in catalog("azure")
            if t.vcpu >= 8
            and t.memory_bytes >= 16 * 2**30
            and not t.gpu_count
            and t.arch == "amd64"
        ),
        key=lambda t: t.on_demand_price,
    )
    service = start_service(api, emulator, cfg, "aks-b")
    names = [f"web-{i}" for i in range(4)]
    try:
        for name in names:
            core.create_namespaced_pod(
                NAMESPACE, suite_pod(name, "binpack", scheduler=SCHEDULER, cpu="1")
            )
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, names), timeout_s=120, what="every pod bound"
        )
        (node_name,) = set(placed.values())
        assert core.read_node(node_name).metadata.labels[keys.INSTANCE_TYPE] == cheapest.name
        (pool,) = pools_of(emulated, "binpack")
        assert pool.properties["vmSize"] == cheapest.name and pool.properties["count"] == 1
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_a_restart_mid_operation_adopts_and_scale_down_removes_the_vm_then_the_pool(
    api: client.ApiClient,
    scheduler: None,
    emulator: tuple[AksEmulator, str, str],
    quick_idle_listing: float,
) -> None:
    emulated, _, _ = emulator
    cfg = aks_config(**{"scaleDown.unneededTime": "5s", "scaleDown.delayAfterAdd": "5s"})
    core = client.CoreV1Api(api)
    emulated.operation_s = 4.0  # long enough to crash while the pool is being made
    first = start_service(api, emulator, cfg, "aks-c")
    second: AutoscalerService | None = None
    try:
        core.create_namespaced_pod(
            NAMESPACE, suite_pod("adopted", "adopt", scheduler=SCHEDULER, cpu="3", gated=True)
        )
        eventually(lambda: pools_of(emulated, "adopt"), timeout_s=60, what="a pool being created")
        first.stopped.set()
        first.cluster.stop()  # crashed mid-operation: its launch records are gone
        second = start_service(api, emulator, cfg, "aks-d")
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["adopted"]), timeout_s=120, what="bound"
        )
        (pool,) = pools_of(emulated, "adopt")
        assert list(pool.machines) == [placed["adopted"]], (
            "one VM: the operation's, not a second launch"
        )
        core.delete_namespaced_pod("adopted", NAMESPACE)  # with its grace period
        eventually(lambda: not pool.machines, timeout_s=120, what="the empty node's VM deleted")
        eventually(
            lambda: placed["adopted"] not in {n.metadata.name for n in core.list_node().items},
            what="its Node removed",
        )
        # With nothing in flight the loop lists every quick_idle_listing (5 s here, 30 s by
        # default): one listing finds the pool empty,
        # the first one unneededTime later deletes it, then the cloud's operation runs.
        eventually(
            lambda: not pools_of(emulated, "adopt"), timeout_s=120, what="the empty pool deleted"
        )
    finally:
        emulated.operation_s = 1.0
        first.stop()
        if second is not None:
            second.stop()
