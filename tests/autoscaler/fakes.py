"""An in-memory cluster for loop tests: Nodes appear when the fake cloud's instances run (a
kubelet registering), and `schedule()` plays kube-scheduler well enough to bind pods to
nodes with room and mark the rest Unschedulable.

Neither decides with the product's functions (a fake that reuses the planner cannot see
the planner and the scheduler disagree): `schedule()` follows kube-scheduler's filter
plugins (NodeResourcesFit, TaintToleration, NodeAffinity with nodeSelector and required
matchExpressions, NodeUnschedulable) and the extender's documented placement rules, with
its own quantity reading; nodes take allocatable from this file's kubelet model, which a
test may make smaller than the planner predicts (`kubelet_extra_reserved`), as real
kubelets that reserve more do."""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import jsonpatch

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.lifecycle import Eviction
from gibbous.core import keys
from gibbous.core.admission.mutation import plan_release
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.daemonsets import DaemonSetPod, describe_daemonset
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
    # What the kubelet reserves beyond the model below: nodes smaller than planned.
    kubelet_extra_reserved: tuple[int, int] = (0, 0)  # (CPU millicores, memory bytes)

    # --- the Cluster protocol --------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        # Copies, as the API hands out; through JSON (what they are), several times faster
        # than deepcopy for the thousand-pod tests.
        copied: list[dict[str, Any]] = json.loads(json.dumps(list(self.pod_objects.values())))
        return copied

    def daemonset_pods(self) -> tuple[DaemonSetPod, ...] | None:
        """Described afresh on each call (equal, not the same tuple, as KubeCluster's)."""
        if self.daemonset_objects is None:
            return None
        described = map(describe_daemonset, self.daemonset_objects)
        return tuple(d for d in described if isinstance(d, DaemonSetPod))

    def nodes(self) -> list[dict[str, Any]]:
        out = copy.deepcopy(self.static_nodes)
        by_name = {t.name: t for t in self.cloud.catalog}
        for instance in self.cloud.machines(self.config.cluster_id):
            if not instance.node_name:
                continue
            instance_type = by_name[instance.instance_type]
            allocatable = kubelet_allocatable(
                instance_type, self.config.nvidia_gpu_time_slices, self.kubelet_extra_reserved
            )
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
        """Bind every ungated, unbound pod that fits somewhere (nodes in name order, first
        fit, as a scheduler that scores all nodes alike); return their keys."""
        nodes = [n for n in self.nodes() if _schedulable(n)]
        nodes.sort(key=lambda n: n["metadata"]["name"])
        used: dict[str, dict[str, Fraction]] = {n["metadata"]["name"]: {} for n in nodes}
        pending_uids = set()
        for pod in self.pod_objects.values():
            on = node_name_of(pod)
            if not on and not _finished(pod):
                pending_uids.add(uid_of(pod))
            if on in used and not _finished(pod):
                _add(used[on], {"pods": Fraction(1)})
                with contextlib.suppress(ValueError):  # unreadable: counts as nothing
                    _add(used[on], requested(pod))
        bound = []
        for key, pod in sorted(self.pod_objects.items()):
            if node_name_of(pod) or scheduling_gates(pod) or _finished(pod):
                continue
            try:
                requests = requested(pod)
            except ValueError as error:  # the extender's reply to a pod it cannot read
                pod["status"] = unschedulable_status(f"gibbous: cannot read the pod: {error}")
                continue
            reasons: list[str] = []
            target = None
            for node in nodes:
                name = node["metadata"]["name"]
                why = self._refusal(pod, requests, node, used[name], pending_uids)
                if not why:
                    target = name
                    break
                reasons.append(why)
            if target is None:
                counted = sorted(set(reasons)) or ["no nodes"]
                pod["status"] = unschedulable_status(
                    f"0/{len(nodes)} nodes are available: {', '.join(counted)}."
                )
                continue
            _add(used[target], {**requests, "pods": Fraction(1)})
            pending_uids.discard(uid_of(pod))
            pod["spec"]["nodeName"] = target
            pod["status"] = {"phase": "Running"}
            bound.append(key)
        return bound

    def _refusal(
        self,
        pod: dict[str, Any],
        requests: dict[str, Fraction],
        node: dict[str, Any],
        used: dict[str, Fraction],
        pending_uids: set[str],
    ) -> str:
        """Why kube-scheduler (with Gibbous's extender) would not bind `pod` here, or ""."""
        spec = pod.get("spec") or {}
        labels = node["metadata"].get("labels") or {}
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
                taint, spec.get("tolerations") or []
            ):
                return "node(s) had untolerated taint"
        selector = spec.get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        if not _required_affinity_matches(spec, labels):
            return "node(s) didn't match Pod's node affinity/selector"
        allocatable = node["status"]["allocatable"]
        for resource, amount in (*requests.items(), ("pods", Fraction(1))):
            have = _quantity(allocatable.get(resource, "0"))
            if used.get(resource, Fraction(0)) + amount > have:
                return "Too many pods" if resource == "pods" else f"Insufficient {resource}"
        return self._extender_refusal(pod, requests, labels, pending_uids)

    def _extender_refusal(
        self,
        pod: dict[str, Any],
        requests: dict[str, Fraction],
        labels: Mapping[str, str],
        pending_uids: set[str],
    ) -> str:
        """The extender's placement rules (docs/decisions.md, Luna's P08/P09): bin-pack
        pods stay off bin-select nodes and the reverse; a bin-select node is kept for its
        pod while that pod waits, and for it alone when node reuse is off."""
        metadata = pod.get("metadata") or {}
        marks = [(metadata.get("labels") or {}, self.config.managed_labels)]
        marks.append((metadata.get("annotations") or {}, self.config.managed_annotations))
        if not any(have.get(k) == v for have, pairs in marks for k, v in pairs):
            return ""  # the default scheduler's pod: no extender
        node_placement = labels.get(keys.PLACEMENT)
        if _luna_placement(pod, requests, self.config) == keys.PLACEMENT_BIN_PACK:
            return "gibbous: bin-select node" if node_placement == "bin-select" else ""
        if node_placement == keys.PLACEMENT_BIN_PACK:
            return "gibbous: bin-pack node"
        assigned = labels.get(keys.ASSIGNED_POD_UID, "")
        reserved = not self.config.bin_select_node_reuse or assigned in pending_uids
        theirs = bool(assigned) and assigned != uid_of(pod)
        if node_placement == keys.PLACEMENT_BIN_SELECT and theirs and reserved:
            return "gibbous: node reserved for another pod"
        return ""


# --- the fake's own rules ----------------------------------------------------------------

_SUFFIXES = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{
        s: Fraction(2 ** (10 * (i + 1))) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    },
}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:[eE]([+-]?[0-9]+))?([a-zA-Z]*)")


@functools.lru_cache(maxsize=4096)
def _quantity(value: object) -> Fraction:
    """A Kubernetes quantity (`250m`, `1.5Gi`, `1e3`, `2`), read as the API server reads
    the common forms; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fraction(value)
    text = str(value).strip() if isinstance(value, str) else ""
    match = _QUANTITY.fullmatch(text)
    if not match or match.group(3) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        amount = Fraction(Decimal(number))
    except InvalidOperation as error:
        raise ValueError(f"not a quantity: {value!r}") from error
    if exponent is not None:
        amount *= Fraction(10) ** int(exponent)
    return amount * _SUFFIXES[suffix]


def _add(into: dict[str, Fraction], amounts: Mapping[str, Fraction]) -> None:
    for resource, amount in amounts.items():
        into[resource] = into.get(resource, Fraction(0)) + amount


def requested(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    """What kube-scheduler's NodeResourcesFit counts for a pod: per resource, the sum over
    the containers or the largest init container, whichever is larger, plus the pod's
    overhead; a limit stands for a missing request (API defaulting)."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> dict[str, Fraction]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {name: _quantity(amount) for name, amount in merged.items()}

    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        _add(total, of(container))
    for init in spec.get("initContainers") or []:
        for resource, amount in of(init).items():
            total[resource] = max(total.get(resource, Fraction(0)), amount)
    _add(total, {k: _quantity(v) for k, v in (spec.get("overhead") or {}).items()})
    return {k: v for k, v in total.items() if v > 0}


def _luna_placement(
    pod: Mapping[str, Any], requests: Mapping[str, Fraction], config: Config
) -> str:
    """Luna's classes (P08): bin-select at or above a bin-select threshold (0 turns one
    off), or with a node-constraint annotation, or with bin-packing off; else bin-pack."""
    if not config.bin_packing_enabled:
        return keys.PLACEMENT_BIN_SELECT
    cpu = requests.get("cpu", Fraction(0)) * 1000
    memory = requests.get("memory", Fraction(0))
    gpus = requests.get(keys.NVIDIA_GPU, Fraction(0))
    over = (
        (config.bin_select_cpu_millis and cpu >= config.bin_select_cpu_millis)
        or (config.bin_select_memory_bytes and memory >= config.bin_select_memory_bytes)
        or (config.bin_select_gpus and gpus >= config.bin_select_gpus)
    )
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if over or any(k.startswith("node.elotl.co/instance-") for k in annotations):
        return keys.PLACEMENT_BIN_SELECT
    return keys.PLACEMENT_BIN_PACK


def _tolerated(taint: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    """TaintToleration: an empty key with Exists tolerates everything; Exists matches any
    value; Equal (the default) the same value; an empty effect every effect."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _required_affinity_matches(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """NodeAffinity's requiredDuringSchedulingIgnoredDuringExecution: any term whose
    matchExpressions all hold (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    if not isinstance(required, Mapping):
        return False  # not a NodeSelector: the API server would not have stored the pod
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True

    def holds(expression: Mapping[str, Any]) -> bool:
        key, operator = expression.get("key", ""), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In":
            return key in labels and labels[key] in values
        if operator == "NotIn":
            return key not in labels or labels[key] not in values
        if operator == "Exists":
            return key in labels
        if operator == "DoesNotExist":
            return key not in labels
        if operator in ("Gt", "Lt") and key in labels and len(values) == 1:
            try:
                have, bound = int(labels[key]), int(values[0])
            except ValueError:
                return False
            return have > bound if operator == "Gt" else have < bound
        return False

    return any(
        (term.get("matchExpressions") or term.get("matchFields"))
        and all(holds(e) for e in term.get("matchExpressions") or [])
        for term in terms
    )


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _schedulable(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not (node.get("spec") or {}).get("unschedulable")


_GIB, _MIB = 2**30, 2**20


def _tiered(amount: float, tiers: Sequence[tuple[float, float]]) -> float:
    reserved = 0.0
    for size, share in tiers:
        step = min(amount, size)
        reserved += step * share
        amount -= step
    return reserved


def kubelet_allocatable(
    instance: InstanceType, time_slices: int, extra_reserved: tuple[int, int] = (0, 0)
) -> dict[str, str]:
    """The allocatable a kubelet of this type registers, less the requests of the
    DaemonSet pods every node runs here (100m, 200Mi). Reservations as GKE documents them
    (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes): CPU 6 % of the
    first core, 1 % of the next, 0.5 % of the next 2, 0.25 % above; memory 255Mi under
    1Gi, else 25 % of the first 4Gi, 20 % of the next 4Gi, 10 % of the next 8Gi, 6 % of
    the next 112Gi, 2 % above; and the 100Mi hard-eviction threshold."""
    cores = instance.vcpu
    cpu_reserved = _tiered(cores, ((1, 60), (1, 10), (2, 5), (math.inf, 2.5)))
    memory = instance.memory_bytes
    memory_reserved = (
        255 * _MIB
        if memory < _GIB
        else _tiered(
            memory,
            (
                (4 * _GIB, 0.25),
                (4 * _GIB, 0.2),
                (8 * _GIB, 0.1),
                (112 * _GIB, 0.06),
                (math.inf, 0.02),
            ),
        )
    )
    cpu = cores * 1000 - round(cpu_reserved) - 100 - extra_reserved[0]
    memory_left = memory - round(memory_reserved) - 100 * _MIB - 200 * _MIB - extra_reserved[1]
    out = {
        "cpu": f"{max(0, math.floor(cpu))}m",
        "memory": str(max(0, memory_left)),
        "pods": str(instance.max_pods or 110),
    }
    if instance.gpu_count:
        out[keys.NVIDIA_GPU] = str(instance.gpu_count * time_slices)
    return out


class Tokens:
    """Deterministic launch tokens."""

    def __init__(self, prefix: str = "t") -> None:
        self.prefix, self.count = prefix, 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:06d}"
