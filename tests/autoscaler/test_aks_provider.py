"""The AKS provider through the real SDK (azure-mgmt-containerservice, over HTTPS, retries
off) against the AKS emulator, on a clock the test moves; and the error mapping on
recorded ARM error bodies, the ResourceOperationFailure wrapping included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import HttpResponse
from azure.core.polling.base_polling import LROBasePolling
from azure.mgmt.containerservice import models

from gibbous.autoscaler.cloud.aks import (
    classify_api_error,
    discover,
    error_codes,
    failure_kind,
    sdk_client,
    tag_name,
)
from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.core import keys
from gibbous.core.settings.options.azure import AzureConfig
from gibbous.devcluster.azure.emulator import AksEmulator
from gibbous.devcluster.azure.state import Fault
from gibbous.devcluster.emulation import RequestBucket
from tests.autoscaler.sdkworld import OPENED, Clock
from tests.factories import catalog


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AksEmulator, Clock, str, str]]:
    clock = Clock()
    emulator = AksEmulator(clock=clock, operation_s=30.0, delete_s=5.0)
    server, ca = emulator.serve(directory=tmp_path)
    yield emulator, clock, emulator.base, str(ca)
    server.shutdown()
    server.server_close()


def provider(world: tuple[AksEmulator, Clock, str, str], **config: Any) -> SizedPoolProvider:
    emulator, clock, endpoint, ca = world
    made = discover(
        client=sdk_client(emulator.subscription, endpoint, ca),
        config=AzureConfig(resource_group=emulator.resource_group, **config),
        cluster_id="dev-cluster",
        region="eastus",
        catalog=catalog("azure"),
        clock=clock,
        empty_pool_s=600.0,
    )
    OPENED.append(made)
    return made


def request(
    token: str,
    instance_type: str = "Standard_D8s_v5",
    category: str = "on-demand",
    zones: tuple[str, ...] = ("eastus-2",),
) -> LaunchRequest:
    return LaunchRequest(
        token=token,
        cluster_id="dev-cluster",
        instance_type=instance_type,
        category=category,
        zones=zones,
        labels={
            keys.PLACEMENT: "bin-pack",
            keys.CATALOG_TYPE: instance_type,
            keys.INSTANCE_TYPE: instance_type,
            keys.AKS_SCALESET_PRIORITY: "spot" if category == "spot" else "regular",
        },
        taints=({"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"},)
        if category == "spot"
        else (),
    )


@pytest.fixture(autouse=True)
def quick_pollers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's pollers sleep `polling_interval` (1 s) of real time between polls; the
    emulator runs on the test's clock, so a short real pause between polls changes
    nothing but the wait."""
    monkeypatch.setattr(LROBasePolling, "_sleep", lambda self, delay: time.sleep(0.01))


def settle(aks: SizedPoolProvider, timeout_s: float = 10.0) -> None:
    """Wait until every operation in flight now (due by the test's clock) is seen done by
    its poller and finished by the provider; fail when one is not within `timeout_s`.
    Operations the provider starts meanwhile (queued launches) are left running."""
    with aks.lock:
        waiting = [s.operation for s in aks.states.values() if s.operation is not None]
    assert waiting, "nothing in flight to settle"
    deadline = time.monotonic() + timeout_s
    while not all(operation.done() for operation in waiting):
        assert time.monotonic() < deadline, f"operations still running after {timeout_s} s"
        time.sleep(0.01)
    aks.advance()
    with aks.lock:
        running = {id(s.operation) for s in aks.states.values()}
    assert not running & {id(o) for o in waiting}, "a done operation was not finished"


def puts(emulator: AksEmulator) -> int:
    return sum(1 for method, path in emulator.requests if method == "PUT")


def test_launches_of_a_shape_gather_behind_an_operation(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    emulator, clock, _, _ = world
    aks = provider(world, artifact_streaming=True, os_disk_size_gb=256)
    first = aks.create(request("t-0"))
    assert first.state is InstanceState.PENDING
    for index in range(1, 40):
        aks.create(request(f"t-{index}"))
    (pool,) = emulator.pools.values()
    properties = pool.properties
    assert properties["count"] == 1 and properties["vmSize"] == "Standard_D8s_v5"
    assert properties["availabilityZones"] == ["2"] and properties["mode"] == "User"
    assert properties["type"] == "VirtualMachineScaleSets"
    assert properties["osDiskSizeGB"] == 256 and properties["artifactStreamingProfile"] == {
        "enabled": True
    }
    assert properties["tags"]["gibbous.dev_cluster-id"] == "dev-cluster"
    assert all("/" not in tag for tag in properties["tags"])
    assert not any(
        k.startswith(("kubernetes.io", "node.kubernetes.io", "kubernetes.azure.com"))
        for k in properties["nodeLabels"]
    )
    clock.now += 31
    settle(aks)
    assert puts(emulator) == 2 and pool.properties["count"] == 40  # the 39 others together
    clock.now += 31
    settle(aks)
    listed = aks.list("dev-cluster")
    assert len(listed) == 40 and all(i.state is InstanceState.RUNNING for i in listed)
    assert {i.token for i in listed} == {f"t-{i}" for i in range(40)}
    mine = aks.get(first.id)
    assert mine.id.startswith("azure:///subscriptions/") and mine.zone == "eastus-2"
    assert mine.node_name.startswith(f"aks-{pool.name}-") and mine.token == "t-0"


def test_spot_pools_and_an_allocation_failure_inside_the_operation(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    emulator, clock, _, _ = world
    emulator.faults = [
        Fault("ZonalAllocationFailed", vm_size="Standard_NC4as_T4_v3", spot=True, wrapped=True)
    ]
    aks = provider(world)
    launched = aks.create(request("s-1", instance_type="Standard_NC4as_T4_v3", category="spot"))
    (pool,) = emulator.pools.values()
    assert pool.properties["scaleSetPriority"] == "Spot"
    assert (
        pool.properties["scaleSetEvictionPolicy"] == "Delete"
        and pool.properties["spotMaxPrice"] == -1
    )
    assert pool.properties["gpuProfile"] == {"driver": "Install"}
    # Gibbous's taint, and the one AKS adds to every spot pool.
    assert pool.properties["nodeTaints"] == [
        "gibbous.dev/capacity-type=spot:NoSchedule",
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule",
    ]
    clock.now += 31
    settle(aks)
    failed = aks.get(launched.id)
    assert (
        failed.state is InstanceState.TERMINATED and failed.failure_kind == "insufficient-capacity"
    )
    assert "ZonalAllocationFailed" in failed.failure_reason
    # AKS keeps the failed pool; having no VM, Gibbous deletes it.
    assert pool.state in ("Deleting", "Failed")
    clock.now += 31
    settle(aks)
    emulator.advance()
    assert not emulator.pools
    aks.delete(launched.id)  # nothing of it is left
    with pytest.raises(InstanceNotFoundError):
        aks.get(launched.id)


def test_a_resize_changes_the_count_and_keeps_what_aks_added_to_a_spot_pool(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    """AKS puts `kubernetes.azure.com/scalesetpriority=spot` in a spot pool's nodeLabels
    and its `...=spot:NoSchedule` taint in nodeTaints; a PUT replaces the properties it
    carries, so resending the pool as first asked strips the label from the pool and its
    new nodes (Azure/AKS#3152). A resize reads the pool and changes only the count."""
    emulator, clock, _, _ = world
    aks = provider(world)
    aks.create(request("k-0", category="spot"))
    (pool,) = emulator.pools.values()
    spot_label = {"kubernetes.azure.com/scalesetpriority": "spot"}
    spot_taint = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
    assert pool.properties["nodeLabels"].items() >= spot_label.items()
    assert spot_taint in pool.properties["nodeTaints"]
    created = dict(pool.properties)
    clock.now += 31
    settle(aks)
    aks.create(request("k-1", category="spot"))
    assert puts(emulator) == 2
    assert pool.properties["count"] == 2
    assert {k: v for k, v in pool.properties.items() if k != "count"} == {
        k: v for k, v in created.items() if k != "count"
    }


def test_a_changed_create_only_setting_gives_a_new_pool(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    """osDiskSizeGB, maxPods, vnetSubnetID and the GPU driver cannot change on an existing
    pool (AKS refuses the PUT): a configuration that changes one asks for a new pool."""
    emulator, clock, _, _ = world
    provider(world, os_disk_size_gb=128).create(request("d-0"))
    clock.now += 31
    settings: tuple[dict[str, Any], ...] = (
        {"os_disk_size_gb": 256},
        {"max_pods": 50},
        {"gpu_driver": "none"},
    )
    for index, setting in enumerate(settings):
        aks = provider(world, **setting)
        aks.create(request(f"d-{index + 1}", instance_type="Standard_NC4as_T4_v3"))
        aks.create(request(f"e-{index + 1}"))
        clock.now += 31
        settle(aks)
        assert not [t for t in aks.failed.values() if t.failure_kind], setting
    disks = sorted(
        (p.properties["vmSize"], p.properties["osDiskSizeGB"], p.properties.get("maxPods") or 0)
        for p in emulator.pools.values()
    )
    # D8s: 128 GB (first), 256 GB, 50 pods; the GPU driver changes only GPU pools, so
    # the last D8s launch goes to the first pool. GPU: 256 GB, 50 pods, driver None.
    assert len(emulator.pools) == 6, disks
    assert {p.properties.get("gpuProfile", {}).get("driver") for p in emulator.pools.values()} >= {
        "Install",
        "None",
    }


def test_a_failed_operation_without_a_capacity_or_quota_code_is_no_stock_out(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    """Only Azure's capacity codes (AllocationFailed, ZonalAllocationFailed,
    SkuNotAvailable, Overconstrained*) are stock-outs and a cores-quota refusal quota;
    a bootstrap failure (VMExtensionProvisioningError) is a provider error: backing the
    VM size off as out of capacity would send Gibbous to another size for nothing."""
    emulator, clock, _, _ = world
    emulator.faults = [Fault("VMExtensionProvisioningError", times=1)]
    aks = provider(world)
    launched = aks.create(request("v-0"))
    clock.now += 31
    settle(aks)
    failed = aks.get(launched.id)
    assert failed.state is InstanceState.TERMINATED
    assert failed.failure_kind == "provider-error"
    assert "VMExtensionProvisioningError" in failed.failure_reason


def test_a_failed_scale_up_is_set_back_to_the_vms_the_pool_has(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    emulator, clock, _, _ = world
    aks = provider(world)
    aks.create(request("a-0"))
    clock.now += 31
    settle(aks)
    emulator.faults = [Fault("AllocationFailed", times=1)]
    later = aks.create(request("a-1"))
    clock.now += 31
    settle(aks)
    assert aks.get(later.id).failure_kind == "insufficient-capacity"
    (pool,) = emulator.pools.values()
    clock.now += 31
    settle(aks)
    emulator.advance()
    assert pool.properties["count"] == 1 and len(pool.machines) == 1


def test_quota_throttling_and_single_vm_removal(world: tuple[AksEmulator, Clock, str, str]) -> None:
    emulator, clock, _, _ = world
    aks = provider(world)
    emulator.faults = [Fault("quota", vm_size="Standard_NC4as_T4_v3")]
    with pytest.raises(QuotaExceededError, match="Cores quota"):
        aks.create(request("q-1", instance_type="Standard_NC4as_T4_v3"))
    emulator.faults = [Fault("throttle", times=1)]
    waiting = aks.create(request("q-2"))  # kept, asked for at the next poll
    assert waiting.state is InstanceState.PENDING and not emulator.pools
    emulator.faults = []
    aks.advance()
    (pool,) = emulator.pools.values()
    clock.now += 31
    settle(aks)
    clock.now += 1
    running = aks.get(waiting.id)
    assert running.state is InstanceState.RUNNING
    aks.delete(running.id)
    clock.now += 6
    emulator.advance()
    assert not pool.machines and pool.properties["count"] == 0
    # Empty for the scale-down delay: the pool Gibbous made goes; an operator's never.
    operators = models.AgentPool(
        properties=models.AgentPoolManagedClusterAgentPoolProfileProperties(
            count=0, vm_size="Standard_D8s_v5", mode="User"
        )
    )
    aks.cloud.client.agent_pools.begin_create_or_update(  # type: ignore[attr-defined]
        emulator.resource_group, emulator.cluster, "userpool", operators
    )
    aks.list("dev-cluster")
    clock.now += 601
    aks.list("dev-cluster")
    clock.now += 31
    emulator.advance()
    assert list(emulator.pools) == ["userpool"]


def test_a_throttled_operation_status_read_fails_no_launch(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    """ARM throttles reads per subscription (250, 25 a second: "Understand how Azure
    Resource Manager throttles requests"), operation status reads among them. A 429 on a
    status read says nothing of the operation: the SDK's poller gives up on it, and
    Gibbous used to take that for the operation failing and fail its launches. It polls
    the operation again (from its continuation token) and the launch gets its VM."""
    emulator, clock, _, _ = world
    aks = provider(world)
    launch = aks.create(request("slow-read"))
    (pool,) = emulator.pools.values()
    emulator.reads = RequestBucket(1.0, 0.0, clock)  # no read comes back into the bucket
    emulator.reads.tokens = 0.0
    deadline = time.monotonic() + 5
    while emulator.reads.refused == 0:  # the poller's next status read is throttled
        assert time.monotonic() < deadline, "the poller never read the status"
        time.sleep(0.05)
    # The poller gives up on the throttled read; the provider keeps the operation to poll
    # again later (so `settle`, which expects done operations finished, does not apply).
    with aks.lock:
        (given_up,) = [s.operation for s in aks.states.values() if s.operation is not None]
    while not given_up.done():
        assert time.monotonic() < deadline, "the poller never gave up on the throttled read"
        time.sleep(0.01)
    aks.advance()
    assert aks.get(launch.id).state is InstanceState.PENDING
    emulator.reads = RequestBucket(0.0, 0.0, clock)  # reads allowed again
    clock.now += 31
    # The provider polls the operation again from its token (after the pause the 429
    # asked for) until it is done: driven as the loop drives it, one step a second.
    deadline = time.monotonic() + 10
    while pool.properties["count"] != 1 or aks.get(launch.id).state is not InstanceState.RUNNING:
        assert time.monotonic() < deadline, "the launch never got its VM after reads resumed"
        aks.advance()
        clock.now += 1
        time.sleep(0.02)


def test_a_restarted_provider_finds_the_vms(world: tuple[AksEmulator, Clock, str, str]) -> None:
    _, clock, _, _ = world
    first = provider(world)
    first.create(request("r-0"))
    clock.now += 31
    settle(first)
    again = provider(world)
    (found,) = again.list("dev-cluster")
    assert found.state is InstanceState.RUNNING and found.instance_type == "Standard_D8s_v5"
    assert found.labels[keys.PLACEMENT] == "bin-pack"


def test_the_emulator_refuses_what_arm_refuses(world: tuple[AksEmulator, Clock, str, str]) -> None:
    emulator, _, endpoint, ca = world
    client = sdk_client(emulator.subscription, endpoint, ca)
    OPENED.append(client)
    bad_name = models.AgentPool(
        properties=models.AgentPoolManagedClusterAgentPoolProfileProperties(
            count=1, vm_size="Standard_D8s_v5", mode="User"
        )
    )
    with pytest.raises(HttpResponseError, match="at most 12 characters"):
        client.agent_pools.begin_create_or_update(
            emulator.resource_group, emulator.cluster, "waytoolongname1", bad_name
        )
    labelled = models.AgentPool(
        properties=models.AgentPoolManagedClusterAgentPoolProfileProperties(
            count=1,
            vm_size="Standard_D8s_v5",
            mode="User",
            node_labels={"kubernetes.azure.com/agentpool": "x"},
        )
    )
    with pytest.raises(HttpResponseError, match="reserved by AKS"):
        client.agent_pools.begin_create_or_update(
            emulator.resource_group, emulator.cluster, "pool1", labelled
        )
    misspelt = {
        "properties": {"count": 1, "vmSize": "Standard_D8s_v5", "mode": "User", "vmSizes": "x"}
    }
    with pytest.raises(HttpResponseError, match="Could not find member 'vmSizes'"):
        client.agent_pools.begin_create_or_update(
            emulator.resource_group, emulator.cluster, "pool1", misspelt
        )


def _recorded(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> HttpResponseError:
    class Recorded(HttpResponse):
        def __init__(self) -> None:
            super().__init__(None, None)  # type: ignore[arg-type]
            self.status_code = status
            self.headers = headers or {}
            self.reason = "recorded"
            self.content_type = "application/json"

        def body(self) -> bytes:
            return json.dumps(body).encode()

        def text(self, encoding: str | None = None) -> str:
            return json.dumps(body)

    from azure.mgmt.core.exceptions import ARMErrorFormat  # noqa: PLC0415

    return HttpResponseError(response=Recorded(), error_format=ARMErrorFormat)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            429,
            {"error": {"code": "TooManyRequests", "message": "The request is being throttled"}},
            ThrottledError,
        ),
        (
            400,
            {
                "error": {
                    "code": "OperationNotAllowed",
                    "message": "Operation could not be completed as it results in exceeding approved standardNCASv3_T4Family Cores quota. Current Limit: 0",
                }
            },
            QuotaExceededError,
        ),
        (
            400,
            {
                "error": {
                    "code": "OperationNotAllowed",
                    "message": "Operation results in exceeding quota limits of LowPriorityCores. Maximum allowed: 0",
                }
            },
            QuotaExceededError,
        ),
        (
            409,
            {
                "error": {
                    "code": "OperationNotAllowed",
                    "message": "Operation is not allowed because there's an in progress scale operation.",
                }
            },
            ThrottledError,
        ),
        (
            400,
            {
                "error": {
                    "code": "SkuNotAvailable",
                    "message": "The requested VM size Standard_NC4as_T4_v3 is currently not available in location 'eastus'.",
                }
            },
            InsufficientCapacityError,
        ),
        (
            200,
            {
                "error": {
                    "code": "ResourceOperationFailure",
                    "message": "The resource operation completed with terminal provisioning state 'Failed'.",
                    "details": [
                        {
                            "code": "OverconstrainedZonalAllocationRequest",
                            "message": "Allocation failed.",
                        }
                    ],
                }
            },
            InsufficientCapacityError,
        ),
        (
            403,
            {
                "error": {
                    "code": "AuthorizationFailed",
                    "message": "The client does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/agentPools/write'.",
                }
            },
            FatalConfigurationError,
        ),
        (
            400,
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "Changing property 'vmSize' is not allowed.",
                }
            },
            CloudError,
        ),
    ],
)
def test_error_mapping_on_recorded_arm_bodies(
    status: int, body: dict[str, Any], kind: type[Exception]
) -> None:
    error = classify_api_error(_recorded(status, body, {"Retry-After": "7"}))
    assert type(error) is kind, error
    if isinstance(error, ThrottledError) and status == 429:
        assert error.retry_after_s == 7.0


def test_failed_operation_bodies() -> None:
    wrapped = {
        "code": "ResourceOperationFailure",
        "message": "x",
        "details": [{"code": "AllocationFailed", "message": "no capacity"}],
    }
    assert failure_kind(error_codes(wrapped)) == (
        "insufficient-capacity",
        "AllocationFailed: no capacity",
    )
    assert failure_kind(error_codes({"code": "InternalError", "message": "boom"})) is None
    assert tag_name("gibbous.dev/cluster-id") == "gibbous.dev_cluster-id"


def test_labels_the_kubelet_may_not_set_stay_off_the_pool(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    """AKS refuses a pool labelled in the kubelet-restricted namespaces (the emulator as
    AKS does, docs/clouds/aks.md): such labels wait for the node to register."""
    emulator, clock, _, _ = world
    aks = provider(world)
    wanted = request("role-0")
    restricted = {"node-role.kubernetes.io/gpu": "", "kubernetes.io/team": "ml"}
    made = aks.create(replace(wanted, labels={**wanted.labels, **restricted}))
    (pool,) = emulator.pools.values()
    assert not set(restricted) & set(pool.properties["nodeLabels"])
    assert pool.properties["nodeLabels"][keys.PLACEMENT] == "bin-pack"
    clock.now += 31
    settle(aks)
    assert aks.get(made.id).state is not InstanceState.TERMINATED


@pytest.mark.parametrize(
    ("plugin", "mode", "configured", "pods"),
    [
        ("azure", "", 0, 30),  # Azure CNI on the node subnet: AKS's default 30
        ("azure", "overlay", 0, 250),  # Azure CNI Overlay: 250
        ("kubenet", "", 0, 110),
        ("azure", "", 50, 50),  # azure.maxPods, sent with the pool
    ],
)
def test_nodes_take_the_network_plugins_max_pods(
    world: tuple[AksEmulator, Clock, str, str], plugin: str, mode: str, configured: int, pods: int
) -> None:
    emulator = world[0]
    emulator.network_plugin, emulator.network_plugin_mode = plugin, mode
    aks = provider(world, max_pods=configured)
    assert {t.max_pods for t in aks.instance_types()} == {pods}
    aks.create(request("pods-0"))
    (pool,) = emulator.pools.values()
    assert pool.properties["maxPods"] == pods  # what the emulated kubelet registers


def test_types_are_offered_in_the_clusters_zones_as_aks_labels_them(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    # The emulated cluster's system pool spans zones 1, 2, 3; AKS labels a zonal node
    # `<region>-<zone>` (cloud-provider-azure, "Use Availability Zones").
    zones = {t.zones for t in provider(world).instance_types()}
    assert zones == {("eastus-1", "eastus-2", "eastus-3")}


def test_a_larger_os_disk_for_the_pods_ephemeral_storage_is_a_pool_of_its_own(
    world: tuple[AksEmulator, Clock, str, str],
) -> None:
    # osDiskSizeGB is fixed at a pool's creation (azurerm: "Changing this forces a new
    # resource to be created"): a node needing 889 GiB gets a pool of that size.
    emulator, _, _, _ = world
    aks = provider(world)
    aks.create(request("plain"))
    aks.create(replace(request("big"), disk_gib=889))
    sizes = sorted(p.properties["osDiskSizeGB"] for p in emulator.pools.values())
    assert sizes == [128, 889]
