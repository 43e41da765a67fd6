"""The simulated cluster: what the API server, kube-scheduler, the kubelets and the workload
controllers do, on a virtual clock, around whichever provisioning policy runs.

* Nodes are the cloud's running instances (the fake provider's), registering with the
  labels and taints their launch asked for, as a node bootstrap does, plus hostname and
  zone; a node is gone once its instance is.
* kube-scheduler: each step, unbound pods in creation order go to the first node (by name)
  whose free allocatable holds their requests and whose labels and taints they accept;
  with the Gibbous extender (`steering`), bin-select pods only to their own nodes and
  bin-pack pods never to those, as the extender filters. A pod that fits nowhere gets
  PodScheduled=False with kube-scheduler's message, which the intake reads.
* kubelets: a bound pod runs at once (image pulls are in the node's boot time); a pod
  with a run time finishes when it is over and is removed; a deleted pod is gone at once;
  an evicted one terminates after the scenario's eviction grace (default 0), holding its
  node until then, while its controller's replacement is made at once.
* API server admission: ExtendedResourceToleration (on in EKS, GKE and the dev cluster)
  gives a pod asking for nvidia.com/gpu a toleration of any nvidia.com/gpu NoSchedule taint;
  where Gibbous is installed (`steering`), its mutating webhook changes each new pod as it
  would in a cluster (`plan_mutation` with the scenario's options): the placement label,
  tolerations of the spot taints when the pod may run on spot, the provisioning gate when
  `provisioningGate` is on. A pod written as a user writes it (the race's) then runs on the
  spot node Gibbous launched for it, as it does in a real cluster.
* controllers: a pod of a workload that replaces its pods (a Deployment, not a Job) is
  recreated from the workload's template (and admitted afresh), pending, when it is
  evicted, deleted, or its node goes.
* metrics.k8s.io: a pod uses what its workload's usage profile says at its age, else its
  requests; a node, the sum of its pods'; all as of the scenario's metrics lag ago (default
  0; a pod bound more recently is not reported yet). With `usageClock: workload` a
  replacement's age counts from when the pod it replaces started (the load is the
  workload's traffic, which moves with it).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jsonpatch

from gibbous.autoscaler.cloud.base import InstanceState
from gibbous.autoscaler.lifecycle import Eviction
from gibbous.core import keys
from gibbous.core.admission.mutation import ServerFeatures, plan_mutation, plan_release
from gibbous.core.choice.catalog import node_allocatable
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.errors import GibbousError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import PendingPod, fit_count, node_admits
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.podmodel.pods import Pod, key_of, node_name_of, scheduling_gates
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config
from gibbous.simulation.cloud import SimCloud


@dataclass(frozen=True)
class UsagePoint:
    after_s: float  # pod age at which this usage starts
    cpu: float  # cores
    memory: float  # bytes


@dataclass
class SimPod:
    """A pod and what the simulation knows of it beyond its object."""

    obj: dict[str, Any]
    workload: str
    created_at: float
    run_for_s: float | None  # None: until the end
    replace: bool
    usage: tuple[UsagePoint, ...] = ()
    bound_at: float | None = None
    arrival: int = 0  # which arrival of its workload it came with
    replacement: bool = False  # made by its controller for a pod that went
    usage_follows_workload: bool = False  # usageClock: workload
    # With it: when the pods this one replaces started (the origin of its usage age).
    usage_from: float | None = None
    terminating_until: float | None = None  # evicted, terminating until then
    # What its controller makes its replacement from (a ReplicaSet's template, not this
    # pod as admission and the autoscaler changed it).
    template: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Tally:
    """What happened to pods, for the results."""

    pending_s: list[float] = field(default_factory=list)  # creation -> bound, per pod
    bound: int = 0  # pods bound
    evictions: int = 0
    interrupted_pods: int = 0
    interruptions: int = 0
    finished: int = 0
    arrivals: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # -> bound times
    arrival_times: dict[tuple[str, int], float] = field(default_factory=dict)
    arrival_counts: dict[tuple[str, int], int] = field(default_factory=dict)  # scale-ups


@dataclass(kw_only=True)
class NodeMarks:
    """The taints and annotations node lifecycle puts on nodes, kept as a stand-in for the
    API server keeps them (the simulated cluster's, the loop tests' fake's)."""

    node_taints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    node_annotations: dict[str, dict[str, str]] = field(default_factory=dict)

    def set_hot_taint(self, node: str, value: str) -> None:
        kept = [t for t in self.node_taints.get(node, []) if t["key"] != keys.HOT_NODE_TAINT]
        if value:
            kept.append({"key": keys.HOT_NODE_TAINT, "value": value, "effect": "NoSchedule"})
        self.node_taints[node] = kept

    def annotate_node(self, node: str, key: str, value: str) -> None:
        self.node_annotations.setdefault(node, {})[key] = value


@dataclass
class SimCluster(NodeMarks):
    cloud: SimCloud
    config: Config
    clock: Callable[[], float]
    offers_by_key: Mapping[tuple[str, str], Offer]
    # Gibbous is installed: its webhook mutates new pods and its extender's filters apply.
    steering: bool = True
    metrics_lag_s: float = 0.0
    eviction_grace_s: float = 0.0
    pods_by_key: dict[str, SimPod] = field(default_factory=dict)
    events: list[tuple[str, str, str, bool]] = field(default_factory=list)
    event_reasons: dict[str, set[str]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    cordoned: set[str] = field(default_factory=set)
    repairs: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = field(default_factory=dict)
    deleted_nodes: set[str] = field(default_factory=set)
    # workload -> requests VPA's admission controller writes on its new pods
    resized: dict[str, dict[str, str]] = field(default_factory=dict)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- pods ----------------------------------------------------------------------------

    def create_pod(
        self,
        template: Mapping[str, Any],
        *,
        workload: str,
        run_for_s: float | None,
        replace_pods: bool,
        usage: tuple[UsagePoint, ...],
        arrival: int,
        replacement: bool = False,
        usage_follows_workload: bool = False,
        usage_from: float | None = None,
    ) -> SimPod:
        number = next(self._names)
        meta = dict(template.get("metadata") or {})
        name = f"{workload}-{number:06d}"
        spec = _copy(template.get("spec") or {})
        if any(
            keys.NVIDIA_GPU in ((c.get("resources") or {}).get("limits") or {})
            or keys.NVIDIA_GPU in ((c.get("resources") or {}).get("requests") or {})
            for c in spec.get("containers") or []
        ):  # ExtendedResourceToleration
            spec["tolerations"] = [
                *(spec.get("tolerations") or []),
                {"key": keys.NVIDIA_GPU, "operator": "Exists", "effect": "NoSchedule"},
            ]
        requests = self.resized.get(workload)
        if requests:
            for container in spec.get("containers") or []:
                resources = container.setdefault("resources", {})
                resources["requests"] = {**(resources.get("requests") or {}), **requests}
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **meta,
                "name": name,
                "namespace": meta.get("namespace") or "default",
                "uid": f"uid-{number:08d}",
                "labels": dict(meta.get("labels") or {}),
                "annotations": dict(meta.get("annotations") or {}),
                "creationTimestamp": _stamp(self.clock()),
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        if self.steering:
            obj = self._admit(obj)
        if replace_pods and not obj["metadata"].get("ownerReferences"):
            # Its controller, as the API shows it: what tells an autoscaler that an evicted
            # pod comes back (consolidation moves only such pods).
            obj["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": workload,
                    "uid": f"sim-{workload}",
                    "controller": True,
                }
            ]
        pod = SimPod(
            obj=obj,
            workload=workload,
            created_at=self.clock(),
            run_for_s=run_for_s,
            replace=replace_pods,
            usage=usage,
            arrival=arrival,
            replacement=replacement,
            usage_follows_workload=usage_follows_workload,
            usage_from=usage_from,
            template=template,
        )
        self._touch(obj)
        self.pods_by_key[key_of(obj)] = pod
        self.tally.arrival_times.setdefault((workload, arrival), self.clock())
        self.tally.arrivals.setdefault((workload, arrival), [])
        return pod

    def _admit(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The pod as Gibbous's mutating webhook returns it (a pod it leaves unmanaged, or
        cannot read, unchanged: the webhook's failurePolicy is Ignore)."""
        mutation = plan_mutation(
            obj,
            namespace=obj["metadata"]["namespace"],
            operation="CREATE",
            config=self.config,
            features=ServerFeatures(),
        )
        if not mutation.operations:
            return obj
        patched: dict[str, Any] = jsonpatch.apply_patch(obj, list(mutation.operations))
        return patched

    def _touch(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def _change(
        self,
        pod: SimPod,
        *,
        spec: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        """A new version of the pod's object, never the old one changed in place: readers
        keep the objects they were given and compare versions, as with the API server."""
        obj = {
            **pod.obj,
            "metadata": dict(pod.obj["metadata"]),
            "spec": spec if spec is not None else pod.obj["spec"],
            "status": status if status is not None else pod.obj["status"],
        }
        self._touch(obj)
        pod.obj = obj

    def resize(self, workload: str, requests: Mapping[str, str]) -> None:
        """VPA in Auto mode: new requests for the workload's pods, which its updater evicts
        for their controller to recreate with them (one container pods: every container
        gets them)."""
        self.resized[workload] = dict(requests)
        for key, pod in list(self.pods_by_key.items()):
            if pod.workload == workload:
                self.remove_pod(key, why="vpa")

    def scale(
        self,
        template: Mapping[str, Any],
        *,
        workload: str,
        replicas: int,
        run_for_s: float | None,
        usage: tuple[UsagePoint, ...],
        arrival: int,
    ) -> None:
        """The workload's controller scaled to `replicas`: new pods (one arrival), or pods
        deleted as a ReplicaSet ranks them (unbound first, then the newest)."""
        alive = [
            (key, pod)
            for key, pod in self.pods_by_key.items()
            if pod.workload == workload and pod.terminating_until is None
        ]
        more = replicas - len(alive)
        if more > 0:
            for _ in range(more):
                self.create_pod(
                    template,
                    workload=workload,
                    run_for_s=run_for_s,
                    replace_pods=True,
                    usage=usage,
                    arrival=arrival,
                )
            self.tally.arrival_counts[(workload, arrival)] = more
            return
        ranked = sorted(alive, key=lambda kp: (kp[1].bound_at is not None, -kp[1].created_at))
        for key, _ in ranked[: -more or 0]:
            self.remove_pod(key, why="scaled")

    def remove_pod(self, key: str, *, why: str) -> None:
        """The pod is gone; its controller makes a new one if it replaces its pods."""
        pod = self.pods_by_key.pop(key, None)
        if pod is None:
            return
        if pod.bound_at is None:
            self.tally.pending_s.append(self.clock() - pod.created_at)
        if why in ("finished", "scaled", "terminated") or pod.terminating_until is not None:
            self.tally.finished += why == "finished"
            return
        self._replace(pod)

    def _replace(self, pod: SimPod) -> None:
        if pod.replace:
            self.create_pod(
                pod.template,
                workload=pod.workload,
                run_for_s=pod.run_for_s,
                replace_pods=True,
                usage=pod.usage,
                arrival=pod.arrival,
                replacement=True,
                usage_follows_workload=pod.usage_follows_workload,
                usage_from=(pod.usage_from if pod.usage_from is not None else pod.bound_at)
                if pod.usage_follows_workload
                else None,
            )

    # --- the loop's Cluster protocol -------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return [pod.obj for pod in self.pods_by_key.values()]

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for instance in self.cloud.list(self.config.cluster_id):
            if not instance.node_name or instance.node_name in self.deleted_nodes:
                continue
            offer = self.offers_by_key.get((instance.instance_type, instance.category))
            if offer is None:
                continue
            labels = dict(instance.labels)
            taints = [dict(t) for t in self.cloud.launch_taints.get(instance.id, ())]
            repaired = self.repairs.get(instance.node_name)
            if repaired:
                labels.update(repaired[0])
                taints += repaired[1]
            taints += self.node_taints.get(instance.node_name, [])
            labels[keys.HOSTNAME] = instance.node_name
            labels[keys.ZONE] = instance.zone
            out.append(
                {
                    "metadata": {
                        "name": instance.node_name,
                        "labels": labels,
                        "annotations": dict(self.node_annotations.get(instance.node_name, {})),
                        "creationTimestamp": _stamp(instance.created_at),
                        "resourceVersion": _node_version(
                            instance.node_name, labels, taints, instance.node_name in self.cordoned
                        ),
                    },
                    "spec": {
                        "taints": taints,
                        "unschedulable": instance.node_name in self.cordoned,
                        "providerID": f"sim:///{instance.zone}/{instance.id}",
                    },
                    "status": {
                        "allocatable": node_allocatable(
                            offer.instance, self.config
                        ).to_resource_list(),
                        "capacity": {
                            "cpu": str(offer.instance.vcpu),
                            "memory": str(offer.instance.memory_bytes),
                        },
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        return out

    def pods_with_event(self, reason: str) -> frozenset[str]:
        return frozenset(self.event_reasons.get(reason, ()))

    def emit_event(
        self, obj: Pod, reason: str, message: str, *, warning: bool, kind: str = "Pod"
    ) -> None:
        uid = str((obj.get("metadata") or {}).get("uid") or (obj.get("metadata") or {}).get("name"))
        self.events.append((uid, reason, message, warning))
        self.event_reasons.setdefault(reason, set()).add(uid)

    def repair_node(
        self, name: str, labels: Mapping[str, str], taints: Sequence[Mapping[str, str]]
    ) -> None:
        current = self.repairs.setdefault(name, ({}, []))
        current[0].update(labels)
        current[1].extend(dict(t) for t in taints)

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def delete_pod(self, pod: Pod) -> None:
        self.remove_pod(key_of(pod), why="deleted")

    def release_pod(self, pod: Pod, hostname: str | None) -> None:
        key = key_of(pod)
        sim = self.pods_by_key.get(key)
        if sim is None:
            return
        patched = jsonpatch.apply_patch(sim.obj, plan_release(pod, hostname))
        self._change(sim, spec=patched["spec"])
        sim.obj["metadata"] = patched["metadata"] | {
            "resourceVersion": sim.obj["metadata"]["resourceVersion"]
        }

    # --- node lifecycle operations ---------------------------------------------------------

    def cordon(self, node: str) -> None:
        self.cordoned.add(node)

    def evict(self, pod: Pod) -> Eviction:
        key = key_of(pod)
        if key not in self.pods_by_key:
            return Eviction.GONE
        sim = self.pods_by_key[key]
        if sim.terminating_until is not None:
            return Eviction.EVICTED
        self.tally.evictions += 1
        if self.eviction_grace_s <= 0 or not node_name_of(sim.obj):
            self.remove_pod(key, why="evicted")
            return Eviction.EVICTED
        sim.terminating_until = self.clock() + self.eviction_grace_s
        self._change(sim)  # a new version, marked for deletion
        sim.obj["metadata"]["deletionTimestamp"] = _stamp(self.clock())
        self._replace(sim)
        return Eviction.EVICTED

    def delete_node(self, node: str) -> None:
        self.deleted_nodes.add(node)
        self._node_gone(node)

    def node_metrics(self) -> list[dict[str, Any]] | None:
        totals: dict[str, list[float]] = {}
        for pod in self.pods_by_key.values():
            node = node_name_of(pod.obj)
            if node and self._reported(pod):
                cpu, memory = self.usage_of(pod)
                total = totals.setdefault(node, [0.0, 0.0])
                total[0] += cpu
                total[1] += memory
        return [
            {"metadata": {"name": name}, "usage": _usage(cpu, memory)}
            for name, (cpu, memory) in totals.items()
        ]

    def pod_metrics(self) -> list[dict[str, Any]] | None:
        out = []
        for pod in self.pods_by_key.values():
            if node_name_of(pod.obj) and self._reported(pod):
                cpu, memory = self.usage_of(pod)
                meta = pod.obj["metadata"]
                out.append(
                    {
                        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                        "containers": [{"name": "main", "usage": _usage(cpu, memory)}],
                    }
                )
        return out

    def _reported(self, pod: SimPod) -> bool:
        """Whether metrics.k8s.io reports the pod yet (bound at least the lag ago)."""
        return pod.bound_at is not None and pod.bound_at <= self.clock() - self.metrics_lag_s

    def usage_of(self, pod: SimPod) -> tuple[float, float]:
        """(cores, bytes) the pod used the metrics lag ago: its profile at its age then, else
        its requests."""
        now = self.clock() - self.metrics_lag_s
        if pod.bound_at is None:
            age = 0.0
        else:
            age = now - (pod.usage_from if pod.usage_from is not None else pod.bound_at)
        current = None
        for point in pod.usage:
            if point.after_s <= age:
                current = point
        if current is not None:
            return current.cpu, current.memory
        try:
            pending, _ = describe_pod(pod.obj, self.config)
        except GibbousError:
            return 0.0, 0.0
        requests = pending.requirement.requests
        return requests.cpu_millis / 1000, float(requests.memory_bytes)

    # --- kube-scheduler, kubelets, the cloud's reclaims --------------------------------------

    def schedule(self) -> int:
        """Bind what fits (see the module's description); returns how many were bound."""
        unbound = [
            p
            for p in self.pods_by_key.values()
            if not node_name_of(p.obj) and not scheduling_gates(p.obj)
        ]
        if not unbound:
            return 0
        nodes = [
            n
            for n in existing_nodes(self.nodes(), self.pods(), self.offers_by_key, self.config)
            if n.name not in self.cordoned
        ]
        bound = 0
        for pod in sorted(unbound, key=lambda p: (p.created_at, p.obj["metadata"]["name"])):
            try:
                pending, _ = describe_pod(pod.obj, self.config)
            except GibbousError as error:
                self._change(pod, status=unschedulable_status(f"cannot read the pod: {error}"))
                continue
            index = next(
                (
                    i
                    for i, node in enumerate(nodes)
                    if self._admits(pending, node, pod.obj)
                    and fit_count(pending.requirement.requests, node.free) >= 1
                ),
                None,
            )
            if index is None:
                if pod.obj["status"].get("phase") != "Pending" or not pod.obj["status"].get(
                    "conditions"
                ):
                    self._change(
                        pod,
                        status=unschedulable_status(
                            f"0/{len(nodes)} nodes are available: Insufficient cpu."
                        ),
                    )
                continue
            target = nodes[index]
            nodes[index] = replace(target, free=target.free - pending.requirement.requests)
            self._change(
                pod,
                spec={**pod.obj["spec"], "nodeName": target.name},
                status={"phase": "Running", "startTime": _stamp(self.clock())},
            )
            pod.bound_at = self.clock()
            waited = self.clock() - pod.created_at
            self.tally.pending_s.append(waited)
            self.tally.bound += 1
            if not pod.replacement:  # time to capacity is the arrival's own pods'
                self.tally.arrivals[(pod.workload, pod.arrival)].append(self.clock())
            bound += 1
        return bound

    def _admits(self, pending: PendingPod, node: Any, obj: Mapping[str, Any]) -> bool:
        selector = (obj.get("spec") or {}).get("nodeSelector") or {}
        if any(node.labels.get(k) != v for k, v in selector.items()):
            return False
        if self.steering:
            return node_admits(pending, node, self.config)
        # kube-scheduler alone: labels, affinity and taints; placement means nothing.
        return node_admits(
            replace(pending, placement=Placement.BIN_PACK),
            replace(node, placement=None),
            self.config,
        )

    def run_kubelets(self) -> None:
        now = self.clock()
        for key, pod in list(self.pods_by_key.items()):
            if pod.terminating_until is not None and now >= pod.terminating_until:
                self.remove_pod(key, why="terminated")
            elif (
                pod.bound_at is not None
                and pod.run_for_s is not None
                and now - pod.bound_at >= pod.run_for_s
            ):
                self.remove_pod(key, why="finished")

    def reclaim(self, instance_id: str) -> None:
        """The cloud takes an instance back (spot): it and its node are gone."""
        instance = self.cloud.instances.get(instance_id)
        if instance is None or instance.state is InstanceState.TERMINATED:
            return
        self.cloud.instances[instance_id] = replace(instance, state=InstanceState.TERMINATED)
        if instance.node_name:
            for pod in list(self.pods_by_key.values()):
                if node_name_of(pod.obj) == instance.node_name:
                    self.tally.interrupted_pods += 1
            self._node_gone(instance.node_name)

    def _node_gone(self, node: str) -> None:
        for key, pod in list(self.pods_by_key.items()):
            if node_name_of(pod.obj) == node:
                self.remove_pod(key, why="node gone")

    def sweep_terminated(self) -> None:
        """Pods on nodes whose instance is gone (deleted by the policy) go with them."""
        live = {
            i.node_name
            for i in self.cloud.instances.values()
            if i.node_name and i.state is not InstanceState.TERMINATED
        }
        for key, pod in list(self.pods_by_key.items()):
            node = node_name_of(pod.obj)
            if node and node not in live:
                self.remove_pod(key, why="node gone")


def _node_version(
    name: str, labels: Mapping[str, str], taints: list[dict[str, Any]], cordoned: bool
) -> str:
    return str(hash((name, tuple(sorted(labels.items())), repr(taints), cordoned)) & 0xFFFFFFFF)


def _usage(cpu: float, memory: float) -> dict[str, str]:
    return {"cpu": f"{round(cpu * 1e9)}n", "memory": str(round(memory))}


def unschedulable_status(message: str) -> dict[str, Any]:
    """The status kube-scheduler writes on a pod it could not place."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ],
    }


def _stamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


__all__ = ["Resources", "SimCluster", "SimPod", "Tally", "UsagePoint"]
