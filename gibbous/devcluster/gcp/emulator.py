"""A GKE and Compute Engine emulator on loopback: the node-pool surface of GKE's REST API
(`container/v1`) and the managed-instance-group calls of Compute's that the gcp provider
makes, behaving as the clouds do.

* Every request body is parsed strictly with the SDK's own message types
  (`CreateNodePoolRequest.from_json(..., ignore_unknown_fields=False)`), so a misspelt
  field is a 400, as Google's front end refuses it. Names, zones, machine types,
  accelerators, Kubernetes labels (the kubelet's `--node-labels` rule: no `kubernetes.io`
  or `k8s.io` keys outside `node.kubernetes.io`/`kubelet.kubernetes.io`) and GCE resource
  labels (`[a-z][a-z0-9_-]*`, no `/`) are checked.
* Node-pool operations take `operation_s`, and at most `operation_limit` run on the cluster
  at once: one more is refused with 429 "Too many operations" (GKE's concurrent-operations
  quota). A pool created with nodes whose capacity is stocked out finishes its operation
  DONE with error code 8 and a `GCE_STOCKOUT` condition, and the pool stays, in ERROR, as
  GKE keeps it.
* Instances a MIG is asked for (`createInstances`, or a pool's initial nodes) take
  `create_s` to run; a stock-out or a quota fault leaves them `CREATING` with the error in
  `lastAttempt` (`ZONE_RESOURCE_POOL_EXHAUSTED`, `QUOTA_EXCEEDED`), retried forever, as a
  MIG does: what is not undone stays.
* Faults are injected through `POST /emulator/faults` (JSON, see `Fault`), or in process.

Its state (pools, MIGs, instances, operations, faults) is `gibbous.devcluster.gcp.state`.
`python -m gibbous.devcluster.gcp` serves it and runs the node agent
(`gibbous.devcluster.gcp.agent`) that plays the kubelets; `gibbous dev-cluster up
--cloud gcp` uses that.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.cloud import compute_v1, container_v1

from gibbous.catalogs import load_catalog
from gibbous.core.choice.machinelabels import gke_accelerator
from gibbous.devcluster.emulation import RequestBucket, serve_json, take_fault
from gibbous.devcluster.gcp.catalogapis import CatalogApiError, CatalogApis
from gibbous.devcluster.gcp.state import Fault, ManagedInstance, Mig, Operation, Pool

log = logging.getLogger("gibbous.gkeemulator")

COMPUTE = "https://www.googleapis.com/compute/v1"
POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
INSTANCE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
GCE_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
GCE_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
KUBELET_LABEL_DOMAINS = ("node.kubernetes.io", "kubelet.kubernetes.io")
PROJECT_NUMBER = "417300152947"  # the emulated project's number, as quota errors name it
NODE_POOL_OPERATIONS = frozenset({"CREATE_NODE_POOL", "DELETE_NODE_POOL", "SET_NODE_POOL_SIZE"})


class ApiError(Exception):
    """An error as Google's APIs answer it: `{"error": {code, message, status, ...}}`."""

    def __init__(
        self, code: int, status: str, message: str, *, reason: str = "", retry_after: int = 0
    ) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.reason, self.retry_after = reason, retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.reason:
            error["errors"] = [{"reason": self.reason, "message": self.message}]
        return {"error": error}


@dataclass
class GkeEmulator:
    project: str = "gibbous-dev"
    region: str = "us-central1"
    cluster: str = "dev-cluster"
    version: str = "1.37.2-gke.100"
    zones: tuple[str, ...] = ("us-central1-a", "us-central1-b", "us-central1-c")
    # Realistic durations (docs/clouds/gke.md), all multiplied by `time_scale`: tests and
    # the dev cluster run the cloud faster by that documented factor.
    operation_s: float = 40.0
    time_scale: float = 1.0
    operation_limit: int = 3
    # The cluster's defaultMaxPodsConstraint (GKE's default 110; a cluster made with
    # --default-max-pods-per-node says otherwise): a pool without its own takes it.
    max_pods: int = 110
    # Reads a project may make per minute (0: unlimited), counted per synchronized minute
    # as Compute Engine's rate quotas are ("Compute Engine rate quotas": read requests
    # 1500 a minute, refilled at the start of the next minute). GKE's own API (node pools,
    # operations) is counted apart with the same number (a guess, docs/clouds/gke.md).
    reads_per_minute: float = 1500.0
    create_s: float = 45.0
    delete_s: float = 30.0
    clock: Callable[[], float] = time.time
    faults: list[Fault] = field(default_factory=list)
    pools: dict[str, Pool] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), in order

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.compute_reads = RequestBucket(self.reads_per_minute, 0.0, self.clock, window_s=60)
        self.gke_reads = RequestBucket(self.reads_per_minute, 0.0, self.clock, window_s=60)
        self.ids = itertools.count(1000)
        catalog = load_catalog(None, "gcp", self.region)
        self.machine_types = {t.machine_type for t in catalog}
        self.accelerators = {gke_accelerator(t) for t in catalog if t.gpu_count} - {""}
        self.catalog_apis = CatalogApis(self.project, self.region, catalog)

    # --- time -----------------------------------------------------------------------

    def advance(self) -> None:
        """Finish what is due: operations, deletions."""
        now = self.clock()
        with self.lock:
            for operation in self.operations.values():
                if not operation.done and now >= operation.done_at:
                    operation.done = True
                    if operation.finish is not None:
                        operation.error = operation.finish()
            for pool in list(self.pools.values()):
                for mig in pool.migs.values():
                    for name, instance in list(mig.instances.items()):
                        if instance.deleting_at is not None and now >= instance.deleting_at:
                            del mig.instances[name]

    def running_node_pool_operations(self) -> int:
        return sum(
            1 for o in self.operations.values() if not o.done and o.kind in NODE_POOL_OPERATIONS
        )

    # --- faults -------------------------------------------------------------------------

    def _fault(
        self, kinds: Iterable[str], machine: str, accelerator: str, spot: bool, zone: str
    ) -> Fault | None:
        return take_fault(self.faults, kinds, lambda f: f.matches(machine, accelerator, spot, zone))

    def _read(self, compute: bool) -> None:
        """Take a read from the minute's quota, or refuse it as Google's front ends do:
        Compute Engine with 403 `rateLimitExceeded` ("Compute Engine rate quotas"), GKE's
        API with 429 RESOURCE_EXHAUSTED."""
        wait = (self.compute_reads if compute else self.gke_reads).take()
        if not wait:
            return
        if compute:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests "
                f"per minute' of service 'compute.googleapis.com' for consumer "
                f"'project_number:{PROJECT_NUMBER}'.",
                reason="rateLimitExceeded",
            )
        raise ApiError(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
            "minute per region' of service 'container.googleapis.com'.",
            reason="rateLimitExceeded",
            retry_after=int(wait) + 1,
        )

    @property
    def reads_refused(self) -> int:
        return self.compute_reads.refused + self.gke_reads.refused

    def _throttled(self) -> None:
        if take_fault(self.faults, ("throttle",), lambda f: True) is not None:
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests "
                "per minute per region' of service 'container.googleapis.com'.",
                reason="rateLimitExceeded",
                retry_after=1,
            )

    # --- GKE ------------------------------------------------------------------------------

    def _check_parent(self, project: str, location: str, cluster: str = "") -> None:
        if (
            project != self.project
            or location != self.region
            or (cluster and cluster != self.cluster)
        ):
            where = f"projects/{project}/locations/{location}" + (
                f"/clusters/{cluster}" if cluster else ""
            )
            raise ApiError(404, "NOT_FOUND", f"Not found: {where}.")

    def get_cluster(self, project: str, location: str, cluster: str) -> dict[str, Any]:
        self._check_parent(project, location, cluster)
        body = container_v1.Cluster(
            name=self.cluster,
            location=self.region,
            locations=list(self.zones),
            current_master_version=self.version,
            current_node_version=self.version,
            status=container_v1.Cluster.Status.RUNNING,
            default_max_pods_constraint=container_v1.MaxPodsConstraint(
                max_pods_per_node=self.max_pods
            ),
            self_link=f"https://container.googleapis.com/v1/projects/{self.project}/locations/{self.region}/clusters/{self.cluster}",
        )
        return _json(container_v1.Cluster, body)

    def create_node_pool(
        self, project: str, location: str, cluster: str, raw: bytes
    ) -> dict[str, Any]:
        self._check_parent(project, location, cluster)
        request = _strict(container_v1.CreateNodePoolRequest, raw)
        pool = request.node_pool
        self._throttled()
        problems = self._pool_problems(pool)
        if problems:
            raise ApiError(400, "INVALID_ARGUMENT", "; ".join(problems))
        config = pool.config
        accelerator = config.accelerators[0].accelerator_type if config.accelerators else ""
        zones = list(pool.locations) or list(self.zones)
        with self.lock:
            self.advance()
            if pool.name in self.pools:
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    f"Already exists: projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{pool.name}.",
                )
            if self.running_node_pool_operations() >= self.operation_limit:
                raise ApiError(
                    429,
                    "RESOURCE_EXHAUSTED",
                    f"Too many operations: cluster {cluster} hits the concurrent operations "
                    f"quota ({self.operation_limit}); retry later.",
                )
            quota = self._fault(
                ("regional-quota",), config.machine_type, accelerator, config.spot, zones[0]
            )
            if quota is not None:
                resource = (
                    (accelerator.upper().replace("-", "_").replace("TESLA_", "") + "_GPUS")
                    if accelerator
                    else "CPUS"
                )
                raise ApiError(
                    403,
                    "PERMISSION_DENIED",
                    f'Insufficient regional quota to satisfy request: resource "{resource}": '
                    f"request requires '{max(1, pool.initial_node_count)}.0' and is short "
                    f"'{max(1, pool.initial_node_count)}.0'. project has a quota of '0.0' with "
                    f"'0.0' available. View and manage quotas at https://console.cloud.google.com/iam-admin/quotas?usage=USED&project={project}.",
                )
            digest = hashlib.sha256(f"{cluster}/{pool.name}".encode()).hexdigest()[:8]
            base = f"gke-{cluster[:14]}-{pool.name[:14]}-{digest}"
            migs = {zone: Mig(f"{base}-grp", zone, base, pool.name) for zone in zones}
            body = _json(container_v1.NodePool, pool)
            body["locations"] = zones
            body["version"] = self.version
            max_pods = pool.max_pods_constraint.max_pods_per_node or self.max_pods
            body["maxPodsConstraint"] = {"maxPodsPerNode": str(max_pods)}
            body["podIpv4CidrSize"] = pod_cidr_size(max_pods)
            body["selfLink"] = (
                f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{pool.name}"
            )
            body["instanceGroupUrls"] = [
                f"{COMPUTE}/projects/{project}/zones/{zone}/instanceGroupManagers/{mig.name}"
                for zone, mig in migs.items()
            ]
            record = Pool(body, "PROVISIONING", migs)
            self.pools[pool.name] = record
            now = self.clock()
            failures: dict[str, Fault] = {}
            for zone, mig in migs.items():
                for _ in range(pool.initial_node_count):
                    name = f"{base}-{next(self.ids):04x}"[-63:]
                    instance = ManagedInstance(
                        name, zone, next(self.ids), now + self.operation_s * self.time_scale
                    )
                    fault = self._fault(
                        ("stockout", "quota"), config.machine_type, accelerator, config.spot, zone
                    )
                    if fault is not None:
                        instance.failure = _instance_failure(fault, config.machine_type, zone)
                        failures[zone] = fault
                    mig.instances[name] = instance

            whole = self._fault(
                ("pool-stockout",), config.machine_type, accelerator, config.spot, zones[0]
            )
            if whole is not None:
                failures[zones[0]] = Fault("stockout")

            def finish() -> tuple[int, str, list[dict[str, str]]] | None:
                if not failures:
                    record.status = "RUNNING"
                    return None
                record.status = "ERROR"
                kind = next(iter(failures.values())).kind
                code = "GCE_STOCKOUT" if kind == "stockout" else "GCE_QUOTA_EXCEEDED"
                where = ", ".join(sorted(failures))
                message = (
                    f"Try a different location, or try again later: Google Compute Engine "
                    f"does not have enough resources available to fulfill request: {where}. [{code}]"
                    if kind == "stockout"
                    else f"Insufficient quota to satisfy the request: {where}. [{code}]"
                )
                return (
                    8,
                    message,
                    [{"code": code, "message": message, "canonicalCode": "RESOURCE_EXHAUSTED"}],
                )

            operation = self._operation("CREATE_NODE_POOL", body["selfLink"], finish)
            record.operation = operation.name
            log.info(
                "creating node pool %s (%d node(s) a zone)", pool.name, pool.initial_node_count
            )
            return self._gke_operation(operation)

    def _pool_problems(self, pool: container_v1.NodePool) -> list[str]:
        problems = []
        if not POOL_NAME.match(pool.name):
            problems.append(
                f"Invalid node pool name {pool.name!r}: it must match {POOL_NAME.pattern}."
            )
        config = pool.config
        if config.machine_type not in self.machine_types:
            problems.append(
                f"Invalid value for field 'nodePool.config.machineType': {config.machine_type!r}. Machine type not found."
            )
        for zone in pool.locations:
            if zone not in self.zones:
                problems.append(
                    f"Invalid value for field 'nodePool.locations': {zone!r} is not a zone of the cluster."
                )
        for accelerator in config.accelerators:
            if accelerator.accelerator_type not in self.accelerators:
                problems.append(f"Accelerator type {accelerator.accelerator_type!r} not found.")
            if accelerator.accelerator_count < 1:
                problems.append("acceleratorCount must be at least 1.")
        for key in config.labels:
            domain = key.split("/", 1)[0] if "/" in key else ""
            if (
                domain.endswith(("kubernetes.io", "k8s.io"))
            ) and domain not in KUBELET_LABEL_DOMAINS:
                problems.append(
                    f"Invalid Kubernetes label key {key!r}: the kubernetes.io and k8s.io namespaces are reserved."
                )
        for key, value in config.resource_labels.items():
            if not GCE_LABEL_KEY.match(key) or not GCE_LABEL_VALUE.match(value):
                problems.append(
                    f"Invalid resource label {key}={value}: keys and values are lowercase letters, digits, '_' and '-'."
                )
        for taint in config.taints:
            if taint.effect == container_v1.NodeTaint.Effect.EFFECT_UNSPECIFIED:
                problems.append(f"Taint {taint.key!r} has no effect.")
        if pool.initial_node_count < 0:
            problems.append("initialNodeCount must not be negative.")
        return problems

    def get_node_pool(self, project: str, location: str, cluster: str, name: str) -> dict[str, Any]:
        self._check_parent(project, location, cluster)
        with self.lock:
            self.advance()
            pool = self.pools.get(name)
            if pool is None:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Not found: projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{name}.",
                )
            return self._pool_json(pool)

    def list_node_pools(self, project: str, location: str, cluster: str) -> dict[str, Any]:
        self._check_parent(project, location, cluster)
        with self.lock:
            self.advance()
            return {"nodePools": [self._pool_json(p) for p in self.pools.values()]}

    def _pool_json(self, pool: Pool) -> dict[str, Any]:
        body = dict(pool.body)
        body["status"] = pool.status
        body["initialNodeCount"] = body.get("initialNodeCount", 0)
        return body

    def delete_node_pool(
        self, project: str, location: str, cluster: str, name: str
    ) -> dict[str, Any]:
        self._check_parent(project, location, cluster)
        self._throttled()
        with self.lock:
            self.advance()
            pool = self.pools.get(name)
            if pool is None:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Not found: projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{name}.",
                )
            if self.running_node_pool_operations() >= self.operation_limit:
                raise ApiError(
                    429,
                    "RESOURCE_EXHAUSTED",
                    f"Too many operations: cluster {cluster} hits the concurrent operations "
                    f"quota ({self.operation_limit}); retry later.",
                )
            if pool.status == "STOPPING":
                raise ApiError(400, "FAILED_PRECONDITION", f"Node pool {name} is being deleted.")
            pool.status = "STOPPING"
            for mig in pool.migs.values():
                for instance in mig.instances.values():
                    instance.deleting_at = self.clock() + self.operation_s * self.time_scale

            def finish() -> None:
                self.pools.pop(name, None)

            operation = self._operation("DELETE_NODE_POOL", str(pool.body["selfLink"]), finish)
            return self._gke_operation(operation)

    def _operation(
        self,
        kind: str,
        target: str,
        finish: Callable[[], Any] | None,
        zone: str = "",
        duration: float | None = None,
    ) -> Operation:
        now = self.clock()
        name = f"operation-{int(now * 1000)}-{next(self.ids):x}"
        operation = Operation(
            name,
            kind,
            target,
            now,
            now + (self.operation_s * self.time_scale if duration is None else duration),
            finish,
            zone,
        )
        self.operations[name] = operation
        return operation

    def _gke_operation(self, operation: Operation) -> dict[str, Any]:
        status = (
            container_v1.Operation.Status.DONE
            if operation.done
            else container_v1.Operation.Status.RUNNING
        )
        body = container_v1.Operation(
            name=operation.name,
            operation_type=getattr(container_v1.Operation.Type, operation.kind),
            status=status,
            self_link=f"https://container.googleapis.com/v1/projects/{self.project}/locations/{self.region}/operations/{operation.name}",
            target_link=operation.target,
            location=self.region,
            start_time=_stamp(operation.started),
            end_time=_stamp(operation.done_at) if operation.done else "",
        )
        if operation.error is not None:
            code, message, conditions = operation.error
            body.error = {"code": code, "message": message}
            body.status_message = message
            body.nodepool_conditions = [
                container_v1.StatusCondition(code=c["code"], message=c["message"], canonical_code=8)
                for c in conditions
            ]
        return _json(container_v1.Operation, body)

    def get_operation(self, project: str, location: str, name: str) -> dict[str, Any]:
        self._check_parent(project, location)
        with self.lock:
            self.advance()
            operation = self.operations.get(name)
            if operation is None or operation.kind.startswith("compute."):
                raise ApiError(404, "NOT_FOUND", f"Not found: operation {name}.")
            return self._gke_operation(operation)

    # --- Compute: managed instance groups ------------------------------------------------

    def _mig(self, project: str, zone: str, name: str) -> tuple[Pool, Mig]:
        if project != self.project:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"The resource 'projects/{project}' was not found",
                reason="notFound",
            )
        for pool in self.pools.values():
            mig = pool.migs.get(zone)
            if mig is not None and mig.name == name:
                return pool, mig
        raise ApiError(
            404,
            "NOT_FOUND",
            f"The resource 'projects/{project}/zones/{zone}/instanceGroupManagers/{name}' was not found",
            reason="notFound",
        )

    def create_instances(self, project: str, zone: str, name: str, raw: bytes) -> dict[str, Any]:
        request = _strict(compute_v1.InstanceGroupManagersCreateInstancesRequest, raw)
        with self.lock:
            self.advance()
            pool, mig = self._mig(project, zone, name)
            if pool.status != "RUNNING":
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"The instance group manager '{name}' is not ready: its node pool is {pool.status}.",
                    reason="resourceNotReady",
                )
            taken = {n for p in self.pools.values() for m in p.migs.values() for n in m.instances}
            for config in request.instances:
                if not INSTANCE_NAME.match(config.name):
                    raise ApiError(
                        400,
                        "INVALID_ARGUMENT",
                        f"Invalid value for field 'resource.instances[].name': '{config.name}'.",
                        reason="invalid",
                    )
                if config.name in taken:
                    raise ApiError(
                        409,
                        "ALREADY_EXISTS",
                        f"The resource 'projects/{project}/zones/{zone}/instances/{config.name}' already exists",
                        reason="alreadyExists",
                    )
            node_config = pool.body.get("config") or {}
            machine = str(node_config.get("machineType", ""))
            accelerators = node_config.get("accelerators") or [{}]
            accelerator = str(accelerators[0].get("acceleratorType", ""))
            spot = bool(node_config.get("spot"))
            now = self.clock()
            for config in request.instances:
                instance = ManagedInstance(
                    config.name, zone, next(self.ids), now + self.create_s * self.time_scale
                )
                fault = self._fault(("stockout", "quota"), machine, accelerator, spot, zone)
                if fault is not None:
                    instance.failure = _instance_failure(fault, machine, zone)
                mig.instances[config.name] = instance
            target = f"{COMPUTE}/projects/{project}/zones/{zone}/instanceGroupManagers/{name}"
            operation = self._operation(
                "compute.instanceGroupManagers.createInstances", target, None, zone, duration=0.2
            )
            return self._zone_operation(operation)

    def delete_instances(self, project: str, zone: str, name: str, raw: bytes) -> dict[str, Any]:
        request = _strict(compute_v1.InstanceGroupManagersDeleteInstancesRequest, raw)
        with self.lock:
            self.advance()
            _, mig = self._mig(project, zone, name)
            names = [url.rsplit("/", 1)[-1] for url in request.instances]
            missing = [n for n in names if n not in mig.instances]
            if missing:
                raise ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    f"The instance 'projects/{project}/zones/{zone}/instances/{missing[0]}' is not a member of the instance group manager '{name}'.",
                    reason="invalid",
                )
            for instance_name in names:
                instance = mig.instances[instance_name]
                if instance.deleting_at is None:
                    instance.deleting_at = self.clock() + self.delete_s * self.time_scale
            target = f"{COMPUTE}/projects/{project}/zones/{zone}/instanceGroupManagers/{name}"
            operation = self._operation(
                "compute.instanceGroupManagers.deleteInstances", target, None, zone, duration=0.2
            )
            return self._zone_operation(operation)

    def list_managed_instances(
        self, project: str, zone: str, name: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        with self.lock:
            self.advance()
            _, mig = self._mig(project, zone, name)
            now = self.clock()
            ordered = sorted(mig.instances.values(), key=lambda i: i.id)
            size = int((query.get("maxResults") or ["500"])[0])
            start = int((query.get("pageToken") or ["0"])[0] or 0)
            page = ordered[start : start + size]
            out = []
            for instance in page:
                status, action = instance.status(now)
                entry: dict[str, Any] = {
                    "instance": f"{COMPUTE}/projects/{project}/zones/{zone}/instances/{instance.name}",
                    "name": instance.name,
                    "id": str(instance.id),
                    "instanceStatus": status,
                    "currentAction": action,
                }
                if instance.failure is not None:
                    code, message = instance.failure
                    entry["lastAttempt"] = {
                        "errors": {"errors": [{"code": code, "message": message}]}
                    }
                out.append(entry)
            body: dict[str, Any] = {"managedInstances": out}
            if start + size < len(ordered):
                body["nextPageToken"] = str(start + size)
            return body

    def get_zone_operation(self, project: str, zone: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            operation = self.operations.get(name)
            if operation is None or operation.zone != zone or project != self.project:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"The resource 'projects/{project}/zones/{zone}/operations/{name}' was not found",
                    reason="notFound",
                )
            return self._zone_operation(operation)

    def _zone_operation(self, operation: Operation) -> dict[str, Any]:
        body = compute_v1.Operation(
            name=operation.name,
            id=next(self.ids),
            kind="compute#operation",
            operation_type=operation.kind.rsplit(".", 1)[-1],
            status="DONE" if operation.done else "RUNNING",
            target_link=operation.target,
            zone=f"{COMPUTE}/projects/{self.project}/zones/{operation.zone}",
            self_link=f"{COMPUTE}/projects/{self.project}/zones/{operation.zone}/operations/{operation.name}",
            insert_time=_stamp(operation.started),
            progress=100 if operation.done else 0,
        )
        return _json(compute_v1.Operation, body)

    # --- what the node agent reads ---------------------------------------------------------

    def running_nodes(self) -> list[tuple[dict[str, Any], ManagedInstance]]:
        """(node pool body, instance) for every instance running now."""
        with self.lock:
            self.advance()
            now = self.clock()
            return [
                (self._pool_json(pool), instance)
                for pool in self.pools.values()
                for mig in pool.migs.values()
                for instance in mig.instances.values()
                if instance.status(now)[0] == "RUNNING"
            ]

    # --- serving -----------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path))
        parts = path.strip("/").split("/")
        if method == "GET" or parts[-1:] == ["listManagedInstances"]:
            self._read(compute=parts[:1] == ["compute"])
        gke = _match(parts, ["v1", "projects", "*", "locations", "*"])
        if gke is not None:
            project, location = gke
            rest = parts[5:]
            if rest[:1] == ["operations"] and len(rest) == 2 and method == "GET":
                return 200, self.get_operation(project, location, rest[1])
            if rest[:1] == ["clusters"] and len(rest) >= 2:
                cluster = rest[1]
                if len(rest) == 2 and method == "GET":
                    return 200, self.get_cluster(project, location, cluster)
                if rest[2:3] == ["nodePools"]:
                    if len(rest) == 3 and method == "POST":
                        return 200, self.create_node_pool(project, location, cluster, raw)
                    if len(rest) == 3 and method == "GET":
                        return 200, self.list_node_pools(project, location, cluster)
                    if len(rest) == 4 and method == "GET":
                        return 200, self.get_node_pool(project, location, cluster, rest[3])
                    if len(rest) == 4 and method == "DELETE":
                        return 200, self.delete_node_pool(project, location, cluster, rest[3])
        found = self._catalog_route(method, parts, query)
        if found is not None:
            return 200, found
        compute = _match(parts, ["compute", "v1", "projects", "*", "zones", "*"])
        if compute is not None:
            project, zone = compute
            rest = parts[6:]
            if rest[:1] == ["operations"] and len(rest) == 2 and method == "GET":
                return 200, self.get_zone_operation(project, zone, rest[1])
            if rest[:1] == ["instanceGroupManagers"] and len(rest) == 3 and method == "POST":
                verb = rest[2]
                if verb == "createInstances":
                    return 200, self.create_instances(project, zone, rest[1], raw)
                if verb == "deleteInstances":
                    return 200, self.delete_instances(project, zone, rest[1], raw)
                if verb == "listManagedInstances":
                    return 200, self.list_managed_instances(project, zone, rest[1], query)
        if parts == ["emulator", "prices"] and method == "POST":  # [{kind, name, usd}]
            for rate in json.loads(raw or b"[]"):
                self.catalog_apis.set_rate(rate["kind"], rate["name"], float(rate["usd"]))
            return 200, {}
        if parts == ["emulator", "faults"] and method == "POST":
            with self.lock:
                self.faults = [Fault(**f) for f in json.loads(raw or b"[]")]
            return 200, {"faults": len(self.faults)}
        raise ApiError(404, "NOT_FOUND", f"{method} {path}: no such method here", reason="notFound")

    def _catalog_route(
        self, method: str, parts: list[str], query: dict[str, list[str]]
    ) -> dict[str, Any] | None:
        """machineTypes/acceleratorTypes aggregatedList and the Billing Catalog's SKUs."""
        apis = self.catalog_apis
        try:
            listed = _match(parts, ["compute", "v1", "projects", "*", "aggregated", "*"])
            if listed is not None and method == "GET" and len(parts) == 6:
                if listed[1] == "machineTypes":
                    return apis.machine_types(query)
                if listed[1] == "acceleratorTypes":
                    return apis.accelerator_types(query)
            skus = _match(parts, ["v1", "services", "*", "skus"])
            if skus is not None and method == "GET" and len(parts) == 4:
                return apis.skus(skus[0], query)
        except CatalogApiError as error:
            raise ApiError(error.code, error.status, str(error), reason="invalid") from None
        return None

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(target)
        try:
            status, body = self.route(method, url.path, parse_qs(url.query), raw)
        except ApiError as error:
            retry = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            return error.code, error.body(), retry
        return status, body, {}

    def serve(self, port: int = 0) -> ThreadingHTTPServer:
        return serve_json(self.handle, name="gke-emulator", port=port)


def pod_cidr_size(max_pods: int) -> int:
    """The prefix of each node's pod range: the smallest with twice max-pods addresses
    (GKE: 110 -> /24, 64 -> /25, 32 -> /26, 16 -> /27, 8 -> /28)."""
    size = 32
    while 2 ** (32 - size) < 2 * max_pods:
        size -= 1
    return size


def _match(parts: list[str], pattern: list[str]) -> list[str] | None:
    if len(parts) < len(pattern):
        return None
    found = []
    for part, want in zip(parts, pattern, strict=False):
        if want == "*":
            found.append(part)
        elif part != want:
            return None
    return found


def _strict(message: Any, raw: bytes) -> Any:
    """The request body as the API reads it: an unknown or misspelt field is a 400."""
    try:
        return message.from_json(raw.decode() or "{}", ignore_unknown_fields=False)
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ApiError(
            400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {first}", reason="invalid"
        ) from None


def _json(message: Any, value: Any) -> dict[str, Any]:
    return dict(json.loads(message.to_json(value, use_integers_for_enums=False)))


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


def _instance_failure(fault: Fault, machine: str, zone: str) -> tuple[str, str]:
    if fault.kind == "stockout":
        return (
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            f"The zone 'projects/gibbous-dev/zones/{zone}' does not have enough resources "
            f"available to fulfill the request. Try a different zone, or try again later.",
        )
    return (
        "QUOTA_EXCEEDED",
        f"Quota 'CPUS' exceeded. Limit: 0.0 in region {zone.rsplit('-', 1)[0]} for {machine}.",
    )
