"""`gibbous estimate`: the nodes and hourly cost a set of manifests would need.

Workloads are expanded to pods (`expand_workloads`), planned with the same
simulator the autoscaler uses (on an empty cluster, as Luna's estimates are),
and summarised per workload (`estimate`).

Cost attribution: a node used by several workloads (bin-pack nodes, or a
bin-select node reused by identical pods) is split between them in proportion
to the CPU their pods request on it (pod count when no CPU is requested). The
cluster total is the plain sum of node prices.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.nodedisk import default_disk_gib
from gibbous.core.choice.selection import build_offers
from gibbous.core.choice.wrongsize import WrongSize, wrong_size
from gibbous.core.errors import GibbousError, ManifestError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.podmodel.batchcrds import (
    CRD_EXPANDERS,
    TRAINER_GROUP,
    TRAINER_RUNTIME_KINDS,
    runtime_key,
    train_job,
)
from gibbous.core.podmodel.kuberay import RAY_KINDS, ray_workloads
from gibbous.core.podmodel.pods import as_map, metadata
from gibbous.core.podmodel.workloads import (
    GENERATED,
    Workload,
    job_pods,
    pod_template,
    whole_number,
)
from gibbous.core.settings.config import Config

SCHEMA_VERSION = 1
HOURS_PER_WEEK = 168
POD_CONTROLLERS = ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController")


# API group -> the kinds of it counted here (core kinds keep their legacy groups)
CORE_KINDS: dict[str, tuple[str, ...]] = {
    "": ("Pod", "ReplicationController", "List"),
    "apps": ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"),
    "extensions": ("Deployment", "ReplicaSet", "DaemonSet"),
    "batch": ("Job", "CronJob"),
    "node.k8s.io": ("RuntimeClass",),
    "ray.io": RAY_KINDS,
}


def api_group(doc: Mapping[str, Any]) -> str | None:
    """The API group of `doc` ("" for the core group), None when apiVersion is absent."""
    version = doc.get("apiVersion")
    if not isinstance(version, str) or not version:
        return None
    return version.rpartition("/")[0]


def _known_kind(group: str | None, kind: str) -> bool:
    if group is None:  # no apiVersion: read by kind alone, as before groups were checked
        return any(kind in kinds for kinds in CORE_KINDS.values())
    return kind in CORE_KINDS.get(group, ())


def expand_workloads(
    documents: Iterable[Any], source: str = "input"
) -> tuple[list[Workload], list[str]]:
    """Pod-producing objects in `documents` as workloads, plus notes on what was skipped."""
    workloads: list[Workload] = []
    notes: list[str] = []
    runtime_classes: dict[str, Mapping[str, Any]] = {}  # name -> overhead.podFixed
    training_runtimes: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    train_jobs: list[tuple[Mapping[str, Any], str, str, str, str]] = []
    pending = [
        (doc, f"{source} document {i + 1}", f"{source}:{i + 1}") for i, doc in enumerate(documents)
    ]
    while pending:
        doc, where, place = pending.pop(0)
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{where}: not a Kubernetes object (got {type(doc).__name__})")
        kind = str(doc.get("kind") or "")
        group = api_group(doc)
        meta = metadata(doc)
        name = str(meta.get("name") or "")
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{GENERATED}"
        namespace = str(meta.get("namespace") or "default")
        label = f"{where} ({kind or 'no kind'} {name or 'unnamed'})"
        raw_spec = doc.get("spec")
        spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
        found: list[Workload] = []
        if group == TRAINER_GROUP and kind in TRAINER_RUNTIME_KINDS:
            training_runtimes[runtime_key(kind, namespace, name)] = doc
        elif group == TRAINER_GROUP and kind == "TrainJob":
            train_jobs.append((doc, name, namespace, label, place))  # its runtime may follow
        elif (group or "", kind) in CRD_EXPANDERS:
            found, crd_notes = CRD_EXPANDERS[(group or "", kind)](doc, name, namespace, label)
            notes.extend(crd_notes)
        elif not _known_kind(group, kind):
            what = f"{doc.get('apiVersion')} {kind}" if group is not None else repr(kind)
            notes.append(
                f"{label}: skipped: kind {what} is not counted: Gibbous does not know how its "
                "controller makes pods (see the estimate docs for the kinds it counts)"
            )
        elif kind == "List":
            pending = [
                (item, f"{where} item {i + 1}", f"{place}.{i + 1}")
                for i, item in enumerate(doc.get("items") or [])
            ] + pending
        elif kind == "Pod":
            found = [Workload(name, namespace, kind, 1, {"metadata": meta, "spec": spec})]
        elif kind in POD_CONTROLLERS:
            replicas = whole_number(spec.get("replicas"), 1, f"{label} spec.replicas")
            found = [
                Workload(name, namespace, kind, replicas, pod_template(doc, "spec.template", label))
            ]
        elif kind == "Job":
            template = pod_template(doc, "spec.template", label)
            found = [Workload(name, namespace, kind, job_pods(spec, label), template)]
        elif kind == "CronJob":
            job = as_map(as_map(spec.get("jobTemplate")).get("spec"))
            template = pod_template(doc, "spec.jobTemplate.spec.template", label)
            found = [Workload(name, namespace, kind, job_pods(job, label), template)]
        elif kind == "RuntimeClass":
            overhead = doc.get("overhead")
            fixed = overhead.get("podFixed") if isinstance(overhead, Mapping) else None
            runtime_classes[name] = fixed if isinstance(fixed, Mapping) else {}
        elif kind == "DaemonSet":
            notes.append(
                f"{label}: skipped: DaemonSet pods run on every node and are counted in nodeOverhead"
            )
        else:  # a KubeRay kind
            found, ray_notes = ray_workloads(doc, name, namespace, label)
            notes.extend(ray_notes)
        workloads.extend(dataclasses.replace(w, source=place) for w in found)
    for doc, name, namespace, label, place in train_jobs:
        found, trainer_notes = train_job(doc, training_runtimes, name, namespace, label)
        notes.extend(trainer_notes)
        workloads.extend(dataclasses.replace(w, source=place) for w in found)
    return [_with_runtime_overhead(w, runtime_classes, notes) for w in workloads], notes


def distinct_names(workloads: list[Workload]) -> list[Workload]:
    """Workloads of the same kind, namespace and name (two files, or one file twice) each get
    their place in the input (`file:document`) after the name, so their pods and lines stay apart."""
    seen: dict[tuple[str, str, str], int] = {}
    for w in workloads:
        key = (w.kind, w.namespace, w.name)
        seen[key] = seen.get(key, 0) + 1
    return [
        dataclasses.replace(w, name=f"{w.name}@{w.source}")
        if seen[(w.kind, w.namespace, w.name)] > 1 and w.source
        else w
        for w in workloads
    ]


def _with_runtime_overhead(
    workload: Workload, classes: Mapping[str, Mapping[str, Any]], notes: list[str]
) -> Workload:
    """What the RuntimeClass admission plugin does to a created pod: its class's
    `overhead.podFixed` becomes `spec.overhead` (which kube-scheduler adds to the requests)."""
    pod_spec = as_map(workload.template.get("spec"))
    runtime = pod_spec.get("runtimeClassName")
    if not isinstance(runtime, str) or not runtime or "overhead" in pod_spec:
        return workload
    if runtime not in classes:
        notes.append(
            f"{workload.kind} {workload.name}: RuntimeClass {runtime!r} is not in the input; "
            "its pod overhead is not counted"
        )
        return workload
    if not classes[runtime]:
        return workload
    template = {**workload.template, "spec": {**pod_spec, "overhead": dict(classes[runtime])}}
    return dataclasses.replace(workload, template=template)


def workload_pods(workload: Workload) -> list[dict[str, Any]]:
    template_meta = metadata(workload.template)
    base = workload.name.replace("/", "-").replace("@", "-").replace(":", "-")
    pods = []
    for index in range(workload.replicas):
        meta = {
            "name": f"{base}-{index}" if workload.replicas > 1 or workload.kind != "Pod" else base,
            "namespace": workload.namespace,
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": dict(template_meta.get("annotations") or {}),
        }
        pods.append(
            {"metadata": meta, "spec": copy.deepcopy(dict(workload.template.get("spec") or {}))}
        )
    return pods


@dataclass(frozen=True)
class NodeLine:
    instance_type: str
    price_category: str
    price_per_hour: float
    count: int
    shared: bool


@dataclass(frozen=True)
class WorkloadEstimate:
    name: str
    namespace: str
    kind: str
    pods: int
    placement: str  # bin-pack | bin-select | mixed | none
    nodes: tuple[NodeLine, ...]
    cost_per_hour: float
    unsatisfiable: tuple[tuple[str, str], ...]  # (pod, reason), unsupported ones included
    unsupported: frozenset[str] = frozenset()  # pods needing what Gibbous cannot buy yet
    warnings: tuple[str, ...] = ()  # its nodes far larger than their pods ask (wrong size)


@dataclass(frozen=True)
class EstimateNode:
    instance_type: str
    price_category: str
    price_per_hour: float
    placement: str
    pods: tuple[str, ...]
    gpus: int
    zone: str = ""  # set when the pods' inter-pod rules decide it
    wrong_size: WrongSize | None = None  # far larger than its pods ask
    disk_gib: int = 0  # a disk larger than the configured one, for its pods' ephemeral storage


@dataclass(frozen=True)
class EstimateReport:
    cloud: str
    region: str
    catalog: str
    workloads: tuple[WorkloadEstimate, ...]
    nodes: tuple[EstimateNode, ...]
    total_cost_per_hour: float
    notes: tuple[str, ...] = field(default=())
    default_disk_gib: int = 0  # the configured disk a node gets when its pods need no more

    @property
    def unsatisfiable(self) -> list[tuple[str, str, str]]:
        """Pods no node can run, as (workload, pod, reason); unsupported ones excluded."""
        return [
            (w.name, pod, reason)
            for w in self.workloads
            for pod, reason in w.unsatisfiable
            if pod not in w.unsupported
        ]

    @property
    def unsupported(self) -> list[tuple[str, str, str]]:
        """Pods needing what Gibbous recognises but cannot buy yet (TPUs, MIG, AMD, DRA)."""
        return [
            (w.name, pod, reason)
            for w in self.workloads
            for pod, reason in w.unsatisfiable
            if pod in w.unsupported
        ]

    def to_json(self) -> dict[str, Any]:
        """The documented, stable `--output json` schema (docs/estimate-json.md)."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "cloud": self.cloud,
            "region": self.region,
            "catalog": self.catalog,
            "workloads": [
                {
                    "name": w.name,
                    "namespace": w.namespace,
                    "kind": w.kind,
                    "pods": w.pods,
                    "placement": w.placement,
                    "costPerHour": round(w.cost_per_hour, 4),
                    "nodes": [
                        {
                            "instanceType": n.instance_type,
                            "priceCategory": n.price_category,
                            "pricePerHour": n.price_per_hour,
                            "count": n.count,
                            "shared": n.shared,
                        }
                        for n in w.nodes
                    ],
                    "unsatisfiable": [
                        {"pod": p, "reason": r, "unsupported": p in w.unsupported}
                        for p, r in w.unsatisfiable
                    ],
                    "warnings": list(w.warnings),
                }
                for w in self.workloads
            ],
            "nodes": [
                {
                    "instanceType": n.instance_type,
                    "priceCategory": n.price_category,
                    "pricePerHour": n.price_per_hour,
                    "placement": n.placement,
                    "gpus": n.gpus,
                    "pods": list(n.pods),
                    **({"zone": n.zone} if n.zone else {}),
                    **({"wrongSize": _wrong_size_json(n.wrong_size)} if n.wrong_size else {}),
                    **({"diskGiB": n.disk_gib} if n.disk_gib else {}),
                }
                for n in self.nodes
            ],
            "nodeCount": len(self.nodes),
            "totalCostPerHour": round(self.total_cost_per_hour, 4),
            "totalCostPerWeek": round(self.total_cost_per_hour * HOURS_PER_WEEK, 2),
            "unsatisfiable": [
                {"workload": w, "pod": p, "reason": r, "unsupported": False}
                for w, p, r in self.unsatisfiable
            ]
            + [
                {"workload": w, "pod": p, "reason": r, "unsupported": True}
                for w, p, r in self.unsupported
            ],
            "notes": list(self.notes),
        }


def _wrong_size_json(wrong: WrongSize) -> dict[str, Any]:
    return {
        "bareMetal": wrong.bare_metal,
        "excess": [
            {"resource": e.resource, "capacity": e.capacity, "requested": e.requested}
            for e in wrong.excess
        ],
        "message": wrong.describe(),
    }


def estimate(
    workloads: list[Workload],
    catalog: list[InstanceType],
    config: Config,
    *,
    catalog_name: str,
    notes: Iterable[str] = (),
) -> EstimateReport:
    """Plan all workloads' pods on an empty cluster. Bad pods raise GibbousError naming the workload."""
    all_notes = list(notes)
    workloads = distinct_names(workloads)
    pending: list[PendingPod] = []
    owner: dict[str, int] = {}
    classes: dict[str, str] = {}
    for index, workload in enumerate(workloads):
        unmanaged = False
        for pod in workload_pods(workload):
            try:
                demand, _ = describe_pod(pod, config)
            except GibbousError as error:
                raise ManifestError(
                    f"{workload.kind} {workload.namespace}/{workload.name}: {error}"
                ) from None
            pending.append(demand)
            owner[demand.key] = index
            classes[demand.key] = str(demand.placement)
            unmanaged = unmanaged or not config.designation.marks(pod)
        if unmanaged and workload.replicas:
            all_notes.append(
                f"{workload.kind} {workload.namespace}/{workload.name}: pods lack the "
                f"{config.designation.describe()}; estimated as if they had it"
            )
    plan = simulate(pending, build_offers(catalog, config), config)
    requests = {p.key: p.requirement.requests for p in pending}
    requirements = {p.key: p.requirement for p in pending}
    unsupported = {p.key for p in pending if p.unsupported}

    shares: dict[int, float] = {}
    lines: dict[int, dict[tuple[str, str, float, bool], int]] = {}
    warnings: dict[int, dict[str, int]] = {}  # workload -> wrong-size message -> nodes
    nodes = []
    for node in plan.new_nodes:
        wrong = wrong_size(node.offer.instance, (requirements[k] for k in node.pods))
        cpu = {key: requests[key].cpu_millis for key in node.pods}
        total_cpu = sum(cpu.values())
        users = {owner[key] for key in node.pods}
        for key in node.pods:
            weight = cpu[key] / total_cpu if total_cpu else 1 / len(node.pods)
            shares[owner[key]] = shares.get(owner[key], 0.0) + node.offer.price * weight
        for user in users:
            line = (
                node.offer.instance.name,
                str(node.offer.category),
                node.offer.price,
                len(users) > 1,
            )
            lines.setdefault(user, {})
            lines[user][line] = lines[user].get(line, 0) + 1
            if wrong is not None:
                said = warnings.setdefault(user, {})
                said[wrong.describe()] = said.get(wrong.describe(), 0) + 1
        nodes.append(
            EstimateNode(
                node.offer.instance.name,
                str(node.offer.category),
                node.offer.price,
                str(node.placement),
                node.pods,
                node.offer.instance.gpu_count,
                node.zone,
                wrong,
                node.disk_gib,
            )
        )

    results = []
    for index, workload in enumerate(workloads):
        keys_of = [p.key for p in pending if owner[p.key] == index]
        used = {str(plan.placements.get(k, classes[k])) for k in keys_of}
        placement = "none" if not used else used.pop() if len(used) == 1 else "mixed"
        results.append(
            WorkloadEstimate(
                name=workload.name,
                namespace=workload.namespace,
                kind=workload.kind,
                pods=len(keys_of),
                placement=placement,
                nodes=tuple(
                    NodeLine(t, c, p, n, s)
                    for (t, c, p, s), n in sorted(lines.get(index, {}).items())
                ),
                cost_per_hour=shares.get(index, 0.0),
                unsatisfiable=tuple(
                    (k, plan.unschedulable[k]) for k in keys_of if k in plan.unschedulable
                ),
                unsupported=frozenset(k for k in keys_of if k in unsupported),
                warnings=tuple(
                    f"{count} node(s): {message}" if count > 1 else message
                    for message, count in sorted(warnings.get(index, {}).items())
                ),
            )
        )
    return EstimateReport(
        cloud=config.cloud,
        region=config.effective_region,
        catalog=catalog_name,
        workloads=tuple(results),
        nodes=tuple(nodes),
        total_cost_per_hour=math.fsum(n.price_per_hour for n in nodes),
        notes=tuple(all_notes),
        default_disk_gib=default_disk_gib(config),
    )
