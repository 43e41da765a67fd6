"""Issue #13 end to end: the real `gcp` provider (google-cloud-container and -compute over
REST) against the GKE emulator, its node agent registering each node-pool instance as GKE
would, the real control plane, kube-scheduler and extender.

Nothing but the node pool's configuration and GKE's own labels are on a node: if Gibbous
put a label or taint on the wrong object, the pods would not bind (and a
GibbousRepairedNode event would show the autoscaler patching it, which these tests forbid).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.gke import GkeCloudProvider, discover, sdk_clients
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.gcp.agent import GkeNodeAgent
from gibbous.devcluster.gcp.emulator import GkeEmulator
from gibbous.devcluster.gcp.state import Fault
from tests.e2e.conftest import (
    SUITE_LABEL,
    bound_pods,
    crash,
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

CLUSTER = "e2e-gke"
SCHEDULER = "gibbous-gke-e2e"
NAMESPACE = "gke-e2e"


def gke_config(**extra: object) -> Config:
    return config(
        cloudProvider="gcp",
        region="us-central1",
        clusterID=CLUSTER,
        placeNodeSelector=True,
        provisioningGate=True,
        scaleUpTimeout="3m",
        gcp={"project": "gibbous-dev", "diskSizeGb": 150},
        **extra,
    )


@pytest.fixture(scope="module")
def emulator(api: client.ApiClient) -> Iterator[tuple[GkeEmulator, str]]:
    version = client.VersionApi(api).get_code()
    emulated = GkeEmulator(
        cluster=CLUSTER,
        version=f"{version.major}.{version.minor.rstrip('+')}.0-gke.100",
        operation_s=1.0,
        create_s=1.0,
        delete_s=0.5,
    )
    server = emulated.serve()
    stopped = threading.Event()
    agent = GkeNodeAgent(api, time.time, emulator=emulated, boot_s=1.0)
    thread = threading.Thread(target=agent.run, args=(stopped, 0.5), daemon=True)
    thread.start()
    make_namespace(api, NAMESPACE)
    yield emulated, f"http://127.0.0.1:{server.server_address[1]}"
    stopped.set()
    thread.join(timeout=10)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, gke_config(nvidiaGPUTimeSlices=2)) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def gcp_provider(endpoint: str, cfg: Config) -> GkeCloudProvider:
    container, compute, _ = sdk_clients(endpoint)
    return discover(
        container=container,
        compute=compute,
        config=cfg.gcp,
        cluster_id=cfg.cluster_id,
        region=cfg.effective_region,
        project=cfg.gcp.project,
        catalog=catalog("gcp"),
        clock=time.time,
        empty_pool_s=cfg.scale_down.unneeded_time_s,
    )


def start_service(
    api: client.ApiClient, endpoint: str, cfg: Config, identity: str
) -> AutoscalerService:
    return start_autoscaler(api, gcp_provider(endpoint, cfg), cfg, identity)


def pools_of(emulated: GkeEmulator, suite: str) -> list[Any]:
    return [
        p
        for p in emulated.pools.values()
        if (p.body.get("config") or {}).get("labels", {}).get(SUITE_LABEL) == suite
    ]


def instances(pool: Any) -> list[str]:
    return [name for mig in pool.migs.values() for name in mig.instances]


def test_p17_time_shared_gpus_get_one_t4_node_in_a_time_sharing_pool(
    api: client.ApiClient, scheduler: None, emulator: tuple[GkeEmulator, str]
) -> None:
    """P17's GKE deployment: 2 pods x 1 GPU with GKE's time-sharing selectors,
    nvidiaGPUTimeSlices=2, placeNodeSelector: one n1-standard-4 + 1 x T4 ($0.540/hr, the
    post's table) in a pool with time-sharing 2, both pods bound to it."""
    emulated, endpoint = emulator
    cfg = gke_config(nvidiaGPUTimeSlices=2)
    core = client.CoreV1Api(api)
    service = start_service(api, endpoint, cfg, "gke-a")
    names = ["ts-0", "ts-1"]
    try:
        for name in names:
            body = suite_pod(name, "p17", scheduler=SCHEDULER, cpu="500m", gpus=1)
            body["spec"]["nodeSelector"].update(
                {keys.GKE_GPU_SHARING_STRATEGY: "time-sharing", keys.GKE_MAX_SHARED_CLIENTS: "2"}
            )
            core.create_namespaced_pod(NAMESPACE, body)
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, names), timeout_s=90, what="both pods bound"
        )
        assert len(set(placed.values())) == 1
        node = core.read_node(next(iter(placed.values())))
        labels = node.metadata.labels
        assert labels[keys.INSTANCE_TYPE] == "n1-standard-4"  # GKE's label: the machine type
        assert labels["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
        assert labels[keys.GKE_MAX_SHARED_CLIENTS] == "2"
        assert labels[keys.PRICE_PER_HOUR] == "0.5400"
        assert node.status.allocatable[keys.NVIDIA_GPU] == "2"
        assert (
            node.spec.provider_id == f"gce://gibbous-dev/{labels[keys.ZONE]}/{node.metadata.name}"
        )
        (pool,) = pools_of(emulated, "p17")
        accelerator = pool.body["config"]["accelerators"][0]
        assert accelerator["gpuSharingConfig"]["maxSharedClientsPerGpu"] == "2"
        assert pool.body["config"]["diskSizeGb"] == 150
        assert repair_events(core) == []
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_p10_stock_outs_inside_the_mig_move_on_in_seconds(
    api: client.ApiClient, scheduler: None, emulator: tuple[GkeEmulator, str]
) -> None:
    """P10's GKE story: 2 GPUs, T4 or P4, spot allowed. Both T4 spot shapes stock out
    after GKE accepted them; each failure is seen within a poll and the next candidate
    launched, ending on n1-standard-32 + 2 x P4 spot ($1.36, the post's figure), in
    seconds, not scaleUpTimeouts."""
    emulated, endpoint = emulator
    cfg = gke_config(zones=["us-central1-a"])
    # The order the post gives, computed from the catalog: spot = 0.5 x on-demand.
    shapes = sorted(
        (
            t
            for t in catalog("gcp")
            if t.gpu_count == 2 and t.gpu_sku in ("T4", "P4") and t.vcpu >= 20
        ),
        key=lambda t: t.on_demand_price * 0.5,
    )
    assert [t.name for t in shapes[:3]] == [
        "n1-standard-32+t4x2",
        "n1-highmem-32+t4x2",
        "n1-standard-32+p4x2",
    ]
    emulated.faults = [Fault("stockout", accelerator="nvidia-tesla-t4", spot=True)]
    core = client.CoreV1Api(api)
    service = start_service(api, endpoint, cfg, "gke-b")
    started = time.monotonic()
    try:
        body = suite_pod("p10", "p10", scheduler=SCHEDULER, cpu="20", gpus=2, spot=True, gated=True)
        body["metadata"]["annotations"].update(
            {
                keys.INSTANCE_GPU_SKUS: "T4,P4",
                keys.INSTANCE_OFFERINGS: "spot,on-demand",
                keys.INSTANCE_MAX_COST: "4.75",
            }
        )
        core.create_namespaced_pod(NAMESPACE, body)
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["p10"]), timeout_s=120, what="bound"
        )
        took = time.monotonic() - started
        assert took < 60, took  # seconds, where waiting out scaleUpTimeout twice is 6 minutes
        node = core.read_node(placed["p10"])
        assert node.metadata.labels[keys.CATALOG_TYPE] == "n1-standard-32--p4x2"
        assert node.metadata.labels[keys.GKE_SPOT] == "true"
        assert node.metadata.labels[keys.PRICE_PER_HOUR] == "1.3600"
        for failed in shapes[:2]:
            assert service.autoscaler.backoffs.is_blocked(
                failed.name, "spot", "us-central1-a", time.time()
            )
        # What the failed launches left is undone: their instances are deleted from the MIGs.
        leftovers = [
            name
            for pool in pools_of(emulated, "p10")
            if "t4" in pool.body["config"]["labels"].get(keys.CATALOG_TYPE, "")
            for name in instances(pool)
        ]
        eventually(
            lambda: (
                not [
                    n
                    for n in leftovers
                    if any(n in instances(p) for p in pools_of(emulated, "p10"))
                ]
            ),
            timeout_s=30,
            what="failed instances deleted",
        )
    finally:
        emulated.faults = []
        service.stop()
        delete_pods(core, NAMESPACE, ["p10"])


def test_a_burst_is_one_pool_operation_and_reaches_every_node(
    api: client.ApiClient, scheduler: None, emulator: tuple[GkeEmulator, str]
) -> None:
    """100 pending pods that want 13 bin-pack nodes of one shape (e2-standard-8: 7,910m
    allocatable by GKE's reservations, so 8 pods of 900m a node): one node-pool creation
    (within GKE's concurrent-operations limit) and one createInstances call, every pod bound."""
    emulated, endpoint = emulator
    cfg = gke_config(
        binPackingNodeCpu=8, binPackingNodeMemory="32Gi", binPackingNodeTypeRegexp="^e2-standard-8$"
    )
    core = client.CoreV1Api(api)
    before = len(emulated.requests)
    service = start_service(api, endpoint, cfg, "gke-c")
    names = [f"burst-{i}" for i in range(100)]
    try:
        started = time.monotonic()
        for name in names:
            core.create_namespaced_pod(
                NAMESPACE, suite_pod(name, "burst", scheduler=SCHEDULER, cpu="900m")
            )
        eventually(
            lambda: bound_pods(core, NAMESPACE, names), timeout_s=180, what="all 100 pods bound"
        )
        took = time.monotonic() - started
        calls = emulated.requests[before:]
        pool_creations = [p for m, p in calls if m == "POST" and p.endswith("/nodePools")]
        instance_calls = [p for m, p in calls if m == "POST" and p.endswith("/createInstances")]
        (pool,) = pools_of(emulated, "burst")
        assert len(pool_creations) == 1
        assert len(instance_calls) <= 2  # the batch, and at most one more for a late decision
        nodes = set((bound_pods(core, NAMESPACE, names) or {}).values())
        assert len(nodes) == len(instances(pool)) == 13
        print(f"100-pod burst: {len(nodes)} nodes, every pod bound after {took:.1f}s")
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_a_restart_mid_launch_adopts_and_scale_down_removes_the_node_then_the_pool(
    api: client.ApiClient,
    scheduler: None,
    emulator: tuple[GkeEmulator, str],
    quick_idle_listing: float,
) -> None:
    emulated, endpoint = emulator
    cfg = gke_config(**{"scaleDown.unneededTime": "5s", "scaleDown.delayAfterAdd": "5s"})
    core = client.CoreV1Api(api)
    emulated.create_s = 4.0  # long enough to crash while the instance is being created
    first = start_service(api, endpoint, cfg, "gke-d")
    second: AutoscalerService | None = None
    try:
        core.create_namespaced_pod(
            NAMESPACE, suite_pod("adopted", "adopt", scheduler=SCHEDULER, cpu="3", gated=True)
        )
        eventually(
            lambda: [p for p in pools_of(emulated, "adopt") if instances(p)],
            timeout_s=60,
            what="an instance being created",
        )
        crash(first)  # mid-launch, its record is lost with it
        second = start_service(api, endpoint, cfg, "gke-e")
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["adopted"]), timeout_s=120, what="bound"
        )
        (pool,) = pools_of(emulated, "adopt")
        assert instances(pool) == [placed["adopted"]], "adopted, not launched twice"
        core.delete_namespaced_pod("adopted", NAMESPACE)  # with its grace period, as a user does
        eventually(
            lambda: not instances(pool), timeout_s=120, what="the empty node's instance deleted"
        )
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
        emulated.create_s = 1.0
        first.stop()
        if second is not None:
            second.stop()
