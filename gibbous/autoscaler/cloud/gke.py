"""GKE provider (google-cloud-container, google-cloud-compute): node pools Gibbous creates,
one per node shape, sized node by node through their managed instance groups.

Why this unit (docs/decisions.md has the whole argument): labels, taints, spot and GPU
time-sharing are fixed per node pool at creation and must be on a node when it registers,
so nodes of one shape share a pool; GKE runs few node-pool operations on a cluster at a
time, so a pool is made once per shape (with no nodes) and every node after that is a
Compute `instanceGroupManagers.createInstances` on the pool's MIG, with a name Gibbous
chooses (cluster-autoscaler does the same). A burst of 40 nodes of one shape is one
pool creation and one createInstances call, not 40 pool operations in a row; each node
is still an instance of its own, so one node is removed with `deleteInstances`, and its
name (derived from the launch token) lets a restarted autoscaler find it.

Failures arrive late on GKE: a pool creation fails inside its operation
(`GCE_STOCKOUT`, `GCE_QUOTA_EXCEEDED`), an instance of a MIG stays CREATING with
`ZONE_RESOURCE_POOL_EXHAUSTED` or a quota code in its last attempt while the MIG retries
for ever. `get` reports both as a terminated launch with its kind, and `delete` undoes
what is left (the instance is deleted from the MIG; a failed pool is deleted). Empty pools
Gibbous created are deleted once empty for `empty_pool_s`; pools without its labels, never.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import google.auth
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1, container_v1

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
from gibbous.autoscaler.cloud.gkecatalog import GcpCatalogFeed
from gibbous.autoscaler.cloud.gkefailures import (
    classify_api_error,
    failure_of,
    operation_failure,
)
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType, name_from_label
from gibbous.core.choice.machinelabels import gke_accelerator
from gibbous.core.settings.kubeletlabels import kubelet_may_set
from gibbous.core.settings.options.gcp import GcpConfig

log = logging.getLogger("gibbous.autoscaler.gke")

POOL_PREFIX = "gbs-"
INSTANCE_PREFIX = "gbs-"
CLUSTER_LABEL = "gibbous-cluster-id"  # a GCE resource label: no '/'
# Label domains GKE, its kubelet and its cloud controller write themselves (with their own
# values: instance-type is the machine type there) or that a node pool may not carry.
CLOUD_LABEL_DOMAINS = frozenset(
    {
        "kubernetes.io",
        "node.kubernetes.io",
        "beta.kubernetes.io",
        "topology.kubernetes.io",
        "failure-domain.beta.kubernetes.io",
        "cloud.google.com",
    }
)
PER_NODE_LABELS = frozenset({keys.ASSIGNED_POD_UID})
POLL_CACHE_S = 1.0  # a MIG's instance list is read at most once a second
DRIVER_VERSIONS = {"default": "DEFAULT", "latest": "LATEST", "disabled": "INSTALLATION_DISABLED"}
EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
_GCE_INVALID = re.compile(r"[^a-z0-9_-]")


def gce_label(text: str, *, key: bool = False) -> str:
    """A GCE resource label key or value for a Kubernetes one: lower case, `[a-z0-9_-]`
    (`/` and `.` become `_`), at most 63 characters, keys starting with a letter."""
    out = _GCE_INVALID.sub("_", text.lower())[:63]
    if key and not out[:1].isalpha():
        out = ("k" + out)[:63]
    return out


@dataclass(frozen=True)
class PoolShape:
    """What a node pool fixes for all its nodes."""

    catalog_type: str
    machine_type: str
    accelerator: str
    accelerator_count: int
    spot: bool
    zone: str
    labels: tuple[tuple[str, str], ...]
    taints: tuple[tuple[str, str, str], ...]
    # A boot disk larger than gcp.diskSizeGb for the pods' ephemeral storage (0: that one).
    # Fixed at the pool's creation, so it is in the pool's name; left out of the repr so
    # that pools of the configured size keep the names they had.
    disk_gb: int = field(default=0, repr=False)

    def pool_name(self, cluster_id: str) -> str:
        key = repr((cluster_id, self)) + (f"/disk={self.disk_gb}" if self.disk_gb else "")
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"{POOL_PREFIX}{digest}"


def instance_name(token: str) -> str:
    """The VM a launch asks for, named from its token (idempotent, found again on restart)."""
    return INSTANCE_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:24]


@dataclass
class Waiting:
    name: str
    token: str
    zone: str
    requested_at: float
    labels: Mapping[str, str]


@dataclass
class GkeCloudProvider:
    container: Any  # container_v1.ClusterManagerClient
    compute: Any  # compute_v1.InstanceGroupManagersClient
    catalog: builtins.list[InstanceType]
    clock: Callable[[], float]
    project: str
    location: str
    cluster_name: str
    cluster_id: str
    config: GcpConfig = field(default_factory=GcpConfig)
    zones: tuple[str, ...] = ()
    empty_pool_s: float = 600.0
    max_pods: int = 110  # the cluster's defaultMaxPodsConstraint
    name: str = "gcp"
    launch_concurrency: int = 8
    cloud_label_keys: frozenset[str] = CLOUD_LABEL_DOMAINS
    late_label_keys: frozenset[str] = PER_NODE_LABELS
    # The catalog from Google's APIs (`gkecatalog`), followed as it is refreshed; None:
    # `catalog` as given (--catalog FILE).
    catalog_feed: GcpCatalogFeed | None = None
    catalog_version: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.types = {t.name: t for t in self.catalog}
        self.parent = (
            f"projects/{self.project}/locations/{self.location}/clusters/{self.cluster_name}"
        )
        self.pools: dict[str, Any] = {}  # name -> NodePool, as last read
        self.pools_read_at = -float("inf")
        self.waiting: dict[str, builtins.list[Waiting]] = {}  # pool -> launches waiting for it
        self.operations: dict[str, str] = {}  # pool -> its creation operation
        self.failed: dict[str, Instance] = {}  # instance name -> failure (pool operation)
        self.doomed: set[str] = set()  # failed pools to delete
        self.tokens: dict[str, str] = {}  # instance name -> launch token
        self.first_seen: dict[str, float] = {}
        self.managed: dict[str, tuple[float, builtins.list[Any]]] = {}  # mig url -> (read at, list)
        self.empty_since: dict[str, float] = {}
        self.pool_locks: dict[str, threading.Lock] = {}

    # --- catalog ---------------------------------------------------------------------------

    def instance_types(self) -> builtins.list[InstanceType]:
        feed = self.catalog_feed
        if feed is not None:
            version, types = feed.current()
            if version != self.catalog_version:
                self.catalog_version = version
                usable = offered_in(types, self.zones, self.max_pods)
                if usable:
                    self.catalog, self.types = usable, {t.name: t for t in usable}
                else:
                    log.warning("the refreshed GCP catalog has nothing in the cluster's zones")
        return builtins.list(self.catalog)

    def close(self) -> None:
        """Close the SDK clients' connections."""
        self.container.transport.close()
        self.compute.transport.close()

    # --- shapes and pools --------------------------------------------------------------------

    def shape(self, request: LaunchRequest, zone: str) -> PoolShape:
        instance_type = self.types.get(request.instance_type)
        if instance_type is None:
            raise CloudError(f"{request.instance_type} is not in the GKE catalog")
        labels = tuple(
            sorted(
                (k, v)
                for k, v in request.labels.items()
                if not _cloud_key(k) and k not in PER_NODE_LABELS and kubelet_may_set(k)
            )
        )
        taints = tuple(
            sorted(
                (str(t.get("key", "")), str(t.get("value", "") or ""), str(t.get("effect", "")))
                for t in request.taints
            )
        )
        return PoolShape(
            catalog_type=instance_type.name,
            machine_type=instance_type.machine_type,
            accelerator=gke_accelerator(instance_type) if instance_type.gpu_count else "",
            accelerator_count=instance_type.gpu_count,
            spot=request.category == "spot",
            zone=zone,
            labels=labels,
            taints=taints,
            disk_gb=request.disk_gib,
        )

    def node_pool(self, shape: PoolShape, pool_name: str, time_slices: int) -> Any:
        config = container_v1.NodeConfig(
            machine_type=shape.machine_type,
            disk_size_gb=shape.disk_gb or self.config.disk_size_gb,
            disk_type=self.config.disk_type,
            spot=shape.spot,
            labels=dict(shape.labels),
            resource_labels={
                CLUSTER_LABEL: gce_label(self.cluster_id),
                **{gce_label(k, key=True): gce_label(v) for k, v in shape.labels[:60]},
            },
            taints=[
                container_v1.NodeTaint(key=k, value=v, effect=EFFECTS.get(e, "NO_SCHEDULE"))
                for k, v, e in shape.taints
            ],
        )
        if self.config.service_account:
            config.service_account = self.config.service_account
        if self.config.image_streaming:
            config.gcfs_config = container_v1.GcfsConfig(enabled=True)
        if self.config.workload_identity:
            # GKE puts iam.gke.io/gke-metadata-server-enabled=true on such pools' nodes.
            config.workload_metadata_config = container_v1.WorkloadMetadataConfig(
                mode=container_v1.WorkloadMetadataConfig.Mode.GKE_METADATA
            )
        if shape.accelerator:
            accelerator = container_v1.AcceleratorConfig(
                accelerator_type=shape.accelerator,
                accelerator_count=shape.accelerator_count,
                gpu_driver_installation_config=container_v1.GPUDriverInstallationConfig(
                    gpu_driver_version=DRIVER_VERSIONS[self.config.gpu_driver_version]
                ),
            )
            if time_slices > 1:
                accelerator.gpu_sharing_config = container_v1.GPUSharingConfig(
                    gpu_sharing_strategy=container_v1.GPUSharingConfig.GPUSharingStrategy.TIME_SHARING,
                    max_shared_clients_per_gpu=time_slices,
                )
            config.accelerators = [accelerator]
        return container_v1.NodePool(
            name=pool_name,
            initial_node_count=0,
            locations=[shape.zone],
            config=config,
            management=container_v1.NodeManagement(auto_repair=True, auto_upgrade=True),
        )

    def _ours(self, pool: Any) -> bool:
        return bool(
            pool.name.startswith(POOL_PREFIX)
            and pool.config.resource_labels.get(CLUSTER_LABEL) == gce_label(self.cluster_id)
        )

    def _read_pools(self, force: bool = False) -> dict[str, Any]:
        now = self.clock()
        if force or now - self.pools_read_at >= POLL_CACHE_S:
            try:
                reply = self.container.list_node_pools(parent=self.parent)
            except google_errors.GoogleAPICallError as error:
                raise classify_api_error(error) from None
            self.pools = {p.name: p for p in reply.node_pools if self._ours(p)}
            self.pools_read_at = now
        return self.pools

    def _pool(self, name: str) -> Any:
        try:
            pool = self.container.get_node_pool(name=f"{self.parent}/nodePools/{name}")
        except google_errors.NotFound:
            self.pools.pop(name, None)
            return None
        except google_errors.GoogleAPICallError as error:
            raise classify_api_error(error) from None
        self.pools[name] = pool
        return pool

    # --- create --------------------------------------------------------------------------------

    def create(self, request: LaunchRequest) -> Instance:
        zone = self._zone(request)
        shape = self.shape(request, zone)
        pool_name = shape.pool_name(self.cluster_id)
        name = instance_name(request.token)
        with self.lock:
            self.tokens[name] = request.token
            pool_lock = self.pool_locks.setdefault(pool_name, threading.Lock())
        with pool_lock:
            known = self._known(name)
            if known is not None:
                return known
            pool = self.pools.get(pool_name)
            if _status(pool) not in ("RUNNING", "RUNNING_WITH_ERROR"):
                pool = self._pool(pool_name)  # a cached pool that is not running may be gone
            if pool is None:
                self._create_pool(shape, pool_name, request)
                pool = self.pools.get(pool_name)
            status = _status(pool)
            if status in ("ERROR", "STOPPING"):
                if status == "ERROR":
                    self.doomed.add(pool_name)
                raise ThrottledError(5.0, f"node pool {pool_name} is being replaced ({status})")
            waiting = Waiting(name, request.token, zone, self.clock(), dict(request.labels))
            if status in ("RUNNING", "RUNNING_WITH_ERROR"):
                for managed in self._managed(zone, _mig_of(pool, zone)):
                    if managed.name == name:  # asked for before (a retried call, a restart)
                        return self._instance_of(pool, name, zone, managed)
                self._create_instances(pool, [waiting], request)
            else:
                with self.lock:
                    self.waiting.setdefault(pool_name, []).append(waiting)
        return self._pending(waiting, shape)

    def _zone(self, request: LaunchRequest) -> str:
        instance_type = self.types.get(request.instance_type)
        offered = (
            set(instance_type.zones) if instance_type and instance_type.zones else set(self.zones)
        )
        for zone in (*request.zones, *self.zones):
            if zone in offered and (not self.zones or zone in self.zones):
                return zone
        raise InsufficientCapacityError(
            request.instance_type,
            request.category,
            "",
            f"{request.instance_type} is offered in none of the cluster's zones",
        )

    def _create_pool(self, shape: PoolShape, pool_name: str, request: LaunchRequest) -> None:
        creating = sum(
            1 for p in self._read_pools().values() if _status(p) in ("PROVISIONING", "STOPPING")
        )
        if creating >= self.config.operation_limit:
            raise ThrottledError(
                2.0,
                f"{creating} node-pool operations of Gibbous's run on the cluster (gcp.operationLimit)",
            )
        time_slices = max(1, int(request.labels.get(keys.GKE_MAX_SHARED_CLIENTS, "1") or 1))
        node_pool = self.node_pool(shape, pool_name, time_slices)
        try:
            operation = self.container.create_node_pool(parent=self.parent, node_pool=node_pool)
        except google_errors.AlreadyExists:
            self._pool(pool_name)
            return
        except google_errors.GoogleAPICallError as error:
            raise classify_api_error(error, request, shape.zone) from None
        with self.lock:
            self.operations[pool_name] = operation.name
        log.info(
            "creating node pool %s for %s (%s) in %s",
            pool_name,
            shape.catalog_type,
            "spot" if shape.spot else "on-demand",
            shape.zone,
        )
        self._pool(pool_name)

    def _create_instances(
        self, pool: Any, batch: builtins.list[Waiting], request: LaunchRequest | None
    ) -> None:
        by_zone: dict[str, builtins.list[Waiting]] = {}
        for waiting in batch:
            by_zone.setdefault(waiting.zone, []).append(waiting)
        for zone, items in by_zone.items():
            mig = _mig_of(pool, zone)
            body = compute_v1.InstanceGroupManagersCreateInstancesRequest(
                instances=[compute_v1.PerInstanceConfig(name=w.name) for w in items]
            )
            try:
                self.compute.create_instances_unary(
                    project=self.project,
                    zone=zone,
                    instance_group_manager=mig,
                    instance_group_managers_create_instances_request_resource=body,
                )
            except google_errors.Conflict:
                continue  # already asked for (a retried call): the MIG has them
            except google_errors.GoogleAPICallError as error:
                raise classify_api_error(error, request, zone) from None
            with self.lock:
                for waiting in items:
                    self.first_seen.setdefault(waiting.name, waiting.requested_at)
                self.managed.pop(_mig_key(self.project, zone, mig), None)

    def _pending(self, waiting: Waiting, shape: PoolShape) -> Instance:
        return Instance(
            id=waiting.name,
            token=waiting.token,
            cluster_id=self.cluster_id,
            instance_type=shape.catalog_type,
            category="spot" if shape.spot else "on-demand",
            zone=waiting.zone,
            state=InstanceState.PENDING,
            created_at=waiting.requested_at,
            node_name=waiting.name,
            labels=dict(waiting.labels),
        )

    def _known(self, name: str) -> Instance | None:
        """The instance if an earlier call already asked for it."""
        if name in self.failed:
            return self.failed[name]
        for pool_name, items in self.waiting.items():
            for waiting in items:
                if waiting.name == name:
                    pool = self.pools.get(pool_name)
                    return (
                        self._instance_of(pool, waiting.name, waiting.zone, None) if pool else None
                    )
        return None

    # --- launches in flight -----------------------------------------------------------------

    def advance(self) -> None:
        """Launches waiting for their pool go into its MIG once it runs, or fail with the
        operation's reason when its creation failed (the pool is deleted)."""
        with self.lock:
            pending = {name: builtins.list(items) for name, items in self.waiting.items() if items}
        for pool_name, items in pending.items():
            pool = self._pool(pool_name)
            failure: tuple[str, str] | None = None
            operation_name = self.operations.get(pool_name)
            if pool is None:
                failure = (
                    "insufficient-capacity",
                    f"node pool {pool_name} disappeared while being created",
                )
            elif _status(pool) == "ERROR" and operation_name:
                operation = self.container.get_operation(
                    name=f"projects/{self.project}/locations/{self.location}/operations/{operation_name.rsplit('/', 1)[-1]}"
                )
                failure = operation_failure(operation) or (
                    "insufficient-capacity",
                    f"node pool {pool_name} failed",
                )
            elif _status(pool) == "ERROR":
                failure = ("insufficient-capacity", f"node pool {pool_name} is in ERROR")
            if failure is not None:
                kind, reason = failure
                with self.lock:
                    for waiting in items:
                        self.failed[waiting.name] = (
                            dataclasses.replace(
                                self._pending(waiting, self._shape_of(pool, waiting.zone)),
                                state=InstanceState.TERMINATED,
                                failure_kind=kind,
                                failure_reason=reason,
                            )
                            if pool is not None
                            else Instance(
                                id=waiting.name,
                                token=waiting.token,
                                cluster_id=self.cluster_id,
                                instance_type="",
                                category="",
                                zone=waiting.zone,
                                state=InstanceState.TERMINATED,
                                created_at=waiting.requested_at,
                                failure_kind=kind,
                                failure_reason=reason,
                            )
                        )
                    self.waiting.pop(pool_name, None)
                    if pool is not None:
                        self.doomed.add(pool_name)
                log.warning("node pool %s failed: %s", pool_name, reason)
                continue
            if _status(pool) in ("RUNNING", "RUNNING_WITH_ERROR"):
                try:
                    self._create_instances(pool, items, None)
                except ThrottledError as error:
                    log.info("node pool %s: instances not asked for yet (%s)", pool_name, error)
                    continue
                except (InsufficientCapacityError, QuotaExceededError) as error:
                    kind = (
                        "quota"
                        if isinstance(error, QuotaExceededError)
                        else "insufficient-capacity"
                    )
                    with self.lock:
                        for waiting in items:
                            self.failed[waiting.name] = dataclasses.replace(
                                self._pending(waiting, self._shape_of(pool, waiting.zone)),
                                state=InstanceState.TERMINATED,
                                failure_kind=kind,
                                failure_reason=str(error),
                            )
                with self.lock:
                    left = [w for w in self.waiting.get(pool_name, []) if w not in items]
                    self.waiting[pool_name] = left
        self._delete_doomed()

    def _delete_doomed(self) -> None:
        for pool_name in builtins.list(self.doomed):
            try:
                self.container.delete_node_pool(name=f"{self.parent}/nodePools/{pool_name}")
            except google_errors.NotFound:
                pass
            except google_errors.GoogleAPICallError as error:
                log.info("deleting node pool %s: %s; will retry", pool_name, error)
                continue
            log.info("deleting node pool %s", pool_name)
            self.pools.pop(pool_name, None)
            self.doomed.discard(pool_name)
            self.operations.pop(pool_name, None)

    def _managed(self, zone: str, mig: str, fresh: bool = False) -> builtins.list[Any]:
        key = _mig_key(self.project, zone, mig)
        now = self.clock()
        cached = self.managed.get(key)
        if cached is not None and not fresh and now - cached[0] < POLL_CACHE_S:
            return cached[1]
        try:
            found = builtins.list(
                self.compute.list_managed_instances(
                    project=self.project, zone=zone, instance_group_manager=mig
                )
            )
        except google_errors.NotFound:
            found = []
        except google_errors.GoogleAPICallError as error:
            raise classify_api_error(error) from None
        self.managed[key] = (now, found)
        return found

    def _shape_of(self, pool: Any, zone: str) -> PoolShape:
        labels = dict(pool.config.labels)
        catalog_type = (
            name_from_label(labels.get(keys.CATALOG_TYPE, "")) or pool.config.machine_type
        )
        accelerators = builtins.list(pool.config.accelerators)
        return PoolShape(
            catalog_type=catalog_type,
            machine_type=pool.config.machine_type,
            accelerator=accelerators[0].accelerator_type if accelerators else "",
            accelerator_count=int(accelerators[0].accelerator_count) if accelerators else 0,
            spot=bool(pool.config.spot),
            zone=zone,
            labels=tuple(sorted(labels.items())),
            taints=(),
        )

    def _instance_of(self, pool: Any, name: str, zone: str, managed: Any) -> Instance:
        shape = self._shape_of(pool, zone)
        state, failure_kind, reason = InstanceState.PENDING, "", ""
        if managed is not None:
            action = str(managed.current_action)
            status = str(managed.instance_status)
            if action == "DELETING" or status in ("STOPPING", "TERMINATED", "STOPPED"):
                state = InstanceState.TERMINATING
            elif status == "RUNNING" and action == "NONE":
                state = InstanceState.RUNNING
            errors = (
                builtins.list(managed.last_attempt.errors.errors) if managed.last_attempt else []
            )
            if errors and state is InstanceState.PENDING:
                failure_kind, reason = failure_of(errors[0].code, errors[0].message)
        return Instance(
            id=name,
            token=self.tokens.get(name, f"gke-{name}"),
            cluster_id=self.cluster_id,
            instance_type=shape.catalog_type,
            category="spot" if shape.spot else "on-demand",
            zone=zone,
            state=state,
            created_at=self.first_seen.setdefault(name, self.clock()),
            node_name=name,
            labels=dict(shape.labels),
            failure_kind=failure_kind,
            failure_reason=reason,
        )

    def get(self, instance_id: str) -> Instance:
        self.advance()
        with self.lock:
            if instance_id in self.failed:
                return self.failed[instance_id]
            for pool_name, items in self.waiting.items():
                for waiting in items:
                    if waiting.name == instance_id:
                        pool = self.pools.get(pool_name)
                        if pool is not None:
                            return self._instance_of(pool, waiting.name, waiting.zone, None)
        for pool in self._read_pools().values():
            for zone in pool.locations:
                for managed in self._managed(zone, _mig_of(pool, zone)):
                    if managed.name == instance_id:
                        return self._instance_of(pool, instance_id, zone, managed)
        raise InstanceNotFoundError(instance_id)

    def list(self, cluster_id: str) -> builtins.list[Instance]:
        self.advance()
        out: builtins.list[Instance] = []
        now = self.clock()
        pools = self._read_pools(force=True)
        for pool_name, pool in pools.items():
            members = 0
            for zone in pool.locations:
                for managed in self._managed(zone, _mig_of(pool, zone), fresh=True):
                    members += 1
                    instance = self._instance_of(pool, managed.name, zone, managed)
                    if instance.state is not InstanceState.TERMINATED:
                        out.append(instance)
            with self.lock:
                waiting = builtins.list(self.waiting.get(pool_name, []))
            out.extend(self._instance_of(pool, w.name, w.zone, None) for w in waiting)
            self._collect_empty(pool_name, pool, members + len(waiting), now)
        self._delete_doomed()
        return out

    def _collect_empty(self, pool_name: str, pool: Any, members: int, now: float) -> None:
        if members or _status(pool) != "RUNNING":
            self.empty_since.pop(pool_name, None)
            return
        since = self.empty_since.setdefault(pool_name, now)
        if now - since >= self.empty_pool_s:
            log.info("node pool %s has been empty for %.0fs; deleting it", pool_name, now - since)
            self.doomed.add(pool_name)
            self.empty_since.pop(pool_name, None)

    def delete(self, instance_id: str) -> None:
        with self.lock:
            for items in self.waiting.values():
                for waiting in builtins.list(items):
                    if waiting.name == instance_id:
                        items.remove(waiting)
                        return
            if self.failed.pop(instance_id, None) is not None:
                return  # nothing of it exists: its pool is deleted
        for pool in self._read_pools(force=True).values():
            for zone in pool.locations:
                mig = _mig_of(pool, zone)
                if not any(m.name == instance_id for m in self._managed(zone, mig, fresh=True)):
                    continue
                body = compute_v1.InstanceGroupManagersDeleteInstancesRequest(
                    instances=[f"zones/{zone}/instances/{instance_id}"]
                )
                try:
                    self.compute.delete_instances_unary(
                        project=self.project,
                        zone=zone,
                        instance_group_manager=mig,
                        instance_group_managers_delete_instances_request_resource=body,
                    )
                except google_errors.GoogleAPICallError as error:
                    raise classify_api_error(error) from None
                self.managed.pop(_mig_key(self.project, zone, mig), None)
                return
        raise InstanceNotFoundError(instance_id)


def _cloud_key(key: str) -> bool:
    return key in CLOUD_LABEL_DOMAINS or key.partition("/")[0] in CLOUD_LABEL_DOMAINS


def _status(pool: Any) -> str:
    if pool is None:
        return ""
    status = pool.status
    return str(getattr(status, "name", status))


def _mig_of(pool: Any, zone: str) -> str:
    for url in pool.instance_group_urls:
        if f"/zones/{zone}/" in url:
            return str(url.rsplit("/", 1)[-1])
    raise CloudError(f"node pool {pool.name} has no instance group in {zone}")


def _mig_key(project: str, zone: str, mig: str) -> str:
    return f"{project}/{zone}/{mig}"


def offered_in(
    catalog: builtins.list[InstanceType], zones: tuple[str, ...], max_pods: int = 110
) -> builtins.list[InstanceType]:
    """The catalog in the cluster's zones, nodes running its defaultMaxPodsConstraint."""
    out = []
    for instance_type in catalog:
        usable = (
            tuple(z for z in instance_type.zones if z in zones) if instance_type.zones else zones
        )
        if usable:
            out.append(dataclasses.replace(instance_type, zones=usable, max_pods=max_pods))
    return out


def discover(
    *,
    container: Any,
    compute: Any,
    config: GcpConfig,
    cluster_id: str,
    region: str,
    project: str,
    catalog: builtins.list[InstanceType],
    clock: Callable[[], float],
    empty_pool_s: float,
    catalog_feed: GcpCatalogFeed | None = None,
) -> GkeCloudProvider:
    """The provider for this cluster: the cluster is read once for its zones."""
    location = config.location or region
    cluster_name = config.cluster_name or cluster_id
    name = f"projects/{project}/locations/{location}/clusters/{cluster_name}"
    try:
        cluster = container.get_cluster(name=name)
    except google_errors.NotFound:
        raise FatalConfigurationError(
            f"GKE cluster {name} not found (set gcp.project, gcp.location and gcp.clusterName)"
        ) from None
    except google_errors.GoogleAPICallError as error:
        raise FatalConfigurationError(f"reading GKE cluster {name}: {error}") from None
    zones = tuple(cluster.locations) or tuple(z for t in catalog for z in t.zones)
    max_pods = int(cluster.default_max_pods_constraint.max_pods_per_node or 110)
    if config.gpu_driver_version == "disabled":
        log.warning(
            "gcp.gpuDriverVersion disabled: GPU nodes lack nvidia.com/gpu until you install the driver"
        )
    version = 0
    if catalog_feed is not None:
        version, catalog = catalog_feed.current()
    return GkeCloudProvider(
        catalog_feed=catalog_feed,
        catalog_version=version,
        max_pods=max_pods,
        container=container,
        compute=compute,
        catalog=offered_in(catalog, zones, max_pods),
        clock=clock,
        project=project,
        location=location,
        cluster_name=cluster_name,
        cluster_id=cluster_id,
        config=config,
        zones=zones,
        empty_pool_s=empty_pool_s,
    )


def sdk_clients(endpoint: str = "") -> tuple[Any, Any, str]:
    """(container, compute, ADC project): REST transport, pointed at `endpoint` (the
    emulator, anonymous) when given, else Google's with Application Default Credentials."""
    options: ClientOptions | None = None
    credentials: Any
    project: str | None = ""
    if endpoint:
        options = ClientOptions(api_endpoint=endpoint)
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        credentials, project = google.auth.default()
    container = container_v1.ClusterManagerClient(
        credentials=credentials, transport="rest", client_options=options
    )
    compute = compute_v1.InstanceGroupManagersClient(
        credentials=credentials, transport="rest", client_options=options
    )
    return container, compute, project or ""
