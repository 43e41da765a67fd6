"""Issue #15 end to end: the real `oci` provider (the oci SDK, every request signed and the
signature checked, retries off) against the OKE emulator, its node agent registering each
node as OKE would, the real control plane, kube-scheduler and extender.

Gibbous's taints reach a node only through the pool's cloud-init (`user_data` running OKE's
bootstrap with `--kubelet-extra-args`), read by the node agent as the kubelet reads its flags: if they did not, spot pods' nodes would
register untainted and the autoscaler would have to repair them (a GibbousRepairedNode
event, which these tests forbid)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.oke import discover, sdk_clients
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.oci.agent import OkeNodeAgent
from gibbous.devcluster.oci.emulator import OkeEmulator, emulator_identity
from gibbous.devcluster.oci.state import CLUSTER, COMPARTMENT, SUBNET, Fault
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

SCHEDULER = "gibbous-oke-e2e"
NAMESPACE = "oke-e2e"
World = tuple[OkeEmulator, str, dict[str, Any]]


def oke_config(**extra: object) -> Config:
    return config(
        cloudProvider="oci",
        region="us-ashburn-1",
        clusterID="e2e-oke",
        placeNodeSelector=True,
        provisioningGate=True,
        scaleUpTimeout="3m",
        oci={"compartmentId": COMPARTMENT, "clusterId": CLUSTER, "subnetId": SUBNET},
        **extra,
    )


@pytest.fixture(scope="module")
def emulator(api: client.ApiClient) -> Iterator[World]:
    version = client.VersionApi(api).get_code()
    sdk_config, public = emulator_identity()
    emulated = OkeEmulator(
        version=f"v{version.major}.{version.minor.rstrip('+')}", public_key=public, operation_s=1.0
    )
    server = emulated.serve()
    stopped = threading.Event()
    # The device plugin's time-slicing (P17's ConfigMap, replicas 2) on this cluster.
    agent = OkeNodeAgent(api, time.time, emulator=emulated, boot_s=1.0, gpu_time_slices=2)
    thread = threading.Thread(target=agent.run, args=(stopped, 0.5), daemon=True)
    thread.start()
    make_namespace(api, NAMESPACE)
    yield emulated, f"http://127.0.0.1:{server.server_address[1]}", sdk_config
    stopped.set()
    thread.join(timeout=10)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    # As P17's OKE leg configures Gibbous (the other tests have no GPU pods).
    p17 = oke_config(nvidiaGPUTimeSlices=2, binPackingNodeGPU=2, binSelectPodGPUThreshold=2)
    with running_extender(api, p17) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def oci_provider(world: World, cfg: Config) -> SizedPoolProvider:
    _, endpoint, sdk_config = world
    container, identity = sdk_clients(sdk_config, endpoint)
    return discover(
        container=container,
        identity=identity,
        config=cfg.oci,
        cluster_id=cfg.cluster_id,
        catalog=catalog("oci"),
        clock=time.time,
        empty_pool_s=cfg.scale_down.unneeded_time_s,
    )


def start_service(
    api: client.ApiClient, world: World, cfg: Config, identity: str
) -> AutoscalerService:
    return start_autoscaler(api, oci_provider(world, cfg), cfg, identity)


def pools_of(emulated: OkeEmulator, suite: str) -> list[Any]:
    return [
        p
        for p in emulated.pools.values()
        if {kv["key"]: kv["value"] for kv in p.body.get("initialNodeLabels") or []}.get(SUITE_LABEL)
        == suite
    ]


def live(pool: Any) -> list[str]:
    """The Kubernetes Node names of a pool's live nodes: their private IPs (OKE's own
    `Node.name`, `oke-c...-n...-s...-<slot>`, is not the Node's name)."""
    return [n.private_ip for n in pool.nodes.values() if n.gone_at is None]


def diagnosis(core: client.CoreV1Api) -> str:
    pods = [
        (p.metadata.name, p.spec.node_name, [c.message for c in p.status.conditions or []])
        for p in core.list_namespaced_pod(NAMESPACE).items
    ]
    events = [e.message for e in core.list_namespaced_event(NAMESPACE).items][-8:]
    nodes = [
        (n.metadata.name, [(t.key, t.effect) for t in n.spec.taints or []], n.status.allocatable)
        for n in core.list_node().items
    ]
    return f"pods={pods} events={events} nodes={nodes}"


def cheapest(predicate: Any) -> Any:
    return min((t for t in catalog("oci") if predicate(t)), key=lambda t: t.on_demand_price)


def test_p17_oke_two_time_sliced_pods_share_one_gpu_node(
    api: client.ApiClient, scheduler: None, emulator: World
) -> None:
    """P17's OKE leg: nvidiaGPUTimeSlices=2, binPackingNodeGPU=2,
    binSelectPodGPUThreshold=2: two 1-GPU pods are bin-packed onto one node of the
    cheapest 1-GPU shape, whose GPU the device plugin shares twice."""
    emulated, _, _ = emulator
    cfg = oke_config(nvidiaGPUTimeSlices=2, binPackingNodeGPU=2, binSelectPodGPUThreshold=2)
    core = client.CoreV1Api(api)
    shape = cheapest(lambda t: t.gpu_count == 1 and t.arch == "amd64")
    service = start_service(api, emulator, cfg, "oke-a")
    names = ["ts-0", "ts-1"]
    try:
        for name in names:
            core.create_namespaced_pod(
                NAMESPACE, suite_pod(name, "p17", scheduler=SCHEDULER, cpu="1", gpus=1)
            )
        try:
            placed = eventually(
                lambda: bound_pods(core, NAMESPACE, names), timeout_s=120, what="both pods bound"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core)}") from None
        (node_name,) = set(placed.values())
        node = core.read_node(node_name)
        assert node.metadata.labels[keys.INSTANCE_TYPE] == shape.name
        assert node.status.allocatable[keys.NVIDIA_GPU] == "2"
        # OKE's GPU taint, tolerated through ExtendedResourceToleration (on in OKE).
        assert (keys.NVIDIA_GPU, "NoSchedule") in {(t.key, t.effect) for t in node.spec.taints}
        assert node.spec.provider_id.startswith("ocid1.instance.")
        (pool,) = pools_of(emulated, "p17")
        assert pool.body["nodeSourceDetails"]["imageId"].startswith(
            "ocid1.image.oc1.iad.okegen2gpu"
        )
        assert repair_events(core) == []
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_a_flex_bin_pack_node_has_the_specs_ocpus_and_memory(
    api: client.ApiClient, scheduler: None, emulator: World
) -> None:
    emulated, _, _ = emulator
    cfg = oke_config(binPackingNodeCpu=8, binPackingNodeMemory="32Gi")
    core = client.CoreV1Api(api)
    expected = cheapest(
        lambda t: (
            t.vcpu >= 8 and t.memory_bytes >= 32 * 2**30 and not t.gpu_count and t.arch == "amd64"
        )
    )
    service = start_service(api, emulator, cfg, "oke-b")
    names = [f"web-{i}" for i in range(3)]
    try:
        for name in names:
            core.create_namespaced_pod(
                NAMESPACE, suite_pod(name, "flex", scheduler=SCHEDULER, cpu="1")
            )
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, names), timeout_s=120, what="every pod bound"
        )
        assert len(set(placed.values())) == 1
        (pool,) = pools_of(emulated, "flex")
        shape, ocpus, gigabytes = expected.name.rsplit("-", 2)
        assert pool.body["nodeShape"] == shape
        assert pool.body["nodeShapeConfig"] == {
            "ocpus": float(ocpus),
            "memoryInGBs": float(gigabytes),
        }
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, names)


def test_a_preemptible_launch_out_of_host_capacity_moves_on_in_seconds(
    api: client.ApiClient, scheduler: None, emulator: World
) -> None:
    emulated, _, _ = emulator
    cfg = oke_config()
    core = client.CoreV1Api(api)
    first = cheapest(
        lambda t: (
            t.vcpu >= 4 and t.memory_bytes >= 8 * 2**30 and not t.gpu_count and t.arch == "amd64"
        )
    )
    base_shape = first.name.rsplit("-", 2)[0] if ".Flex-" in first.name else first.name
    emulated.faults = [Fault("capacity", shape=base_shape, preemptible=True, times=1)]
    service = start_service(api, emulator, cfg, "oke-c")
    started = time.monotonic()
    try:
        core.create_namespaced_pod(
            NAMESPACE,
            suite_pod("spot", "spot", scheduler=SCHEDULER, cpu="3", spot=True, gated=True),
        )
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["spot"]), timeout_s=120, what="bound"
        )
        assert time.monotonic() - started < 60
        assert service.autoscaler.backoffs.is_blocked(
            first.name, "spot", "US-ASHBURN-AD-1", time.time()
        )
        node = core.read_node(placed["spot"])
        assert node.metadata.labels[keys.CAPACITY_TYPE] == "spot"
        # The spot taint reached the kubelet through the pool's cloud-init, not a repair.
        assert any(t.key == keys.SPOT_TAINT_KEY for t in node.spec.taints or [])
        assert repair_events(core) == []
    finally:
        emulated.faults = []
        service.stop()
        delete_pods(core, NAMESPACE, ["spot"])


def test_a_restart_adopts_and_scale_down_removes_the_node_then_the_pool(
    api: client.ApiClient, scheduler: None, emulator: World, quick_idle_listing: float
) -> None:
    emulated, _, _ = emulator
    cfg = oke_config(**{"scaleDown.unneededTime": "5s", "scaleDown.delayAfterAdd": "5s"})
    core = client.CoreV1Api(api)
    emulated.operation_s = 4.0  # long enough to crash while the pool is being made
    first = start_service(api, emulator, cfg, "oke-d")
    second: AutoscalerService | None = None
    try:
        core.create_namespaced_pod(
            NAMESPACE, suite_pod("adopted", "adopt", scheduler=SCHEDULER, cpu="3", gated=True)
        )
        eventually(lambda: pools_of(emulated, "adopt"), timeout_s=60, what="a pool being created")
        first.stopped.set()
        first.cluster.stop()  # crashed mid-operation: its launch records are gone
        second = start_service(api, emulator, cfg, "oke-e")
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["adopted"]), timeout_s=120, what="bound"
        )
        (pool,) = pools_of(emulated, "adopt")
        assert live(pool) == [placed["adopted"]], "one node: the operation's, not a second launch"
        core.delete_namespaced_pod("adopted", NAMESPACE)  # with its grace period
        eventually(lambda: not live(pool), timeout_s=120, what="the empty node deleted")
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


def test_a_launched_node_outlives_registration_timeout_and_orphan_grace(
    api: client.ApiClient, scheduler: None, emulator: World, quick_idle_listing: float
) -> None:
    """OKE names a managed node `oke-c...-n...-s...-<slot>` in its API, the Kubernetes Node
    by its private IP: an instance named by the former never meets its Node, and once
    registrationTimeout + orphanGracePeriod pass without one it is terminated as an orphan.
    Both are cut to seconds here; the node must still run, matched, after two listings."""
    emulated, _, _ = emulator
    cfg = oke_config(registrationTimeout="3s", orphanGracePeriod="3s")
    core = client.CoreV1Api(api)
    service = start_service(api, emulator, cfg, "oke-f")
    try:
        core.create_namespaced_pod(
            NAMESPACE, suite_pod("kept", "orphan", scheduler=SCHEDULER, cpu="1", gated=True)
        )
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["kept"]), timeout_s=120, what="bound"
        )
        (pool,) = pools_of(emulated, "orphan")
        (node,) = [n for n in pool.nodes.values() if n.gone_at is None]
        assert node.name.startswith("oke-c") and placed["kept"] == node.private_ip
        assert core.read_node(node.private_ip).spec.provider_id == node.id
        # The orphan rule sees an instance at one listing and terminates it at the next,
        # orphanGracePeriod later; idle, the loop lists every quick_idle_listing: wait for
        # two listings.
        listings = {service.autoscaler.last_list_at}

        def two_more() -> bool:
            listings.add(service.autoscaler.last_list_at)
            return len(listings) >= 3

        eventually(
            two_more,
            timeout_s=100,
            what="two more listings",
        )
        assert node.gone_at is None and node.state == "ACTIVE"
        assert service.autoscaler.orphans_seen == {}
        (instance,) = [i for i in service.autoscaler.instances if i.id == node.id]
        assert instance.node_name == node.private_ip
        assert core.read_node(node.private_ip).metadata.name == placed["kept"]
    finally:
        service.stop()
        delete_pods(core, NAMESPACE, ["kept"])
