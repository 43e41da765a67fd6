"""AKS provider (azure-mgmt-containerservice): agent pools Gibbous creates, one per node
shape, sized by batches of launches; a single VM removed with `deleteMachines`.

Why this unit (docs/decisions.md has the whole argument): VM size, spot priority, zone,
labels and taints are per agent pool and must be on a node when it registers, and a
cluster has at most 100 pools, so nodes of one shape share a pool. AKS names the VMs and
runs one operation on a pool at a time, so launches of a shape gather while an operation
runs and go out together in the next one (a burst of 40 nodes is at most two operations,
never 40); the VMs an operation added are given to its launches in order, found by the
Machines API, and each is removed alone with `deleteMachines`.

Failures arrive inside the long-running operation: `AllocationFailed`,
`ZonalAllocationFailed`, `SkuNotAvailable` and `Overconstrained*` (also inside a
`ResourceOperationFailure`'s details) are stock-outs, a cores-quota `OperationNotAllowed`
is quota; the launches of a failed operation are reported failed by `get` within a poll,
and what the operation left is undone (the pool's count set back to its VMs, or the pool
deleted when it has none). azure-core's retries are off (`retry_total=0`) so a 429 reaches
Gibbous's back-off.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerservice import ContainerServiceClient, models

from gibbous.autoscaler.cloud.akscatalog import AksCatalogFeed, FollowingPoolProvider
from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.sizedpools import Member, PoolView, Shape
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.podcapacity import aks_max_pods
from gibbous.core.settings.options.azure import AzureConfig

log = logging.getLogger("gibbous.autoscaler.aks")

POOL_PREFIX = "gbs"
CLUSTER_TAG = "gibbous.dev_cluster-id"  # Azure tag names may not contain '/'
MAX_POOLS = 100
CLOUD_LABEL_DOMAINS = frozenset(
    {
        "kubernetes.io",
        "node.kubernetes.io",
        "beta.kubernetes.io",
        "topology.kubernetes.io",
        "failure-domain.beta.kubernetes.io",
        "kubernetes.azure.com",
    }
)
PER_NODE_LABELS = frozenset({keys.ASSIGNED_POD_UID})
STOCKOUT_CODES = frozenset(
    {
        "SkuNotAvailable",
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
    }
)
_TAG_INVALID = re.compile(r"[<>%&\\?/]")


def tag_name(key: str) -> str:
    """An Azure tag name for a label key: `/` and the other refused characters as `_`."""
    return _TAG_INVALID.sub("_", key)[:512]


def error_codes(error: Any) -> builtins.list[tuple[str, str]]:
    """(code, message) of an ARM error and of its details, outermost first."""
    out: builtins.list[tuple[str, str]] = []
    stack = [error]
    while stack:
        current = stack.pop(0)
        if current is None:
            continue
        if isinstance(current, Mapping):
            code, message = current.get("code"), current.get("message")
            details = current.get("details") or []
        else:
            code, message = getattr(current, "code", None), getattr(current, "message", None)
            details = getattr(current, "details", None) or []
        if code:
            out.append((str(code), str(message or "")))
        stack.extend(details)
    return out


def failure_kind(codes: builtins.list[tuple[str, str]]) -> tuple[str, str] | None:
    """(FailureKind value, reason) of a failed operation's error, or None when it is no
    capacity or quota failure."""
    for code, message in codes:
        if code in STOCKOUT_CODES:
            return "insufficient-capacity", f"{code}: {message}"
        if code in ("OperationNotAllowed", "QuotaExceeded") and "quota" in message.lower():
            return "quota", f"{code}: {message}"
    return None


@dataclass
class Operation:
    """An ARM long-running operation: its SDK poller, and how to resume polling it from its
    continuation token when a status read was throttled (the poller gives up on a 429,
    which says nothing of the operation itself)."""

    poller: Any
    resume: Callable[[str], Any]

    def done(self) -> bool:
        return bool(self.poller.done())


def classify_api_error(
    error: HttpResponseError, request: LaunchRequest | None = None, zone: str = ""
) -> CloudError:
    """A synchronous ARM refusal as a typed failure."""
    status = error.status_code or 0
    codes = error_codes(error.error) or [("", str(error.message or error))]
    text = "; ".join(f"{c}: {m}" if c else m for c, m in codes)
    instance_type = request.instance_type if request else ""
    category = request.category if request else ""
    if status == 429:
        retry = 2.0
        headers = getattr(error.response, "headers", None) or {}
        with contextlib.suppress(ValueError):
            retry = float(headers.get("Retry-After", retry))
        return ThrottledError(retry, f"AKS: {text}")
    kind = failure_kind(codes)
    if kind is not None and kind[0] == "quota":
        return QuotaExceededError(instance_type, category, f"AKS: {text}")
    if kind is not None:
        return InsufficientCapacityError(instance_type, category, zone, f"AKS: {text}")
    if any(c == "OperationNotAllowed" and "in progress" in m for c, m in codes) or status == 409:
        return ThrottledError(3.0, f"AKS: {text}")
    if status in (401, 403):
        return FatalConfigurationError(
            f"AKS refused the call ({status}): {text}; give Gibbous's identity the "
            "'Azure Kubernetes Service Contributor Role' on the cluster"
        )
    return CloudError(f"AKS ({status}): {text}")


@dataclass
class AksPools:
    """The ARM calls of `SizedPoolProvider` on AKS: agent pools, the Machines API,
    `deleteMachines`; operations are the SDK's LRO pollers."""

    client: Any  # ContainerServiceClient
    resource_group: str
    cluster_name: str
    cluster_id: str
    location: str
    types: Mapping[str, InstanceType]
    config: AzureConfig = field(default_factory=AzureConfig)
    zones: tuple[str, ...] = ()  # AKS zone numbers of the cluster

    def create_only(self, shape: Shape) -> tuple[Any, ...]:
        """OS disk size, max pods and subnet cannot change on an existing AKS pool
        (terraform's azurerm node pool: "Changing this forces a new resource to be
        created"), nor, we take it, the GPU driver: in the pool's name, a changed value
        is a new pool, not a PUT AKS refuses."""
        instance_type = self.types.get(shape.instance_type)
        gpu = bool(instance_type is not None and instance_type.gpu_count)
        return (
            ("osDiskSizeGB", shape.disk_gib or self.config.os_disk_size_gb),
            ("maxPods", self.config.max_pods),
            ("vnetSubnetID", self.config.vnet_subnet_id),
            ("gpuDriver", self.config.gpu_driver if gpu else ""),
        )

    def zone_name(self, zone: str) -> str:
        return f"{self.location}-{zone}" if zone else ""

    def cloud_zone(self, zone: str) -> str:
        number = zone.rsplit("-", 1)[-1] if zone.startswith(f"{self.location}-") else zone
        return number if number in self.zones else ""

    def default_zone(self) -> str:
        return ""  # a regional pool: AKS spreads its VMs

    def close(self) -> None:
        self.client.close()

    def agent_pool(self, shape: Shape, count: int) -> Any:
        instance_type = self.types.get(shape.instance_type)
        properties: dict[str, Any] = {
            "count": count,
            "vm_size": shape.instance_type,
            "mode": "User",
            "type_properties_type": "VirtualMachineScaleSets",
            "os_type": "Linux",
            "os_disk_size_gb": shape.disk_gib or self.config.os_disk_size_gb,
            "node_labels": dict(shape.labels),
            "node_taints": [f"{k}={v}:{e}" for k, v, e in shape.taints],
            "tags": {
                CLUSTER_TAG: self.cluster_id,
                **{tag_name(k): v for k, v in shape.labels[:40]},
            },
        }
        if shape.zone:
            properties["availability_zones"] = [shape.zone]
        if shape.spot:
            properties["scale_set_priority"] = "Spot"
            properties["scale_set_eviction_policy"] = "Delete"
            properties["spot_max_price"] = -1
        if instance_type is not None and instance_type.gpu_count:
            driver = "Install" if self.config.gpu_driver == "install" else "None"
            properties["gpu_profile"] = models.GPUProfile(driver=driver)
        if self.config.artifact_streaming:
            properties["artifact_streaming_profile"] = models.AgentPoolArtifactStreamingProfile(
                enabled=True
            )
        if self.config.vnet_subnet_id:
            properties["vnet_subnet_id"] = self.config.vnet_subnet_id
        if self.config.max_pods:
            properties["max_pods"] = self.config.max_pods
        return models.AgentPool(
            properties=models.AgentPoolManagedClusterAgentPoolProfileProperties(**properties)
        )

    def _view(self, pool: Any) -> PoolView:
        properties = pool.properties
        members: builtins.list[Member] = []
        try:
            machines = builtins.list(
                self.client.machines.list(self.resource_group, self.cluster_name, pool.name)
            )
        except ResourceNotFoundError:
            machines = []
        except HttpResponseError as error:
            raise classify_api_error(error) from None
        for machine in machines:
            resource_id = str(machine.properties.resource_id if machine.properties else "")
            members.append(Member(machine.name, f"azure://{resource_id}"))
        zones = builtins.list(properties.availability_zones or [])
        state = str(properties.provisioning_state or "")
        return PoolView(
            name=pool.name,
            shape=Shape(
                instance_type=str(properties.vm_size),
                spot=properties.scale_set_priority == "Spot",
                zone=str(zones[0]) if zones else "",
                labels=tuple(sorted((properties.node_labels or {}).items())),
                taints=(),
            ),
            count=int(properties.count or 0),
            busy=state in ("Creating", "Scaling", "Updating", "Deleting", "Upgrading"),
            failed=state == "Failed",
            members=tuple(sorted(members, key=lambda m: m.name)),
        )

    def _ours(self, pool: Any) -> bool:
        tags = (pool.properties.tags if pool.properties else None) or {}
        return bool(pool.name.startswith(POOL_PREFIX) and tags.get(CLUSTER_TAG) == self.cluster_id)

    def pools(self) -> builtins.list[PoolView]:
        try:
            found = builtins.list(
                self.client.agent_pools.list(self.resource_group, self.cluster_name)
            )
        except HttpResponseError as error:
            raise classify_api_error(error) from None
        return [self._view(p) for p in found if self._ours(p)]

    def pool(self, name: str) -> PoolView | None:
        try:
            found = self.client.agent_pools.get(self.resource_group, self.cluster_name, name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            raise classify_api_error(error) from None
        return self._view(found) if self._ours(found) else None

    def resize(self, shape: Shape, name: str, count: int, existing: PoolView | None) -> Any:
        try:
            if existing is None:
                body = self.agent_pool(shape, count)
            else:
                # The pool as AKS has it, the count changed and nothing else: a PUT replaces
                # the properties it carries, and the pool as first asked lacks what AKS
                # added (a spot pool's scalesetpriority label, which AKS then strips from
                # the pool and its nodes: Azure/AKS#3152).
                body = self.client.agent_pools.get(self.resource_group, self.cluster_name, name)
                body.properties.count = count
            pools, group, cluster = self.client.agent_pools, self.resource_group, self.cluster_name
            return Operation(
                pools.begin_create_or_update(group, cluster, name, body, polling_interval=1),
                lambda token: pools.begin_create_or_update(
                    group, cluster, name, body, polling_interval=1, continuation_token=token
                ),
            )
        except ResourceNotFoundError:
            raise ThrottledError(1.0, f"AKS: agent pool {name} is gone; asked again") from None
        except HttpResponseError as error:
            raise classify_api_error(error, zone=self.zone_name(shape.zone)) from None

    def finished(self, operation: Any) -> tuple[bool, tuple[str, str] | None]:
        if not operation.done():
            return False, None
        try:
            operation.poller.result()
        except HttpResponseError as error:
            if error.status_code == 429:
                log.info("AKS: reading an operation's status was throttled; polling it again")
                operation.poller = operation.resume(operation.poller.continuation_token())
                return False, None
            codes = error_codes(error.error) or [("", str(error.message))]
            # No capacity or quota code (a bootstrap extension failing, an internal error):
            # not a stock-out, so the VM size is not backed off as out of capacity.
            return True, failure_kind(codes) or (
                "provider-error",
                "; ".join(f"{c}: {m}" for c, m in codes),
            )
        return True, None

    def remove(self, pool: PoolView, member: Member) -> Any:
        pools, group, cluster = self.client.agent_pools, self.resource_group, self.cluster_name
        machines = models.AgentPoolDeleteMachinesParameter(machine_names=[member.name])
        try:
            return Operation(
                pools.begin_delete_machines(
                    group, cluster, pool.name, machines, polling_interval=1
                ),
                lambda token: pools.begin_delete_machines(
                    group,
                    cluster,
                    pool.name,
                    machines,
                    polling_interval=1,
                    continuation_token=token,
                ),
            )
        except HttpResponseError as error:
            raise classify_api_error(error) from None

    def delete_pool(self, pool: PoolView) -> Any:
        pools, group, cluster = self.client.agent_pools, self.resource_group, self.cluster_name
        try:
            return Operation(
                pools.begin_delete(group, cluster, pool.name, polling_interval=1),
                lambda token: pools.begin_delete(
                    group, cluster, pool.name, polling_interval=1, continuation_token=token
                ),
            )
        except HttpResponseError as error:
            raise classify_api_error(error) from None


class StaticToken:
    """A credential for the emulator (ARM takes any bearer token there)."""

    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        return AccessToken("emulator", int(time.time()) + 3600)


def sdk_client(subscription_id: str, endpoint: str = "", ca_file: str = "") -> Any:
    """The ARM client: retries off (a 429 or a failure reaches Gibbous's back-off), pointed
    at `endpoint` (the emulator, trusting `ca_file`) when given, else at Azure with
    DefaultAzureCredential (workload identity, managed identity, ...)."""
    if endpoint:
        return ContainerServiceClient(
            StaticToken(),
            subscription_id,
            base_url=endpoint,
            connection_verify=ca_file or True,
            retry_total=0,
        )
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    return ContainerServiceClient(DefaultAzureCredential(), subscription_id, retry_total=0)


def discover(
    *,
    client: Any,
    config: AzureConfig,
    cluster_id: str,
    region: str,
    catalog: builtins.list[InstanceType],
    clock: Callable[[], float],
    empty_pool_s: float,
    catalog_for_location: Callable[[str], builtins.list[InstanceType]] | None = None,
    catalog_feed_for: Callable[[str], AksCatalogFeed] | None = None,
) -> FollowingPoolProvider:
    """The provider for this cluster: the cluster is read once for its location and zones.
    `catalog_for_location`, given when no region was configured, replaces `catalog` (the
    default region's) with the catalog of the cluster's own location; `catalog_feed_for`,
    given without `--catalog FILE`, starts the live catalog of that location (see
    `akscatalog`), which the provider then follows."""
    name = config.cluster_name or cluster_id
    if not config.resource_group:
        raise FatalConfigurationError("set azure.resourceGroup (the AKS cluster's resource group)")
    try:
        cluster = client.managed_clusters.get(config.resource_group, name)
    except ResourceNotFoundError:
        raise FatalConfigurationError(
            f"AKS cluster {config.resource_group}/{name} not found (set azure.resourceGroup and azure.clusterName)"
        ) from None
    except HttpResponseError as error:
        raise FatalConfigurationError(f"reading AKS cluster {name}: {error.message}") from None
    profiles = (cluster.properties.agent_pool_profiles if cluster.properties else None) or []
    zones = tuple(sorted({str(z) for p in profiles for z in (p.availability_zones or [])}))
    location = str(cluster.location or region)
    if catalog_for_location is not None and location != region:
        log.info("the AKS cluster is in %s: using that region's catalog", location)
        catalog = catalog_for_location(location)
    # Planning counts the pod slots the kubelet will register: the network plugin's.
    network = cluster.properties.network_profile if cluster.properties else None
    plugin, mode = (getattr(network, a, None) for a in ("network_plugin", "network_plugin_mode"))
    # The SDK's enums are str subclasses whose str() is the member's name: their value.
    max_pods = aks_max_pods(
        str(getattr(plugin, "value", plugin) or ""),
        str(getattr(mode, "value", mode) or ""),
        config.max_pods,
    )
    # Nodes go in the cluster's zones, labelled `<location>-<zone>` as AKS labels them; a
    # cluster without zones makes regional pools, whose nodes carry no zone to plan for.
    zone_labels = tuple(f"{location}-{z}" for z in zones)

    def adapt(found: builtins.list[InstanceType]) -> builtins.list[InstanceType]:
        return for_cluster(found, zone_labels, max_pods)

    feed = catalog_feed_for(location) if catalog_feed_for is not None else None
    version = 0
    if feed is not None:
        version, catalog = feed.current()
    catalog = adapt(catalog)
    types = {t.name: t for t in catalog}
    pools = AksPools(
        client, config.resource_group, name, cluster_id, location, types, config, zones
    )

    def on_types(found: dict[str, InstanceType]) -> None:
        pools.types = found

    return FollowingPoolProvider(
        cloud=pools,
        catalog=catalog,
        clock=clock,
        cluster_id=cluster_id,
        name="azure",
        pool_prefix=POOL_PREFIX,
        pool_digits=9,  # AKS pool names: at most 12 characters
        cloud_label_keys=CLOUD_LABEL_DOMAINS,
        late_label_keys=PER_NODE_LABELS,
        max_pools=MAX_POOLS,
        empty_pool_s=empty_pool_s,
        operation_polls_per_s=float("inf"),  # the SDK's pollers read, not `finished`
        feed=feed,
        adapt=adapt,
        on_types=on_types,
        catalog_version=version,
    )


def for_cluster(
    types: builtins.list[InstanceType], zone_labels: tuple[str, ...], max_pods: int
) -> builtins.list[InstanceType]:
    """The sizes as this cluster launches them: in the cluster's zones the size is offered
    in (all of them when the catalog names none; a size in none of them left out), with
    the network plugin's max pods."""
    fit = []
    for t in types:
        zones = tuple(z for z in zone_labels if not t.zones or z in t.zones)
        if zone_labels and not zones:
            continue
        fit.append(dataclasses.replace(t, max_pods=max_pods, zones=zones))
    return fit
