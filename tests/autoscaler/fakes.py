"""An in-memory cluster for loop tests: Nodes appear when the fake cloud's instances run (a
kubelet registering), and `schedule()` plays kube-scheduler well enough to bind pods to
nodes with room and mark the rest Unschedulable."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jsonpatch

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.lifecycle import Eviction
from gibbous.core import keys
from gibbous.core.admission.mutation import plan_release
from gibbous.core.choice.catalog import node_allocatable
from gibbous.core.choice.daemonsets import DaemonSetPod, describe_daemonset
from gibbous.core.choice.selection import build_offers
from gibbous.core.errors import GibbousError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import fit_count, node_admits
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.podmodel.pods import Pod, key_of, node_name_of, scheduling_gates, uid_of
from gibbous.core.settings.config import Config
from gibbous.core.settings.kubeletlabels import registration_labels
from gibbous.simulation.world import NodeMarks, unschedulable_status


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeCluster(NodeMarks):
    cloud: FakeCloudProvider
    config: Config
    pod_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    static_nodes: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str, bool]] = field(default_factory=list)  # uid, reason, msg, warn
    releases: list[tuple[str, str | None, list[dict[str, Any]]]] = field(default_factory=list)
    repairs: list[tuple[str, dict[str, str], list[dict[str, str]]]] = field(default_factory=list)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deleted_pods: list[str] = field(default_factory=list)
    gpu_plugin_delay_s: float = 0.0  # GPUs become allocatable this long after the node runs
    # Nodes register with only the cloud's own labels and no taints, as with user data that
    # does not carry Gibbous's (what the autoscaler must notice and repair).
    bare_registration: bool = False
    # Node lifecycle: what the operations did, and what tests inject.
    cordoned: set[str] = field(default_factory=set)
    deleted_nodes: list[str] = field(default_factory=list)
    node_delete_errors: list[Exception] = field(default_factory=list)  # raised, then cleared
    release_errors: list[Exception] = field(default_factory=list)
    evictions: list[str] = field(default_factory=list)
    pdb_protected: set[str] = field(default_factory=set)  # pod keys whose eviction gets 429
    usage: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (cpu, memory)
    pod_usage: dict[str, tuple[str, str]] = field(default_factory=dict)  # pod key -> (cpu, memory)
    metrics_api: bool = True  # False: metrics.k8s.io cannot be read (no metrics-server)
    # DaemonSets as the API returns them; None: not listed (KubeCluster before its list)
    daemonset_objects: list[dict[str, Any]] | None = None

    # --- the Cluster protocol --------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pod_objects.values()]

    def daemonset_pods(self) -> tuple[DaemonSetPod, ...] | None:
        """Described afresh on each call (equal, not the same tuple, as KubeCluster's)."""
        if self.daemonset_objects is None:
            return None
        described = map(describe_daemonset, self.daemonset_objects)
        return tuple(d for d in described if isinstance(d, DaemonSetPod))

    def nodes(self) -> list[dict[str, Any]]:
        out = copy.deepcopy(self.static_nodes)
        by_name = {t.name: t for t in self.cloud.catalog}
        for instance in self.cloud.list(self.config.cluster_id):
            if not instance.node_name:
                continue
            instance_type = by_name[instance.instance_type]
            allocatable = node_allocatable(instance_type, self.config).to_resource_list()
            running_for = self.cloud.clock() - instance.created_at
            if instance_type.gpu_count and running_for < self.gpu_plugin_delay_s:
                allocatable.pop(keys.NVIDIA_GPU, None)
            if instance.node_name in self.deleted_nodes:
                continue
            taints = (
                [{"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}]
                if instance.category == "spot" and not self.bare_registration
                else []
            )
            taints += self.node_taints.get(instance.node_name, [])
            # NodeRestriction: the kubelet registers only the labels it may set.
            registered = {} if self.bare_registration else registration_labels(instance.labels)
            for name, labels, added in self.repairs:
                if name == instance.node_name:
                    registered.update(labels)
                    taints += added
            created = datetime.datetime.fromtimestamp(instance.created_at, datetime.UTC)
            out.append(
                {
                    "metadata": {
                        "name": instance.node_name,
                        "labels": {
                            **registered,
                            keys.HOSTNAME: instance.node_name,
                            keys.ZONE: instance.zone,  # as the cloud's node controller sets it
                        },
                        "annotations": dict(self.node_annotations.get(instance.node_name, {})),
                        "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                    "spec": {
                        "taints": taints,
                        "unschedulable": instance.node_name in self.cordoned,
                        "providerID": f"fake:///{instance.zone}/{instance.id}",
                    },
                    "status": {
                        "allocatable": allocatable,
                        "capacity": {
                            "cpu": str(instance_type.vcpu),
                            "memory": str(instance_type.memory_bytes),
                        },
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        for node in out:
            # As the API server does: a new resourceVersion whenever the node changes (here,
            # one derived from its content), so caches keyed by version are exercised.
            content = json.dumps({k: v for k, v in node.items() if k != "metadata"}, sort_keys=True)
            meta = {k: v for k, v in node["metadata"].items() if k != "resourceVersion"}
            node["metadata"]["resourceVersion"] = hashlib.sha1(
                (content + json.dumps(meta, sort_keys=True)).encode()
            ).hexdigest()[:12]
        return out

    def pods_with_event(self, reason: str) -> frozenset[str]:
        return frozenset(uid for uid, r, _, _ in self.events if r == reason)

    def emit_event(
        self, obj: Pod, reason: str, message: str, *, warning: bool, kind: str = "Pod"
    ) -> None:
        self.events.append((uid_of(obj), reason, message, warning))

    def repair_node(
        self, name: str, labels: Mapping[str, str], taints: Sequence[Mapping[str, str]]
    ) -> None:
        self.repairs.append((name, dict(labels), [dict(t) for t in taints]))

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.leases.get((namespace, name))

    def delete_pod(self, pod: Pod) -> None:
        self.deleted_pods.append(key_of(pod))
        self.pod_objects.pop(key_of(pod), None)

    def release_pod(self, pod: Pod, hostname: str | None) -> None:
        if self.release_errors:
            raise self.release_errors.pop(0)
        operations = plan_release(pod, hostname)
        key = key_of(pod)
        self.pod_objects[key] = jsonpatch.apply_patch(self.pod_objects[key], operations)
        self.releases.append((key, hostname, operations))

    # --- NodeOperations ----------------------------------------------------------------------

    def cordon(self, node: str) -> None:
        self.cordoned.add(node)

    def evict(self, pod: Pod) -> Eviction:
        key = key_of(pod)
        if key not in self.pod_objects:
            return Eviction.GONE
        if key in self.pdb_protected:
            return Eviction.BLOCKED
        self.evictions.append(key)
        del self.pod_objects[key]
        return Eviction.EVICTED

    def delete_node(self, node: str) -> None:
        if self.node_delete_errors:
            raise self.node_delete_errors.pop(0)
        self.deleted_nodes.append(node)

    def node_metrics(self) -> list[dict[str, Any]] | None:
        if not self.metrics_api:
            return None
        return [
            {"metadata": {"name": name}, "usage": {"cpu": cpu, "memory": memory}}
            for name, (cpu, memory) in self.usage.items()
        ]

    def pod_metrics(self) -> list[dict[str, Any]] | None:
        out = []
        for key, (cpu, memory) in self.pod_usage.items():
            namespace, name = key.split("/")
            out.append(
                {
                    "metadata": {"name": name, "namespace": namespace},
                    "containers": [{"name": "main", "usage": {"cpu": cpu, "memory": memory}}],
                }
            )
        return out

    # --- test helpers ----------------------------------------------------------------------

    def bind(self, key: str, node: str) -> None:
        pod = self.pod_objects[key]
        pod["spec"]["nodeName"] = node
        pod["status"] = {"phase": "Running"}

    def add(self, *pods: dict[str, Any], unschedulable: bool = True) -> None:
        for original in pods:
            pod = copy.deepcopy(original)
            if unschedulable and not scheduling_gates(pod):
                pod["status"] = unschedulable_status("0/0 nodes are available: no nodes.")
            self.pod_objects[key_of(pod)] = pod

    def events_for(self, name: str, reason: str) -> list[str]:
        uid = uid_of(self.pod_objects[f"default/{name}"])
        return [m for u, r, m, _ in self.events if u == uid and r == reason]

    def schedule(self) -> list[str]:
        """Bind every ungated, unbound managed pod that fits somewhere; return their keys."""
        offers = build_offers(self.cloud.catalog, self.config)
        by_key = {(o.name, str(o.category)): o for o in offers}
        bound = []
        nodes = existing_nodes(self.nodes(), list(self.pod_objects.values()), by_key, self.config)
        for key, pod in sorted(self.pod_objects.items()):
            if node_name_of(pod) or scheduling_gates(pod):
                continue
            try:
                pending, _ = describe_pod(pod, self.config)
            except GibbousError as error:  # the extender's reply to a pod it cannot read
                pod["status"] = unschedulable_status(f"gibbous: cannot read the pod: {error}")
                continue
            selector = (pod.get("spec") or {}).get("nodeSelector") or {}
            index = next(
                (
                    i
                    for i, n in enumerate(nodes)
                    if node_admits(pending, n, self.config)
                    and all(n.labels.get(k) == v for k, v in selector.items())
                    and fit_count(pending.requirement.requests, n.free) >= 1
                ),
                None,
            )
            if index is None:
                pod["status"] = unschedulable_status(
                    f"0/{len(nodes)} nodes are available: Insufficient cpu."
                )
                continue
            target = nodes[index]
            nodes[index] = replace(target, free=target.free - pending.requirement.requests)
            pod["spec"]["nodeName"] = target.name
            pod["status"] = {"phase": "Running"}
            bound.append(key)
        return bound


class Tokens:
    """Deterministic launch tokens."""

    def __init__(self, prefix: str = "t") -> None:
        self.prefix, self.count = prefix, 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:06d}"
