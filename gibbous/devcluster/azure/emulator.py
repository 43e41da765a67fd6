"""An AKS emulator on loopback HTTPS: the agent-pool surface of Azure Resource Manager the
azure provider uses, with ARM's long-running-operation protocol, behaving as AKS does.

* Served over HTTPS (a trustme certificate: azure-core sends bearer tokens only over TLS).
* Request bodies are checked against the SDK's own models: every key must be a field of
  the model (recursively), so a misspelt field is a 400 `InvalidParameter`, as ARM
  refuses it. Pool names (`^[a-z][a-z0-9]{0,11}$`), VM sizes, zones, `mode`, spot
  settings and taints are checked; at most 100 agent pools per cluster.
* Creating or scaling a pool answers 201/200 with an `Azure-AsyncOperation` URL; the
  operation runs `operation_s`, one at a time per pool (another PUT meanwhile is a 409
  `OperationNotAllowed`), then Succeeded, or Failed with the allocation error of a fault
  (`AllocationFailed`, `ZonalAllocationFailed`, `SkuNotAvailable`,
  `OverconstrainedAllocationRequest`; optionally wrapped in `ResourceOperationFailure`
  with the code in `details`, as ARM sometimes does). A failed pool stays, `Failed`, its
  count as asked and its machines as they were, as AKS leaves it.
* Quota faults refuse a PUT at once (400 `OperationNotAllowed`, "... exceeding approved
  ... Cores quota"); throttle faults answer 429 with `Retry-After`.
* `deleteMachines` and `DELETE` answer 202 with `Azure-AsyncOperation` and `Location`.
* Faults are injected with `POST /emulator/faults` (JSON list of `Fault`), or in process.

Its state (agent pools, machines, operations, faults) is
`gibbous.devcluster.azure.state`. `python -m gibbous.devcluster.azure` serves it and runs
the node agent (`gibbous.devcluster.azure.agent`); `gibbous dev-cluster up --cloud azure`
uses that.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from azure.mgmt.containerservice import models

from gibbous.catalogs import load_catalog
from gibbous.devcluster.azure.catalogapis import (
    RETAIL_PRICES_PATH,
    AzureCatalogApis,
    CatalogApiError,
)
from gibbous.devcluster.azure.state import AgentPool, Fault, Machine, Operation
from gibbous.devcluster.emulation import RequestBucket, serve_json, take_fault

log = logging.getLogger("gibbous.aksemulator")

API_VERSION = "2026-08-01"
POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
TAINT = re.compile(r"^[^=:]+(=[^:]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
SPOT_TAINT = f"{SPOT_LABEL}=spot:NoSchedule"
# What AKS refuses to change on an existing pool (a new pool is needed): the VM size, spot
# priority, zones, and the OS disk size, max pods and subnet (terraform's
# azurerm_kubernetes_cluster_node_pool documents each "Changing this forces a new resource
# to be created"); mode and the GPU profile: a guess. Labels and taints are updatable
# (Azure/AKS#1515, shipped). The SDK model alone does not say: it marks them all "update".
IMMUTABLE = (
    "vmSize",
    "scaleSetPriority",
    "availabilityZones",
    "mode",
    "osDiskSizeGB",
    "maxPods",
    "vnetSubnetID",
    "gpuProfile",
)
ALLOCATION_CODES = (
    "AllocationFailed",
    "ZonalAllocationFailed",
    "SkuNotAvailable",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
)
# A failure that is no stock-out: the node bootstrap extension failing (AKS's
# "VMExtensionProvisioningError", its troubleshooting page "vmssCSE failures").
OPERATION_CODES = (*ALLOCATION_CODES, "VMExtensionProvisioningError")
MAX_POOLS = 100


def default_max_pods(network_plugin: str, network_plugin_mode: str) -> int:
    """The max pods AKS gives a pool created without `maxPods`: 250 with Azure CNI Overlay,
    30 with Azure CNI on the node subnet, 110 with kubenet (AKS docs, "Configure Azure CNI
    Overlay networking" and "Legacy Container Networking Interfaces": maximum pods per
    node; Azure/karpenter-provider-azure's AKSNodeClass `maxPods` defaults say the same)."""
    if network_plugin == "azure":
        return 250 if network_plugin_mode == "overlay" else 30
    return 110


ACTOR = "9f3c1f4e-0000-4000-8000-00000000a11c"  # the caller's object id in ARM's messages


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class AksEmulator:
    subscription: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "gibbous-dev"
    cluster: str = "dev-cluster"
    location: str = "eastus"
    version: str = "1.37.2"
    zones: tuple[str, ...] = ("1", "2", "3")
    # Realistic durations (docs/clouds/aks.md), all multiplied by `time_scale`: tests and
    # the dev cluster run the cloud faster by that documented factor.
    operation_s: float = 180.0
    delete_s: float = 60.0
    time_scale: float = 1.0
    clock: Callable[[], float] = time.time
    faults: list[Fault] = field(default_factory=list)
    pools: dict[str, AgentPool] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # The cluster's networkProfile: kubenet unless a test makes it Azure CNI (node subnet,
    # or "overlay" mode); it sets the max pods of pools created without their own.
    network_plugin: str = "kubenet"
    network_plugin_mode: str = ""
    # ARM's subscription read bucket ("Understand how Azure Resource Manager throttles
    # requests", regional token bucket: 250 reads, 25 a second refilled); 0: unlimited.
    read_bucket: float = 250.0
    reads_per_s: float = 25.0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.reads = RequestBucket(self.read_bucket, self.reads_per_s, self.clock)
        self.ids = itertools.count(1)
        builtin = load_catalog(None, "azure", self.location)
        self.sizes = {t.name for t in builtin}
        # Resource SKUs and the Retail Prices API, from the same rows (see `catalogapis`).
        self.catalog_apis = AzureCatalogApis(self.subscription, self.location, builtin)
        self.base = ""  # https://127.0.0.1:PORT once serving

    @property
    def node_resource_group(self) -> str:
        return f"MC_{self.resource_group}_{self.cluster}_{self.location}"

    @property
    def cluster_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.ContainerService/managedClusters/{self.cluster}"
        )

    # --- time ---------------------------------------------------------------------------------

    def advance(self) -> None:
        now = self.clock()
        with self.lock:
            for operation in self.operations.values():
                if operation.status == "InProgress" and now >= operation.done_at:
                    operation.error = operation.finish()
                    operation.status = "Failed" if operation.error else "Succeeded"
                    pool = self.pools.get(operation.pool)
                    if pool is not None and pool.operation == operation.id:
                        pool.operation = ""
            for pool in self.pools.values():
                for name, machine in list(pool.machines.items()):
                    if machine.deleting_at is not None and now >= machine.deleting_at:
                        del pool.machines[name]

    def _fault(self, kinds: tuple[str, ...], vm_size: str, spot: bool, zone: str) -> Fault | None:
        return take_fault(self.faults, kinds, lambda f: f.matches(vm_size, spot, zone))

    def _throttled(self) -> None:
        fault = self._fault(("throttle",), "", False, "")
        if fault is not None:
            raise ArmError(
                429,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00.",
                retry_after=1,
            )

    def _operation(
        self, pool: str, finish: Callable[[], dict[str, Any] | None], duration: float
    ) -> Operation:
        now = self.clock()
        operation = Operation(f"op-{next(self.ids):06d}", pool, now + duration, finish, started=now)
        self.operations[operation.id] = operation
        return operation

    def _operation_headers(self, operation: Operation) -> dict[str, str]:
        where = f"{self.base}/subscriptions/{self.subscription}/providers/Microsoft.ContainerService/locations/{self.location}"
        return {
            "Azure-AsyncOperation": f"{where}/operations/{operation.id}?api-version={API_VERSION}",
            "Location": f"{where}/operationresults/{operation.id}?api-version={API_VERSION}",
        }

    # --- agent pools -----------------------------------------------------------------------------

    def _pool_json(self, pool: AgentPool) -> dict[str, Any]:
        properties = dict(pool.properties)
        properties["provisioningState"] = pool.state
        properties["currentOrchestratorVersion"] = self.version
        properties["nodeImageVersion"] = "AKSUbuntu-2204gen2containerd-202611.01.0"
        return {
            "id": f"{self.cluster_path}/agentPools/{pool.name}",
            "name": pool.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": properties,
        }

    def get_cluster(self) -> dict[str, Any]:
        return {
            "id": self.cluster_path,
            "name": self.cluster,
            "location": self.location,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "properties": {
                "provisioningState": "Succeeded",
                "kubernetesVersion": self.version,
                "currentKubernetesVersion": self.version,
                "nodeResourceGroup": self.node_resource_group,
                "networkProfile": {
                    "networkPlugin": self.network_plugin,
                    **(
                        {"networkPluginMode": self.network_plugin_mode}
                        if self.network_plugin_mode
                        else {}
                    ),
                },
                "agentPoolProfiles": [
                    {
                        "name": "system",
                        "count": 1,
                        "vmSize": "Standard_D4s_v5",
                        "mode": "System",
                        "availabilityZones": list(self.zones),
                    }
                ],
            },
        }

    def put_pool(self, name: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = _strict(models.AgentPool, raw)
        properties = dict(body.get("properties") or {})
        self._throttled()
        problems = self._problems(name, properties)
        if problems:
            raise ArmError(400, "InvalidParameter", "; ".join(problems))
        # AKS fills in the network plugin's default, and reads it back on the pool.
        properties.setdefault(
            "maxPods", default_max_pods(self.network_plugin, self.network_plugin_mode)
        )
        vm_size = str(properties["vmSize"])
        spot = properties.get("scaleSetPriority") == "Spot"
        zones = [str(z) for z in properties.get("availabilityZones") or []]
        zone = zones[0] if zones else ""
        count = int(properties.get("count", 0) or 0)
        with self.lock:
            self.advance()
            pool = self.pools.get(name)
            if pool is not None and pool.operation:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed because there's an in progress operation on agent pool {name}. Please wait for it to finish.",
                )
            if pool is None and len(self.pools) >= MAX_POOLS - 1:  # the system pool counts
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"The cluster cannot have more than {MAX_POOLS} agent pools.",
                )
            if pool is not None:
                for key in IMMUTABLE:
                    if properties.get(key) != pool.properties.get(key):
                        raise ArmError(
                            400, "InvalidParameter", f"Changing property '{key}' is not allowed."
                        )
            quota = self._fault(("quota",), vm_size, spot, zone)
            if quota is not None:
                family = _family(vm_size)
                raise ArmError(
                    400,
                    "OperationNotAllowed",
                    f"Operation could not be completed as it results in exceeding approved {family} Cores quota. Additional details - Deployment Model: Resource Manager, Location: {self.location}, Current Limit: 0, Current Usage: 0, Additional Required: {count * 4}.",
                )
            created = pool is None
            # A PUT replaces the pool's properties with those it carries (AKS#3152: a
            # labels update without AKS's spot label strips it from the pool and nodes);
            # AKS adds its spot label at creation and keeps its spot taint always.
            properties = with_aks_spot_marks(properties, label=created)
            for computed in ("provisioningState", "currentOrchestratorVersion", "nodeImageVersion"):
                properties.pop(computed, None)  # AKS's to say, sent back by a read-modify-PUT
            if pool is None:
                vmss = f"aks-{name}-{abs(hash((self.cluster, name))) % 10**8:08d}-vmss"
                pool = AgentPool(name, properties, vmss)
                self.pools[name] = pool
            else:
                pool.properties = properties
            pool.state = "Creating" if created else "Scaling"
            existing = [m for m in pool.machines.values() if m.deleting_at is None]
            wanted = count - len(existing)
            fault = self._fault(OPERATION_CODES, vm_size, spot, zone) if wanted > 0 else None
            target = pool

            def finish() -> dict[str, Any] | None:
                if fault is not None:
                    target.state = "Failed"
                    return _allocation_error(fault, vm_size, self.location, zone)
                now = self.clock()
                for _ in range(max(0, wanted)):
                    index = target.next_index
                    target.next_index += 1
                    machine_zone = zones[index % len(zones)] if zones else ""
                    name_ = f"{target.vmss}{_base36(index)}"
                    target.machines[name_] = Machine(name_, index, machine_zone, now)
                if wanted < 0:  # scaled in: the newest go
                    for machine in sorted(existing, key=lambda m: -m.index)[:-wanted]:
                        machine.deleting_at = now + self.delete_s * self.time_scale
                target.state = "Succeeded"
                return None

            operation = self._operation(name, finish, self.operation_s * self.time_scale)
            pool.operation = operation.id
            log.info("%s agent pool %s to %d", "creating" if created else "scaling", name, count)
            return (
                (201 if created else 200),
                self._pool_json(pool),
                self._operation_headers(operation),
            )

    def _problems(self, name: str, properties: Mapping[str, Any]) -> list[str]:
        problems = []
        current = self.pools.get(name)
        kept = (current.properties.get("nodeLabels") or {}) if current is not None else {}
        if not POOL_NAME.match(name):
            problems.append(
                f"Agent pool name '{name}' is invalid: it must start with a lowercase letter, contain only lowercase letters and digits, and have at most 12 characters."
            )
        if properties.get("vmSize") not in self.sizes:
            problems.append(
                f"The VM size '{properties.get('vmSize')}' is not supported in {self.location}."
            )
        if properties.get("mode") not in ("User", "System"):
            problems.append("mode must be User or System.")
        for zone in properties.get("availabilityZones") or []:
            if str(zone) not in self.zones:
                problems.append(f"Availability zone '{zone}' is not supported in {self.location}.")
        if properties.get("scaleSetPriority") == "Spot":
            if properties.get("scaleSetEvictionPolicy") not in ("Delete", "Deallocate"):
                problems.append("Spot pools need scaleSetEvictionPolicy Delete or Deallocate.")
        elif "spotMaxPrice" in properties or "scaleSetEvictionPolicy" in properties:
            problems.append("spotMaxPrice and scaleSetEvictionPolicy apply to Spot pools only.")
        for taint in properties.get("nodeTaints") or []:
            if not TAINT.match(str(taint)):
                problems.append(f"Invalid taint '{taint}': expected key=value:Effect.")
        for key in properties.get("tags") or {}:
            if (
                "/" in key
                or "<" in key
                or ">" in key
                or "%" in key
                or "&" in key
                or "\\" in key
                or "?" in key
            ):
                problems.append(
                    f"Tag name '{key}' has characters Azure does not allow in tag names."
                )
        for key in properties.get("nodeLabels") or {}:
            domain = key.split("/", 1)[0] if "/" in key else ""
            if domain.endswith(("kubernetes.io", "k8s.io")) and domain not in (
                "node.kubernetes.io",
                "kubelet.kubernetes.io",
            ):
                problems.append(f"Label '{key}' is in a namespace the kubelet may not set.")
            # AKS's own labels, sent back as read, are the pool's already.
            if domain == "kubernetes.azure.com" and kept.get(key) != properties["nodeLabels"][key]:
                problems.append(f"Label '{key}' is reserved by AKS.")
        return problems

    def get_pool(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            pool = self.pools.get(name)
            if pool is None:
                raise ArmError(
                    404, "NotFound", f"Agent pool {name} was not found in cluster {self.cluster}."
                )
            return self._pool_json(pool)

    def list_pools(self) -> dict[str, Any]:
        with self.lock:
            self.advance()
            return {"value": [self._pool_json(p) for p in self.pools.values()]}

    def _idle_pool(self, name: str) -> AgentPool:
        """The pool `name`, as AKS lets it be changed: 404 when there is none, 409 while an
        operation on it is in progress."""
        pool = self.pools.get(name)
        if pool is None:
            raise ArmError(
                404, "NotFound", f"Agent pool {name} was not found in cluster {self.cluster}."
            )
        if pool.operation:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation is not allowed because there's an in progress operation on agent pool {name}.",
            )
        return pool

    def delete_pool(self, name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._throttled()
        with self.lock:
            self.advance()
            pool = self._idle_pool(name)
            pool.state = "Deleting"
            for machine in pool.machines.values():
                machine.deleting_at = self.clock() + self.operation_s * self.time_scale

            def finish() -> None:
                self.pools.pop(name, None)

            operation = self._operation(name, finish, self.operation_s * self.time_scale)
            pool.operation = operation.id
            return 202, {}, self._operation_headers(operation)

    def delete_machines(self, name: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = _strict(models.AgentPoolDeleteMachinesParameter, raw)
        self._throttled()
        with self.lock:
            self.advance()
            pool = self._idle_pool(name)
            names = [str(n) for n in body.get("machineNames") or []]
            missing = [n for n in names if n not in pool.machines]
            if missing:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Machine(s) {', '.join(missing)} not found in agent pool {name}.",
                )
            now = self.clock()
            for machine_name in names:
                pool.machines[machine_name].deleting_at = now + self.delete_s * self.time_scale
            pool.properties["count"] = max(0, int(pool.properties.get("count", 0)) - len(names))
            pool.state = "Scaling"
            target = pool

            def finish() -> None:
                target.state = "Succeeded"

            operation = self._operation(name, finish, self.delete_s * self.time_scale)
            pool.operation = operation.id
            return 202, {}, self._operation_headers(operation)

    def list_machines(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            pool = self.pools.get(name)
            if pool is None:
                raise ArmError(
                    404, "NotFound", f"Agent pool {name} was not found in cluster {self.cluster}."
                )
            return {
                "value": [
                    self._machine_json(pool, m)
                    for m in sorted(pool.machines.values(), key=lambda m: m.index)
                ]
            }

    def resource_id(self, pool: AgentPool, machine: Machine) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.node_resource_group}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{pool.vmss}/virtualMachines/{machine.index}"
        )

    def _machine_json(self, pool: AgentPool, machine: Machine) -> dict[str, Any]:
        return {
            "id": f"{self.cluster_path}/agentPools/{pool.name}/machines/{machine.name}",
            "name": machine.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools/machines",
            "zones": [machine.zone] if machine.zone else [],
            "properties": {
                "resourceId": self.resource_id(pool, machine),
                "network": {
                    "ipAddresses": [
                        {
                            "family": "IPv4",
                            "ip": f"10.224.{machine.index // 250}.{machine.index % 250 + 4}",
                        }
                    ]
                },
            },
        }

    def operation_status(self, operation_id: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            operation = self.operations.get(operation_id)
            if operation is None:
                raise ArmError(404, "NotFound", f"Operation {operation_id} not found.")
            body: dict[str, Any] = {
                "name": operation.id,
                "status": operation.status,
                "startTime": _stamp(operation.started),
            }
            if operation.status != "InProgress":
                body["endTime"] = _stamp(operation.done_at)
            if operation.error is not None:
                body["error"] = operation.error
            return body

    def operation_result(self, operation_id: str) -> tuple[int, dict[str, Any]]:
        status = self.operation_status(operation_id)
        if status["status"] == "InProgress":
            return 202, {}
        if status["status"] == "Failed":
            return 400, {"error": status["error"]}
        return 204, {}

    # --- what the node agent reads ---------------------------------------------------------

    def running_machines(self) -> list[tuple[AgentPool, Machine]]:
        with self.lock:
            self.advance()
            now = self.clock()
            return [
                (pool, machine)
                for pool in self.pools.values()
                for machine in pool.machines.values()
                if machine.deleting_at is None and now >= machine.ready_at
            ]

    # --- serving ------------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: Mapping[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append((method, path))
        if path == "/emulator/faults" and method == "POST":
            with self.lock:
                self.faults = [Fault(**f) for f in json.loads(raw or b"[]")]
            return 200, {"faults": len(self.faults)}, {}
        if path.startswith("/subscriptions/") and method == "GET":
            wait = self.reads.take()
            if wait:
                seconds = math.ceil(wait)
                raise ArmError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of 'read' requests for subscription '{self.subscription}' actor "
                    f"'{ACTOR}' exceeded. Please try again after '{seconds}' seconds.",
                    retry_after=seconds,
                )
        if path.startswith("/subscriptions/") and (query.get("api-version") or [""])[0] == "":
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        try:
            if path == f"/subscriptions/{self.subscription}/providers/Microsoft.Compute/skus":
                return 200, self.catalog_apis.resource_skus(query, self.base), {}
            if path == RETAIL_PRICES_PATH and method == "GET":
                return 200, self.catalog_apis.retail_prices(query, self.base), {}
        except CatalogApiError as error:
            raise ArmError(400, error.code, str(error)) from None
        operations = f"/subscriptions/{self.subscription}/providers/Microsoft.ContainerService/locations/{self.location}/"
        if path.startswith(operations + "operations/") and method == "GET":
            return 200, self.operation_status(path.rsplit("/", 1)[-1]), {}
        if path.startswith(operations + "operationresults/") and method == "GET":
            status, body = self.operation_result(path.rsplit("/", 1)[-1])
            return status, body, {}
        if path.lower().startswith(self.cluster_path.lower()):
            rest = (
                path[len(self.cluster_path) :].strip("/").split("/")
                if path[len(self.cluster_path) :].strip("/")
                else []
            )
            if not rest and method == "GET":
                return 200, self.get_cluster(), {}
            if rest[:1] == ["agentPools"]:
                if len(rest) == 1 and method == "GET":
                    return 200, self.list_pools(), {}
                if len(rest) == 2:
                    if method == "GET":
                        return 200, self.get_pool(rest[1]), {}
                    if method == "PUT":
                        return self.put_pool(rest[1], raw)
                    if method == "DELETE":
                        return self.delete_pool(rest[1])
                if len(rest) == 3 and rest[2] == "deleteMachines" and method == "POST":
                    return self.delete_machines(rest[1], raw)
                if len(rest) == 3 and rest[2] == "machines" and method == "GET":
                    return 200, self.list_machines(rest[1]), {}
        raise ArmError(404, "NotFound", f"{method} {path}: no such resource or action here.")

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(target)
        if url.path.startswith("/subscriptions/") and not headers.get(
            "authorization", ""
        ).startswith("Bearer "):
            error = ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
            return error.status, error.body(), {}
        try:
            status, body, extra = self.route(method, url.path, parse_qs(url.query), raw)
        except ArmError as error:
            retry = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            return error.status, error.body(), retry
        return status, (None if status == 204 else body), extra

    def serve(
        self, port: int = 0, directory: Path | None = None
    ) -> tuple[ThreadingHTTPServer, Path]:
        """Serve HTTPS on 127.0.0.1; returns the server and the CA bundle to trust."""
        authority = trustme.CA()
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        ca_file = (directory or Path("/tmp")) / f"aks-emulator-ca-{id(self)}.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(context)
        server = serve_json(self.handle, name="aks-emulator", port=port, context=context)
        self.base = f"https://127.0.0.1:{server.server_address[1]}"
        return server, ca_file


def with_aks_spot_marks(properties: Mapping[str, Any], *, label: bool) -> dict[str, Any]:
    """A Spot pool's properties as AKS keeps them: its `kubernetes.azure.com/scalesetpriority`
    label added at creation (`label`), and the `...=spot:NoSchedule` taint always (AKS's
    "Add an Azure Spot node pool" page; Cluster API's provider saw AKS keep both in the
    pool, kubernetes-sigs/cluster-api-provider-azure#2603 and #3976)."""
    out = dict(properties)
    if out.get("scaleSetPriority") != "Spot":
        return out
    if label:
        out["nodeLabels"] = {**(out.get("nodeLabels") or {}), SPOT_LABEL: "spot"}
    if SPOT_TAINT not in (out.get("nodeTaints") or []):
        out["nodeTaints"] = [*(out.get("nodeTaints") or []), SPOT_TAINT]
    return out


def _strict(model: Any, raw: bytes) -> dict[str, Any]:
    """The body as ARM reads it: every key a field of the SDK's model, recursively."""
    try:
        document = json.loads(raw or b"{}")
    except ValueError as error:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: {error}.",
        ) from None
    problems: list[str] = []
    _check(model, document, "", problems)
    if problems:
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: " + "; ".join(problems),
        )
    return dict(document)


def _check(model: Any, document: Any, where: str, problems: list[str]) -> None:
    if not isinstance(document, dict):
        problems.append(f"'{where or '$'}' must be an object")
        return
    instance = model(document)
    fields = {f._rest_name: attr for attr, f in instance._attr_to_rest_field.items()}
    for key, value in document.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            problems.append(
                f"Could not find member '{key}' on object of type '{model.__name__}'. Path '{path}'"
            )
            continue
        parsed = getattr(instance, fields[key])
        if hasattr(parsed, "_attr_to_rest_field"):
            _check(type(parsed), value, path, problems)
        elif isinstance(parsed, list) and parsed and hasattr(parsed[0], "_attr_to_rest_field"):
            for index, item in enumerate(value):
                _check(type(parsed[0]), item, f"{path}[{index}]", problems)


def _allocation_error(fault: Fault, vm_size: str, location: str, zone: str) -> dict[str, Any]:
    messages = {
        "AllocationFailed": f"Allocation failed. We do not have sufficient capacity for the requested VM size {vm_size} in this region.",
        "ZonalAllocationFailed": f"Allocation failed. We do not have sufficient capacity for the requested VM size {vm_size} in this zone ({location}-{zone}).",
        "VMExtensionProvisioningError": "VM has reported a failure when processing extension 'vmssCSE'. Error message: \"Enable failed: failed to execute command: command terminated with exit status=50\".",
        "SkuNotAvailable": f"The requested VM size for resource '{vm_size}' is currently not available in location '{location}'{' zones ' + zone if zone else ''}. Please try another size or deploy to a different location or zones.",
    }
    message = messages.get(fault.kind, f"Allocation failed: {fault.kind} for {vm_size}.")
    inner = {"code": fault.kind, "message": message}
    if fault.wrapped:
        return {
            "code": "ResourceOperationFailure",
            "message": "The resource operation completed with terminal provisioning state 'Failed'.",
            "details": [inner],
        }
    return inner


def _family(vm_size: str) -> str:
    core = vm_size.removeprefix("Standard_")
    letters = re.match(r"[A-Za-z]+", core)
    return f"standard{(letters.group(0) if letters else core).upper()}Family"


def _base36(index: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        index, rest = divmod(index, 36)
        out = digits[rest] + out
        if not index:
            break
    return out.rjust(6, "0")


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
