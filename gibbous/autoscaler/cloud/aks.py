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
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerservice import ContainerServiceClient, models

from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    Instance,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.settings.config import AzureConfig

log = logging.getLogger("gibbous.autoscaler.aks")

POOL_PREFIX = "gbs"
CLUSTER_TAG = "gibbous.dev_cluster-id"  # Azure tag names may not contain '/'
MAX_POOLS = 100
PENDING_PREFIX = "aks-pending/"
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


@dataclass(frozen=True)
class AksShape:
    vm_size: str
    spot: bool
    zone: str  # AKS's zone number, "" for a regional pool
    labels: tuple[tuple[str, str], ...]
    taints: tuple[str, ...]  # key=value:Effect

    def pool_name(self, cluster_id: str) -> str:
        digest = hashlib.sha256(repr((cluster_id, self)).encode()).hexdigest()[:9]
        return f"{POOL_PREFIX}{digest}"


@dataclass
class Ticket:
    """A launch waiting for, or carried by, an operation on its pool."""

    token: str
    zone: str
    requested_at: float
    labels: Mapping[str, str]


@dataclass
class PoolState:
    name: str
    shape: AksShape
    queued: builtins.list[Ticket] = field(default_factory=list)  # not asked for yet
    flying: builtins.list[Ticket] = field(default_factory=list)  # in the operation running
    poller: Any = None
    before: frozenset[str] = frozenset()  # its machines when the operation started
    undoing: bool = False


@dataclass
class AksCloudProvider:
    client: Any  # ContainerServiceClient
    catalog: builtins.list[InstanceType]
    clock: Callable[[], float]
    resource_group: str
    cluster_name: str
    cluster_id: str
    location: str
    config: AzureConfig = field(default_factory=AzureConfig)
    zones: tuple[str, ...] = ()  # AKS zone numbers of the cluster
    empty_pool_s: float = 600.0
    name: str = "azure"
    launch_concurrency: int = 8
    cloud_label_keys: frozenset[str] = CLOUD_LABEL_DOMAINS
    late_label_keys: frozenset[str] = PER_NODE_LABELS

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.types = {t.name: t for t in self.catalog}
        self.states: dict[str, PoolState] = {}
        self.tokens: dict[str, str] = {}  # machine name -> launch token
        self.assigned: dict[str, str] = {}  # launch token -> machine name
        self.failed: dict[str, Instance] = {}  # launch token -> failure
        self.first_seen: dict[str, float] = {}
        self.empty_since: dict[str, float] = {}
        self.pools_at_start: builtins.list[Any] | None = None

    def instance_types(self) -> builtins.list[InstanceType]:
        return builtins.list(self.catalog)

    # --- shapes --------------------------------------------------------------------------------

    def _zone_number(self, zone: str) -> str:
        number = zone.rsplit("-", 1)[-1] if zone.startswith(f"{self.location}-") else zone
        return number if number in self.zones else ""

    def shape(self, request: LaunchRequest) -> AksShape:
        if request.instance_type not in self.types:
            raise CloudError(f"{request.instance_type} is not in the Azure catalog")
        zone = next((self._zone_number(z) for z in request.zones if self._zone_number(z)), "")
        labels = tuple(
            sorted(
                (k, v)
                for k, v in request.labels.items()
                if k not in PER_NODE_LABELS
                and k not in CLOUD_LABEL_DOMAINS
                and k.partition("/")[0] not in CLOUD_LABEL_DOMAINS
            )
        )
        taints = tuple(
            sorted(
                f"{t.get('key')}={t.get('value') or ''}:{t.get('effect')}" for t in request.taints
            )
        )
        return AksShape(request.instance_type, request.category == "spot", zone, labels, taints)

    def agent_pool(self, shape: AksShape, count: int) -> Any:
        instance_type = self.types.get(shape.vm_size)
        properties: dict[str, Any] = {
            "count": count,
            "vm_size": shape.vm_size,
            "mode": "User",
            "type_properties_type": "VirtualMachineScaleSets",
            "os_type": "Linux",
            "os_disk_size_gb": self.config.os_disk_size_gb,
            "node_labels": dict(shape.labels),
            "node_taints": builtins.list(shape.taints),
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

    # --- the pools as AKS has them ----------------------------------------------------------------

    def _pools(self) -> builtins.list[Any]:
        try:
            pools = builtins.list(
                self.client.agent_pools.list(self.resource_group, self.cluster_name)
            )
        except HttpResponseError as error:
            raise classify_api_error(error) from None
        return pools

    def _ours(self, pool: Any) -> bool:
        tags = (pool.properties.tags if pool.properties else None) or {}
        return bool(pool.name.startswith(POOL_PREFIX) and tags.get(CLUSTER_TAG) == self.cluster_id)

    def _pool(self, name: str) -> Any:
        try:
            return self.client.agent_pools.get(self.resource_group, self.cluster_name, name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            raise classify_api_error(error) from None

    def _machines(self, name: str) -> builtins.list[Any]:
        try:
            return builtins.list(
                self.client.machines.list(self.resource_group, self.cluster_name, name)
            )
        except ResourceNotFoundError:
            return []
        except HttpResponseError as error:
            raise classify_api_error(error) from None

    # --- create -----------------------------------------------------------------------------------

    def create(self, request: LaunchRequest) -> Instance:
        shape = self.shape(request)
        pool_name = shape.pool_name(self.cluster_id)
        with self.lock:
            if request.token in self.failed:
                return self.failed[request.token]
            if request.token in self.assigned:
                return self.get(self._machine_id_of(request.token))
            state = self.states.setdefault(pool_name, PoolState(pool_name, shape))
            if not any(t.token == request.token for t in (*state.queued, *state.flying)):
                state.queued.append(
                    Ticket(request.token, shape.zone, self.clock(), dict(request.labels))
                )
            ticket = next(t for t in (*state.queued, *state.flying) if t.token == request.token)
            self._flush(state, request)
            if request.token in self.failed:
                failure = self.failed.pop(request.token)
                kind = failure.failure_kind
                if kind == "quota":
                    raise QuotaExceededError(
                        request.instance_type, request.category, failure.failure_reason
                    )
                raise InsufficientCapacityError(
                    request.instance_type,
                    request.category,
                    self._zone_name(shape.zone),
                    failure.failure_reason,
                )
        return self._pending(state, ticket)

    def _flush(self, state: PoolState, request: LaunchRequest | None = None) -> None:
        """Ask AKS for the queued launches of a pool, if no operation runs on it."""
        if state.poller is not None or not state.queued:
            return
        pool = self._pool(state.name)
        if pool is None and len(self._pools()) >= MAX_POOLS:
            error = QuotaExceededError(
                state.shape.vm_size,
                "spot" if state.shape.spot else "on-demand",
                f"the cluster has {MAX_POOLS} agent pools, AKS's limit",
            )
            self._fail(state.queued, "quota", str(error))
            state.queued = []
            return
        machines = [m.name for m in self._machines(state.name)] if pool is not None else []
        batch, state.queued = state.queued, []
        try:
            poller = self.client.agent_pools.begin_create_or_update(
                self.resource_group,
                self.cluster_name,
                state.name,
                self.agent_pool(state.shape, len(machines) + len(batch)),
                polling_interval=1,
            )
        except HttpResponseError as error:
            failure = classify_api_error(error, request, self._zone_name(state.shape.zone))
            if isinstance(failure, ThrottledError):
                state.queued = batch + state.queued  # asked again at the next poll
                log.info("agent pool %s: %s; launches kept for the next try", state.name, failure)
                return
            kind = "quota" if isinstance(failure, QuotaExceededError) else "insufficient-capacity"
            if isinstance(failure, InsufficientCapacityError | QuotaExceededError):
                self._fail(batch, kind, str(failure))
                return
            state.queued = batch + state.queued
            raise failure from None
        state.poller, state.flying, state.before = poller, batch, frozenset(machines)
        log.info(
            "%s agent pool %s (%s%s) to %d for %d launch(es)",
            "scaling" if pool is not None else "creating",
            state.name,
            state.shape.vm_size,
            ", spot" if state.shape.spot else "",
            len(machines) + len(batch),
            len(batch),
        )

    def _fail(self, tickets: builtins.list[Ticket], kind: str, reason: str) -> None:
        for ticket in tickets:
            self.failed[ticket.token] = Instance(
                id=f"{PENDING_PREFIX}{ticket.token}",
                token=ticket.token,
                cluster_id=self.cluster_id,
                instance_type="",
                category="",
                zone=self._zone_name(ticket.zone),
                state=InstanceState.TERMINATED,
                created_at=ticket.requested_at,
                failure_kind=kind,
                failure_reason=reason,
            )

    def _zone_name(self, zone: str) -> str:
        return f"{self.location}-{zone}" if zone else ""

    def _pending(self, state: PoolState, ticket: Ticket) -> Instance:
        return Instance(
            id=f"{PENDING_PREFIX}{ticket.token}",
            token=ticket.token,
            cluster_id=self.cluster_id,
            instance_type=state.shape.vm_size,
            category="spot" if state.shape.spot else "on-demand",
            zone=self._zone_name(ticket.zone),
            state=InstanceState.PENDING,
            created_at=ticket.requested_at,
            labels=dict(ticket.labels),
        )

    # --- operations in flight -----------------------------------------------------------------------

    def advance(self) -> None:
        """Finish the operations that are done: their machines go to their launches, or
        their launches fail and what they left is undone; then ask for what waits."""
        with self.lock:
            for state in builtins.list(self.states.values()):
                if state.poller is not None and state.poller.done():
                    self._finish(state)
                if state.poller is None and state.queued:
                    try:
                        self._flush(state)
                    except CloudError as error:
                        log.warning("agent pool %s: %s", state.name, error)

    def _finish(self, state: PoolState) -> None:
        poller, flying, undoing = state.poller, state.flying, state.undoing
        state.poller, state.flying, state.undoing = None, [], False
        try:
            poller.result()
        except HttpResponseError as error:
            codes = error_codes(error.error) or [("", str(error.message))]
            kind, reason = failure_kind(codes) or (
                "insufficient-capacity",
                "; ".join(f"{c}: {m}" for c, m in codes),
            )
            if undoing:
                log.warning("undoing on agent pool %s failed: %s", state.name, reason)
                return
            self._fail(flying, kind, reason)
            log.warning("agent pool %s: the operation failed: %s", state.name, reason)
            self._undo(state)
            return
        if undoing:
            return
        machines = sorted(
            (m for m in self._machines(state.name) if m.name not in state.before),
            key=lambda m: m.name,
        )
        for ticket, machine in zip(flying, machines, strict=False):
            self.tokens[machine.name] = ticket.token
            self.assigned[ticket.token] = machine.name
            self.first_seen.setdefault(machine.name, ticket.requested_at)
        for ticket in flying[len(machines) :]:
            self._fail([ticket], "insufficient-capacity", f"agent pool {state.name} did not grow")

    def _undo(self, state: PoolState) -> None:
        """Set a failed pool back: its count to the VMs it has, or the pool deleted."""
        machines = self._machines(state.name)
        try:
            if machines:
                state.poller = self.client.agent_pools.begin_create_or_update(
                    self.resource_group,
                    self.cluster_name,
                    state.name,
                    self.agent_pool(state.shape, len(machines)),
                    polling_interval=1,
                )
            else:
                state.poller = self.client.agent_pools.begin_delete(
                    self.resource_group, self.cluster_name, state.name, polling_interval=1
                )
            state.undoing = True
        except HttpResponseError as error:
            log.warning(
                "undoing the failed agent pool %s: %s; will retry", state.name, error.message
            )

    # --- the provider interface ---------------------------------------------------------------------

    def _machine_id_of(self, token: str) -> str:
        return f"{PENDING_PREFIX}{token}"

    def _instance(self, pool: Any, machine: Any) -> Instance:
        properties = pool.properties
        resource_id = str(machine.properties.resource_id if machine.properties else "")
        zones = builtins.list(machine.zones or [])
        labels = dict(properties.node_labels or {})
        return Instance(
            id=f"azure://{resource_id}",
            token=self.tokens.get(machine.name, f"aks-{machine.name}"),
            cluster_id=self.cluster_id,
            instance_type=str(properties.vm_size),
            category="spot" if properties.scale_set_priority == "Spot" else "on-demand",
            zone=self._zone_name(zones[0]) if zones else "",
            state=InstanceState.RUNNING,
            created_at=self.first_seen.setdefault(machine.name, self.clock()),
            node_name=machine.name,
            labels=labels,
        )

    def get(self, instance_id: str) -> Instance:
        self.advance()
        with self.lock:
            if instance_id.startswith(PENDING_PREFIX):
                token = instance_id[len(PENDING_PREFIX) :]
                if token in self.failed:
                    return self.failed[token]
                for state in self.states.values():
                    for ticket in (*state.queued, *state.flying):
                        if ticket.token == token:
                            return self._pending(state, ticket)
                if token.startswith("slot-"):
                    raise InstanceNotFoundError(instance_id)  # the listing says while it runs
                machine = self.assigned.get(token)
                if machine is None:
                    raise InstanceNotFoundError(instance_id)
                instance_id = self._find_id(machine)
        for pool in self._pools():
            if not self._ours(pool):
                continue
            for machine in self._machines(pool.name):
                instance = self._instance(pool, machine)
                if instance_id in {instance.id, machine.name}:
                    return instance
        raise InstanceNotFoundError(instance_id)

    def _find_id(self, machine_name: str) -> str:
        for pool in self._pools():
            if self._ours(pool):
                for machine in self._machines(pool.name):
                    if machine.name == machine_name:
                        return self._instance(pool, machine).id
        raise InstanceNotFoundError(machine_name)

    def list(self, cluster_id: str) -> builtins.list[Instance]:
        self.advance()
        now = self.clock()
        out: builtins.list[Instance] = []
        for pool in self._pools():
            if not self._ours(pool):
                continue
            machines = self._machines(pool.name)
            out.extend(self._instance(pool, m) for m in machines)
            with self.lock:
                state = self.states.get(pool.name)
                tickets = [*state.queued, *state.flying] if state else []
                busy = bool(state and state.poller is not None)
            out.extend(self._pending(state, t) for t in tickets if state is not None)
            slots = self._slots(pool, len(machines)) if not busy else []
            out.extend(slots)
            self._collect_empty(pool, len(machines) + len(tickets) + len(slots), busy, now)
        return out

    def _slots(self, pool: Any, machines: int) -> builtins.list[Instance]:
        """VMs an operation this process did not start is adding (a restart lost its
        launches): launches in flight, so the planner counts them and launches nothing
        twice; when the VMs come, they are adopted by name."""
        properties = pool.properties
        if str(properties.provisioning_state or "") not in ("Creating", "Scaling"):
            return []
        zones = builtins.list(properties.availability_zones or [])
        return [
            Instance(
                id=f"{PENDING_PREFIX}slot-{pool.name}-{index}",
                token=f"aks-slot-{pool.name}-{index}",
                cluster_id=self.cluster_id,
                instance_type=str(properties.vm_size),
                category="spot" if properties.scale_set_priority == "Spot" else "on-demand",
                zone=self._zone_name(str(zones[0])) if zones else "",
                state=InstanceState.PENDING,
                created_at=self.first_seen.setdefault(f"slot-{pool.name}-{index}", self.clock()),
                labels=dict(properties.node_labels or {}),
            )
            for index in range(max(0, int(properties.count or 0) - machines))
        ]

    def _collect_empty(self, pool: Any, members: int, busy: bool, now: float) -> None:
        state_name = str(pool.properties.provisioning_state or "")
        if members or busy or state_name not in ("Succeeded", "Failed"):
            self.empty_since.pop(pool.name, None)
            return
        since = self.empty_since.setdefault(pool.name, now)
        if now - since < self.empty_pool_s:
            return
        try:
            self.client.agent_pools.begin_delete(
                self.resource_group, self.cluster_name, pool.name, polling_interval=1
            )
        except HttpResponseError as error:
            log.info("deleting empty agent pool %s: %s; will retry", pool.name, error.message)
            return
        log.info("agent pool %s has been empty for %.0fs; deleting it", pool.name, now - since)
        self.empty_since.pop(pool.name, None)
        with self.lock:
            self.states.pop(pool.name, None)

    def delete(self, instance_id: str) -> None:
        with self.lock:
            if instance_id.startswith(PENDING_PREFIX):
                token = instance_id[len(PENDING_PREFIX) :]
                if self.failed.pop(token, None) is not None or token.startswith("slot-"):
                    return  # nothing to remove: its operation failed, or is not ours to stop
                for state in self.states.values():
                    for ticket in builtins.list(state.queued):
                        if ticket.token == token:
                            state.queued.remove(ticket)
                            return
                if token not in self.assigned:
                    raise InstanceNotFoundError(instance_id)
                instance_id = self.assigned[token]
        for pool in self._pools():
            if not self._ours(pool):
                continue
            for machine in self._machines(pool.name):
                if instance_id not in {machine.name, self._instance(pool, machine).id}:
                    continue
                try:
                    self.client.agent_pools.begin_delete_machines(
                        self.resource_group,
                        self.cluster_name,
                        pool.name,
                        models.AgentPoolDeleteMachinesParameter(machine_names=[machine.name]),
                        polling_interval=1,
                    )
                except HttpResponseError as error:
                    raise classify_api_error(error) from None
                log.info("deleting VM %s of agent pool %s", machine.name, pool.name)
                return
        raise InstanceNotFoundError(instance_id)


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
) -> AksCloudProvider:
    """The provider for this cluster: the cluster is read once for its location and zones."""
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
    return AksCloudProvider(
        client=client,
        catalog=catalog,
        clock=clock,
        resource_group=config.resource_group,
        cluster_name=name,
        cluster_id=cluster_id,
        location=str(cluster.location or region),
        config=config,
        zones=zones,
        empty_pool_s=empty_pool_s,
    )
