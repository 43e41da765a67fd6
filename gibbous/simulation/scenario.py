"""Scenario files for `gibbous simulate` (YAML; every key checked, unknown ones refused
with the nearest known one). The format:

    name: p10-gke-spot
    description: what it reproduces
    cloud: gcp                    # aws | gcp | azure | oci (the built-in catalog)
    duration: 1h                  # how long to simulate
    bootTime: 90s                 # launch to Ready (default 90s); or {min: 60s, max: 3m}:
                                  # each launch's drawn uniformly between the two (seeded)
    metricsLag: 60s               # metrics.k8s.io reports use as of this long ago (default 0)
    evictionGrace: 30s            # an evicted pod terminates this long after its eviction,
                                  # holding its node; its replacement is made at once (default 0)
    config: {spotPriceRatioEstimate: 0.5}   # Gibbous options (Luna's names)
    workloads:
      - name: llm
        at: 0s                    # first arrival
        count: 2                  # pods per arrival
        every: 10m                # arrivals repeat this often (default: once)
        arrivals: 6               # how many arrivals (default 1, or until the end with every)
        runFor: 2h                # each pod's run time once running (default: to the end)
        replace: true             # evicted/interrupted pods are recreated (default true;
                                  # false for Jobs)
        pod: {metadata: {...}, spec: {...}}   # the pod as written (a Pod's metadata and spec)
        usage:                    # what each pod uses from an age on (default: its requests)
          - {after: 0s, cpu: 1800m, memory: 1Gi}
        usageClock: pod           # pod: a replacement starts the profile afresh (its use
                                  # follows its own age: warm-up, leaks); workload: it goes
                                  # on where the pod it replaces was (use follows traffic)
    events:
      - {at: 0s, until: 2h, hang: {type: n1-standard-32+t4x2, category: spot}}
      - {at: 0s, until: 1h, stockout: {type: g4dn.xlarge, category: spot, zone: us-west-2a}}
      - {at: 0s, quota: {type: p3.2xlarge, category: on-demand}}
      - {at: 3h, interrupt: {category: spot, count: 1}}

      - {at: 30m, resize: {workload: api, cpu: 2500m, memory: 2Gi}}
      - {at: 40m, scale: {workload: api, replicas: 4}}

`hang`: launches of the pair are accepted and never finish (the P10 story: Gibbous drops
them at scaleUpTimeout); `stockout`: refused at once; `quota`: refused as over quota;
`interrupt`: that many running instances of the category get the cloud's notice and are
reclaimed two minutes later; `resize`: VPA in Auto mode gives the workload new requests
(its updater evicts the pods, its admission controller writes the new requests on the
pods that replace them and on later arrivals); `scale`: the workload's controller is scaled
to that many replicas (more: new pods, one arrival; fewer: pods deleted as a ReplicaSet
picks them, unbound first, then the newest). A workload's `count` may be 0 when only `scale`
events give it pods. `zone` empty or left out: every zone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gibbous.core import keys
from gibbous.core.choice.catalog import name_from_label
from gibbous.core.errors import GibbousError
from gibbous.core.grammar.duration import parse_duration
from gibbous.core.grammar.quantity import parse_quantity
from gibbous.simulation.cloud import StartingNode
from gibbous.simulation.world import UsagePoint

INTERRUPT_NOTICE_S = 120.0  # EC2's two-minute warning; GCE and Azure give 30 s


class ScenarioError(GibbousError):
    pass


@dataclass(frozen=True)
class Workload:
    name: str
    at_s: float
    count: int
    every_s: float
    arrivals: int
    run_for_s: float | None
    replace: bool
    pod: Mapping[str, Any]
    usage: tuple[UsagePoint, ...]
    usage_follows_workload: bool = False  # usageClock: workload


@dataclass(frozen=True)
class CloudEvent:
    at_s: float
    until_s: float | None
    kind: str  # hang | stockout | quota | interrupt | resize | scale
    instance_type: str = ""
    category: str = ""
    zone: str = ""
    count: int = 0
    workload: str = ""  # resize: whose pods VPA gives new requests
    requests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    cloud: str
    duration_s: float
    boot_s: float
    config: Mapping[str, Any]
    workloads: tuple[Workload, ...]
    events: tuple[CloudEvent, ...]
    nodes: tuple[StartingNode, ...] = ()
    boot_max_s: float | None = None  # launches boot uniformly in [boot_s, boot_max_s]
    metrics_lag_s: float = 0.0
    eviction_grace_s: float = 0.0

    def arrival_times(self, workload: Workload) -> list[float]:
        times = []
        for index in range(workload.arrivals):
            at = workload.at_s + index * workload.every_s
            if at > self.duration_s:
                break
            times.append(at)
        return times


_TOP = {
    "name",
    "description",
    "cloud",
    "duration",
    "bootTime",
    "metricsLag",
    "evictionGrace",
    "config",
    "workloads",
    "events",
}
_WORKLOAD = {
    "name",
    "at",
    "count",
    "every",
    "arrivals",
    "runFor",
    "replace",
    "pod",
    "usage",
    "usageClock",
}
_EVENT = {"at", "until", "hang", "stockout", "quota", "interrupt", "resize", "scale"}
_KINDS = ("hang", "stockout", "quota", "interrupt", "resize", "scale")
_TARGET = {"type", "category", "zone", "count"}
_RESIZE = {"workload", "cpu", "memory"}


def _check(mapping: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise ScenarioError(f"{where}: expected a mapping")
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f" (known: {', '.join(sorted(allowed))})"
            )
            raise ScenarioError(f"{where}: unknown key {key!r}{hint}")
    return mapping


def _duration(value: object, where: str) -> float:
    try:
        return parse_duration(value, where)
    except GibbousError as error:
        raise ScenarioError(str(error)) from None


def _workload(index: int, raw: object, source: str) -> Workload:
    """The scenario's workload `index`, checked."""
    where = f"{source}: workloads[{index}]"
    item = _check(raw, _WORKLOAD, where)
    pod = item.get("pod")
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        raise ScenarioError(f"{where}: pod: expected a pod's metadata and spec")
    every = _duration(item.get("every", 0), f"{where}.every")
    arrivals = int(item.get("arrivals", 1 if not every else 10**9))
    usage = []
    for point_index, raw_point in enumerate(item.get("usage") or []):
        point_where = f"{where}.usage[{point_index}]"
        point = _check(raw_point, {"after", "cpu", "memory"}, point_where)
        try:
            usage.append(
                UsagePoint(
                    after_s=_duration(point.get("after", 0), f"{point_where}.after"),
                    cpu=float(parse_quantity(point.get("cpu", 0), f"{point_where}.cpu")),
                    memory=float(parse_quantity(point.get("memory", 0), f"{point_where}.memory")),
                )
            )
        except GibbousError as error:
            raise ScenarioError(str(error)) from None
    clock = item.get("usageClock", "pod")
    if clock not in ("pod", "workload"):
        raise ScenarioError(f"{where}.usageClock: {clock!r}: expected pod or workload")
    run_for = item.get("runFor")
    count = int(item.get("count", 1))
    if count < 0 or arrivals < 1:
        raise ScenarioError(f"{where}: count must be >= 0 and arrivals >= 1")
    return Workload(
        name=str(item.get("name") or f"w{index}"),
        at_s=_duration(item.get("at", 0), f"{where}.at"),
        count=count,
        every_s=every,
        arrivals=arrivals,
        run_for_s=None if run_for is None else _duration(run_for, f"{where}.runFor"),
        replace=bool(item.get("replace", True)),
        pod=pod,
        usage=tuple(sorted(usage, key=lambda p: p.after_s)),
        usage_follows_workload=clock == "workload",
    )


def parse_scenario(document: Any, source: str = "scenario") -> Scenario:
    top = _check(document, _TOP, source)
    name = str(top.get("name") or Path(source).stem)
    cloud = str(top.get("cloud", "aws"))
    if cloud not in ("aws", "gcp", "azure", "oci"):
        raise ScenarioError(f"{source}: cloud {cloud!r}: expected aws, gcp, azure or oci")
    duration = _duration(top.get("duration", "1h"), f"{source}: duration")
    config = top.get("config") or {}
    if not isinstance(config, Mapping):
        raise ScenarioError(f"{source}: config: expected a mapping of Gibbous options")
    workloads = [
        _workload(index, raw, source) for index, raw in enumerate(top.get("workloads") or [])
    ]
    events = []
    for index, raw in enumerate(top.get("events") or []):
        where = f"{source}: events[{index}]"
        item = _check(raw, _EVENT, where)
        kinds = [k for k in _KINDS if k in item]
        if len(kinds) != 1:
            raise ScenarioError(f"{where}: needs exactly one of {', '.join(_KINDS)}")
        kind = kinds[0]
        if kind == "scale":
            target = _check(item[kind], {"workload", "replicas"}, f"{where}.scale")
            names = {w.name for w in workloads}
            if target.get("workload") not in names:
                raise ScenarioError(
                    f"{where}.scale.workload: {target.get('workload')!r} is none of "
                    f"{', '.join(sorted(names))}"
                )
            replicas = target.get("replicas")
            if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
                raise ScenarioError(f"{where}.scale.replicas: expected a count >= 0")
            events.append(
                CloudEvent(
                    at_s=_duration(item.get("at", 0), f"{where}.at"),
                    until_s=None,
                    kind="scale",
                    workload=str(target["workload"]),
                    count=replicas,
                )
            )
            continue
        if kind == "resize":
            target = _check(item[kind], _RESIZE, f"{where}.resize")
            workload_names = {w.name for w in workloads}
            if target.get("workload") not in workload_names:
                raise ScenarioError(
                    f"{where}.resize.workload: {target.get('workload')!r} is none of "
                    f"{', '.join(sorted(workload_names))}"
                )
            for resource in ("cpu", "memory"):
                if resource in target:
                    try:
                        parse_quantity(target[resource], f"{where}.resize.{resource}")
                    except GibbousError as error:
                        raise ScenarioError(str(error)) from None
            events.append(
                CloudEvent(
                    at_s=_duration(item.get("at", 0), f"{where}.at"),
                    until_s=None,
                    kind="resize",
                    workload=str(target["workload"]),
                    requests={k: str(target[k]) for k in ("cpu", "memory") if k in target},
                )
            )
            continue
        target = _check(item[kind], _TARGET, f"{where}.{kind}")
        category = str(target.get("category", "spot" if kind == "interrupt" else ""))
        if category not in ("spot", "on-demand"):
            raise ScenarioError(f"{where}.{kind}.category: expected spot or on-demand")
        if kind != "interrupt" and not target.get("type"):
            raise ScenarioError(f"{where}.{kind}: type is needed")
        until = item.get("until")
        events.append(
            CloudEvent(
                at_s=_duration(item.get("at", 0), f"{where}.at"),
                until_s=None if until is None else _duration(until, f"{where}.until"),
                kind=kind,
                instance_type=str(target.get("type", "")),
                category=category,
                zone=str(target.get("zone") or ""),
                count=int(target.get("count", 1)),
            )
        )
    boot = top.get("bootTime", "90s")
    boot_max = None
    if isinstance(boot, Mapping):
        spread = _check(boot, {"min", "max"}, f"{source}: bootTime")
        if "min" not in spread or "max" not in spread:
            raise ScenarioError(f"{source}: bootTime: a spread needs min and max")
        boot_min = _duration(spread["min"], f"{source}: bootTime.min")
        boot_max = _duration(spread["max"], f"{source}: bootTime.max")
        if boot_max < boot_min:
            raise ScenarioError(f"{source}: bootTime: max is below min")
    else:
        boot_min = _duration(boot, f"{source}: bootTime")
    return Scenario(
        name=name,
        description=str(top.get("description") or ""),
        cloud=cloud,
        duration_s=duration,
        boot_s=boot_min,
        config=dict(config),
        workloads=tuple(workloads),
        events=tuple(sorted(events, key=lambda e: e.at_s)),
        boot_max_s=boot_max,
        metrics_lag_s=_duration(top.get("metricsLag", 0), f"{source}: metricsLag"),
        eviction_grace_s=_duration(top.get("evictionGrace", 0), f"{source}: evictionGrace"),
    )


def built_in() -> dict[str, Path]:
    """The built-in scenarios, by name."""
    folder = resources.files(__package__).joinpath("scenarios")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file."""
    known = built_in()
    path = known.get(name_or_path) or Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        names = ", ".join(sorted(known))
        raise ScenarioError(
            f"{name_or_path}: neither a built-in scenario ({names}) nor a readable file: "
            f"{error.strerror}"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {error}") from None
    return parse_scenario(document, str(path.name if path in known.values() else path))


_PROVIDER_IDS = (("aws://", "aws"), ("gce://", "gcp"), ("azure://", "azure"), ("ocid1.", "oci"))


def cloud_of_nodes(nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """The cloud the nodes' providerIDs name, if they name one."""
    found = {
        name
        for node in nodes
        for prefix, name in _PROVIDER_IDS
        if str((node.get("spec") or {}).get("providerID") or "").startswith(prefix)
    }
    return found.pop() if len(found) == 1 else None


def scenario_from_cluster(
    pods: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    *,
    duration_s: float,
    cloud: str | None,
    catalog_names: set[str],
    source: str,
) -> Scenario:
    """A live cluster as a starting state: its nodes of catalog types running at time 0 and
    every pod (not finished, not a DaemonSet's) arriving at time 0, replaced when it goes
    if a controller owns it. Nodes of types the catalog lacks are left out, said in the
    description."""
    cloud = cloud or cloud_of_nodes(nodes) or "aws"
    starting, left_out = [], []
    for node in nodes:
        meta = node.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        catalog_type = labels.get(keys.CATALOG_TYPE)
        name = name_from_label(catalog_type) if catalog_type else labels.get(keys.INSTANCE_TYPE, "")
        if name not in catalog_names:
            left_out.append(f"{meta.get('name')} ({name or 'no instance type'})")
            continue
        spot = (
            labels.get(keys.CAPACITY_TYPE) == "spot"
            or labels.get(keys.KARPENTER_CAPACITY_TYPE) == "spot"
            or labels.get(keys.EKS_CAPACITY_TYPE) == "SPOT"
            or labels.get(keys.GKE_SPOT) == "true"
            or labels.get(keys.AKS_SCALESET_PRIORITY) == "spot"
        )
        starting.append(
            StartingNode(
                name=str(meta.get("name")),
                instance_type=name,
                category="spot" if spot else "on-demand",
                zone=labels.get(keys.ZONE, ""),
                labels=labels,
                taints=tuple(dict(t) for t in (node.get("spec") or {}).get("taints") or ()),
            )
        )
    workloads = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        owners = meta.get("ownerReferences") or []
        if status.get("phase") in ("Succeeded", "Failed") or any(
            o.get("kind") == "DaemonSet" for o in owners
        ):
            continue
        spec = {k: v for k, v in (pod.get("spec") or {}).items() if k != "nodeName"}
        workloads.append(
            Workload(
                name=f"{meta.get('namespace', 'default')}-{meta.get('name')}"[:50],
                at_s=0.0,
                count=1,
                every_s=0.0,
                arrivals=1,
                run_for_s=None,
                replace=bool(owners),
                pod={
                    "metadata": {
                        "namespace": meta.get("namespace", "default"),
                        "labels": dict(meta.get("labels") or {}),
                        "annotations": dict(meta.get("annotations") or {}),
                    },
                    "spec": spec,
                },
                usage=(),
            )
        )
    note = (
        f"; left out (types not in the {cloud} catalog): {', '.join(left_out)}" if left_out else ""
    )
    return Scenario(
        name="from-cluster",
        description=(
            f"The pods and nodes of {source}: {len(starting)} nodes, {len(workloads)} pods{note}"
        ),
        cloud=cloud,
        duration_s=duration_s,
        boot_s=90.0,
        config={},
        workloads=tuple(workloads),
        events=(),
        nodes=tuple(starting),
    )
