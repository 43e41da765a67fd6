"""A cloud made of Node objects in a real API server (KWOK's idea): run Gibbous end to end
with no cloud at all.

`create` registers a Node with the instance type's capacity and allocatable, Gibbous's
labels and taints, and `node.kubernetes.io/not-ready:NoSchedule`; `heartbeat` (run
periodically) marks it Ready once its boot delay has passed, keeps its Ready condition and
`kube-node-lease` Lease fresh (so a node-lifecycle controller leaves it alone), and can mark
pods bound to it Running. The Nodes are the cloud's records (launch token, cluster id,
creation time are labels and annotations), so a restarted autoscaler finds everything again.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.autoscaler.cloud.base import (
    Instance,
    InstanceNotFoundError,
    InstanceState,
    LaunchRequest,
)
from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType, node_allocatable
from gibbous.core.choice.nodedisk import default_disk_gib, ephemeral_allocatable
from gibbous.core.settings.config import Config
from gibbous.kubeletsim import (
    clear_not_ready_taint,
    finish_deletions,
    node_status,
    renew_lease,
    run_pods,
)

CLUSTER_ID = "gibbous.dev/cluster-id"
LAUNCH_TOKEN = "gibbous.dev/launch-token"
READY_AT = "gibbous.dev/kwok-ready-at"
CREATED_AT = "gibbous.dev/created-at"
NOT_READY = {"key": keys.NOT_READY_TAINT, "effect": "NoSchedule"}


@dataclass
class KwokCloudProvider:
    api: client.ApiClient
    catalog: list[InstanceType]
    config: Config
    clock: Callable[[], float]
    boot_s: float = 5.0
    name: str = "kwok"
    launch_concurrency: int = 8  # with a client connection pool of as many
    cloud_label_keys: frozenset[str] = frozenset()
    late_label_keys: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.by_name = {t.name: t for t in self.catalog}

    def instance_types(self) -> list[InstanceType]:
        return list(self.catalog)

    # --- the cloud-provider interface --------------------------------------------------

    def create(self, request: LaunchRequest) -> Instance:
        name = f"gibbous-{request.token[-12:]}".lower()
        # Idempotent by token: the node's name comes from it, so one read says whether this
        # launch already happened (a label query would scan every node of the cluster).
        try:
            existing = self.core.read_node(name)
        except ApiException as error:
            if error.status != 404:
                raise
        else:
            if (existing.metadata.labels or {}).get(LAUNCH_TOKEN) == request.token:
                return self._instance(existing)
        instance_type = self.by_name.get(request.instance_type)
        if instance_type is None:
            raise InstanceNotFoundError(f"unknown instance type {request.instance_type}")
        now = self.clock()
        zone = (
            request.zones[0]
            if request.zones
            else (instance_type.zones[0] if instance_type.zones else "kwok-zone-a")
        )
        allocatable = node_allocatable(instance_type, self.config).to_resource_list()
        # The node's disk: the one its pods need, else the configured one, counted as the
        # kubelet of its cloud counts it.
        disk_gib = request.disk_gib or default_disk_gib(self.config)
        allocatable["ephemeral-storage"] = str(ephemeral_allocatable(instance_type.cloud, disk_gib))
        capacity = {
            "cpu": f"{round(instance_type.vcpu * 1000)}m",
            "memory": str(instance_type.memory_bytes),
            "pods": allocatable.get("pods", "110"),
            "ephemeral-storage": str(disk_gib * 2**30),
        }
        if instance_type.gpu_count:
            capacity[keys.NVIDIA_GPU] = str(
                instance_type.gpu_count * self.config.nvidia_gpu_time_slices
            )
        labels = {
            **request.labels,
            CLUSTER_ID: request.cluster_id,
            LAUNCH_TOKEN: request.token,
            keys.HOSTNAME: name,
            keys.ZONE: zone,
        }
        body = {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    READY_AT: str(now + self.boot_s),
                    CREATED_AT: str(now),
                    "kwok.x-k8s.io/node": "fake",
                },
            },
            "spec": {"taints": [*request.taints, NOT_READY], "providerID": f"kwok://{name}"},
        }
        self.core.create_node(body)
        return self._instance(
            self.core.patch_node_status(
                name, {"status": node_status(capacity, allocatable, ready=False, now=now)}
            )
        )

    def delete(self, instance_id: str) -> None:
        try:
            self.core.delete_node(instance_id)
        except ApiException as error:
            if error.status == 404:
                raise InstanceNotFoundError(instance_id) from None
            raise

    def get(self, instance_id: str) -> Instance:
        try:
            return self._instance(self.core.read_node(instance_id))
        except ApiException as error:
            if error.status == 404:
                raise InstanceNotFoundError(instance_id) from None
            raise

    def close(self) -> None:
        return None  # the API client is the caller's

    def list(self, cluster_id: str) -> list[Instance]:
        return [self._instance(node) for node in self._nodes(f"{CLUSTER_ID}={cluster_id}")]

    # --- the fake kubelet ---------------------------------------------------------------

    def heartbeat(self, cluster_id: str, *, mark_pods_running: bool = False) -> None:
        """Mark booted nodes Ready, refresh conditions and Leases, optionally run bound pods."""
        now = self.clock()
        for node in self._nodes(f"{CLUSTER_ID}={cluster_id}"):
            name = node.metadata.name
            ready_at = float((node.metadata.annotations or {}).get(READY_AT, "0"))
            ready = now >= ready_at
            status = node.status
            capacity = dict(status.capacity or {})
            allocatable = dict(status.allocatable or {})
            updated = self.core.patch_node_status(
                name, {"status": node_status(capacity, allocatable, ready=ready, now=now)}
            )
            if ready:
                clear_not_ready_taint(self.core, updated)
            renew_lease(self.coordination, name, node.metadata.uid, now)
            if ready and mark_pods_running:
                run_pods(self.core, name, now)
                finish_deletions(self.core, name, now)

    # --- helpers --------------------------------------------------------------------------

    def _nodes(self, selector: str) -> builtins.list[Any]:
        return list(self.core.list_node(label_selector=selector).items)

    def _instance(self, node: Any) -> Instance:
        labels = dict(node.metadata.labels or {})
        annotations = node.metadata.annotations or {}
        ready = any(
            c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])
        )
        terminating = node.metadata.deletion_timestamp is not None
        return Instance(
            id=node.metadata.name,
            token=labels.get(LAUNCH_TOKEN, ""),
            cluster_id=labels.get(CLUSTER_ID, ""),
            instance_type=labels.get(keys.INSTANCE_TYPE, ""),
            category=labels.get(keys.CAPACITY_TYPE, ""),
            zone=labels.get(keys.ZONE, ""),
            state=InstanceState.TERMINATING
            if terminating
            else InstanceState.RUNNING
            if ready
            else InstanceState.PENDING,
            created_at=float(annotations.get(CREATED_AT, "0")),
            node_name=node.metadata.name,
            labels=labels,
        )
