"""The race's workload trace: what is created, scaled and deleted when, as plain data.

A trace is a JSON document (bench/README.md documents it; `python -m bench.race
--trace FILE` races one of your own):

    {
      "name": "smoke",
      "description": "a few pods",
      "durationSeconds": 60,          # the run ends this long after the first event
      "bootSeconds": 5,               # launch to Ready, for both systems
      "events": [
        {"at": 0, "op": "create", "workload": "web", "replicas": 3,
         "pod": {"cpu": "500m", "memory": "512Mi", "gpus": 0, "zone": "us-west-2a",
                 "capacity": "on-demand", "usage": "cpu=400m,memory=300Mi"}},
        {"at": 30, "op": "scale", "workload": "web", "replicas": 1},
        {"at": 50, "op": "delete", "workload": "web"}
      ]
    }

Each workload is a Deployment in namespace `race` whose pods are the `pod` shape: requests
(`cpu`, `memory`), `gpus` (nvidia.com/gpu limits), an optional `zone` (a
topology.kubernetes.io/zone nodeSelector), `capacity` (`on-demand`, `spot` or `any`: which
capacity types the pod accepts, said in both systems' words, see `replay.pod_template`) and an
optional `usage` (what the pod uses, for metrics.k8s.io: Gibbous's simulated-usage
annotation). A job that runs for a while is a workload created and deleted later.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.workloads import diverse_pods

OPS = ("create", "scale", "delete")
CAPACITIES = ("on-demand", "spot", "any")
MAX_EVENTS = 100_000
MAX_REPLICAS = 10_000
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_USAGE = re.compile(r"^(cpu|memory)=[0-9.]+[A-Za-z]*(,(cpu|memory)=[0-9.]+[A-Za-z]*)?$")


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class PodShape:
    cpu: str
    memory: str
    gpus: int = 0
    zone: str = ""
    capacity: str = "on-demand"
    usage: str = ""


@dataclass(frozen=True)
class Event:
    at: float
    op: str
    workload: str
    replicas: int = 0
    pod: PodShape | None = None


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    duration_s: float
    boot_s: float
    events: tuple[Event, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        def event(e: Event) -> dict[str, Any]:
            out: dict[str, Any] = {"at": e.at, "op": e.op, "workload": e.workload}
            if e.op != "delete":
                out["replicas"] = e.replicas
            if e.pod is not None:
                out["pod"] = {k: v for k, v in vars(e.pod).items() if v not in ("", 0)}
                out["pod"]["capacity"] = e.pod.capacity
            return out

        return {
            "name": self.name,
            "description": self.description,
            "durationSeconds": self.duration_s,
            "bootSeconds": self.boot_s,
            "events": [event(e) for e in self.events],
        }

    def pods_created(self) -> int:
        """Pods the trace asks for over the run (each scale-up adds its difference)."""
        current: dict[str, int] = {}
        total = 0
        for e in self.events:
            if e.op in ("create", "scale"):
                total += max(0, e.replicas - current.get(e.workload, 0))
                current[e.workload] = e.replicas
            else:
                current.pop(e.workload, None)
        return total


def _number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TraceError(f"{where}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise TraceError(f"{where}: {value} is outside [{low:g}, {high:g}]")
    return float(value)


def _pod(raw: object, where: str) -> PodShape:
    if not isinstance(raw, dict):
        raise TraceError(f"{where}: `pod` must be an object")
    unknown = set(raw) - {"cpu", "memory", "gpus", "zone", "capacity", "usage"}
    if unknown:
        raise TraceError(f"{where}: unknown pod field(s) {', '.join(sorted(unknown))}")
    for key in ("cpu", "memory"):
        if not isinstance(raw.get(key), str) or not _QUANTITY.match(raw[key]):
            raise TraceError(f"{where}: pod.{key} must be a quantity such as 500m or 1Gi")
    gpus = int(_number(raw.get("gpus", 0), f"{where}: pod.gpus", 0, 16))
    capacity = raw.get("capacity", "on-demand")
    if capacity not in CAPACITIES:
        raise TraceError(f"{where}: pod.capacity must be one of {', '.join(CAPACITIES)}")
    zone = raw.get("zone", "")
    if not isinstance(zone, str) or len(zone) > 63:
        raise TraceError(f"{where}: pod.zone must be a zone name")
    usage = raw.get("usage", "")
    if not isinstance(usage, str) or (usage and not _USAGE.match(usage)):
        raise TraceError(f"{where}: pod.usage must look like cpu=400m,memory=300Mi")
    return PodShape(raw["cpu"], raw["memory"], gpus, zone, capacity, usage)


def parse_trace(document: object) -> Trace:
    """A trace from its JSON document; every mistake is a TraceError naming the event."""
    if not isinstance(document, dict):
        raise TraceError("a trace is a JSON object")
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise TraceError("`name`: lower-case letters, digits and dashes")
    duration = _number(document.get("durationSeconds"), "durationSeconds", 1, 7 * 86400)
    boot = _number(document.get("bootSeconds", 5), "bootSeconds", 0, 3600)
    raw_events = document.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise TraceError("`events` must be a non-empty list")
    if len(raw_events) > MAX_EVENTS:
        raise TraceError(f"`events`: at most {MAX_EVENTS}")
    events = []
    live: set[str] = set()
    last = 0.0
    for index, raw in enumerate(raw_events):
        where = f"events[{index}]"
        if not isinstance(raw, dict):
            raise TraceError(f"{where}: an event is an object")
        at = _number(raw.get("at"), f"{where}.at", 0, duration)
        if at < last:
            raise TraceError(f"{where}: events must be in time order ({at} after {last})")
        last = at
        op, workload = raw.get("op"), raw.get("workload")
        if op not in OPS:
            raise TraceError(f"{where}.op: one of {', '.join(OPS)}")
        if not isinstance(workload, str) or not _NAME.match(workload):
            raise TraceError(f"{where}.workload: lower-case letters, digits and dashes")
        replicas = 0
        if op != "delete":
            replicas = int(_number(raw.get("replicas"), f"{where}.replicas", 0, MAX_REPLICAS))
        pod = None
        if op == "create":
            if workload in live:
                raise TraceError(f"{where}: workload {workload} already exists")
            pod = _pod(raw.get("pod"), where)
            live.add(workload)
        elif workload not in live:
            raise TraceError(f"{where}: workload {workload} does not exist")
        elif op == "delete":
            live.discard(workload)
        events.append(Event(at, op, workload, replicas, pod))
    description = document.get("description", "")
    return Trace(name, str(description)[:2000], duration, boot, tuple(events))


def load_trace(path: Path) -> Trace:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TraceError(f"cannot read trace {path}: {error}") from None
    return parse_trace(document)


# --- the named scenarios --------------------------------------------------------------------


def _smoke() -> Trace:
    return Trace(
        "smoke",
        "A few pods for the test suite: three 500m/512Mi web pods and one 1-CPU worker.",
        30,
        5,
        (
            Event(0, "create", "web", 3, PodShape("500m", "512Mi")),
            Event(0, "create", "worker", 1, PodShape("1", "1Gi")),
        ),
    )


def _posts() -> Trace:
    """The posts' workload shapes on the built-in AWS catalog, compressed into 6 minutes."""
    events = [
        # P14 (bin-packing and bin-select): small web pods, then large batch pods.
        Event(0, "create", "p14-web", 12, PodShape("300m", "512Mi")),
        Event(10, "create", "p14-batch", 3, PodShape("6", "12Gi")),
        # P04 (cost estimation): one bin-select busybox pod.
        Event(20, "create", "p04-single", 1, PodShape("8", "16Gi")),
        # P10 (offline inference on spot): a Ray head of 2 GPUs, spot or on-demand.
        Event(30, "create", "p10-ray-head", 1, PodShape("27", "27Gi", 2, capacity="any")),
        # P17 (GPU time-slicing): four 1-GPU deployments.
        *(
            Event(40, "create", f"p17-{name}", 2, PodShape("500m", "2Gi", 1))
            for name in ("llm", "vision", "speech", "embed")
        ),
        Event(180, "scale", "p14-web", 4),
        Event(180, "delete", "p14-batch"),
        Event(240, "scale", "p17-llm", 1),
        Event(240, "scale", "p17-vision", 1),
    ]
    return Trace(
        "posts",
        "P04, P10, P14 and P17's shapes: bin-pack web pods, bin-select batch pods, a 2-GPU "
        "spot-or-on-demand Ray head, four 1-GPU deployments; then the web and GPU "
        "deployments shrink and the batch pods go (consolidation).",
        360,
        10,
        tuple(events),
    )


def _mix_workloads(count: int, seed: int) -> list[tuple[str, int, PodShape]]:
    """bench/workloads.py's diverse mix grouped into Deployments of identical pods."""
    shapes: Counter[PodShape] = Counter()
    for pod in diverse_pods(count, seed=seed):
        container = pod["spec"]["containers"][0]["resources"]
        gpus = int(container.get("limits", {}).get("nvidia.com/gpu", 0))
        zone = pod["spec"].get("nodeSelector", {}).get("topology.kubernetes.io/zone", "")
        shapes[
            PodShape(container["requests"]["cpu"], container["requests"]["memory"], gpus, zone)
        ] += 1
    return [
        (f"mix-{index:03d}", n, shape)
        for index, (shape, n) in enumerate(sorted(shapes.items(), key=lambda item: repr(item[0])))
    ]


def _burst_scale_in() -> Trace:
    workloads = _mix_workloads(1000, seed=42)
    events = [Event(0, "create", name, n, shape) for name, n, shape in workloads]
    events += [Event(600, "scale", name, math.ceil(n * 0.3)) for name, n, _ in workloads]
    return Trace(
        "burst-scale-in",
        "1,000 pods of bench/workloads.py's mix (5% big, 2% GPU, 20% pinned to a zone) at "
        "once, then every deployment scaled to 30% after 10 minutes: consolidation.",
        900,
        10,
        tuple(events),
    )


def _trickle() -> Trace:
    shapes = (PodShape("500m", "1Gi"), PodShape("1", "2Gi"))
    events = [Event(0, "create", f"trickle-{i}", 0, shape) for i, shape in enumerate(shapes)]
    for k in range(200):
        events.append(Event(2.0 * k, "scale", f"trickle-{k % 2}", k // 2 + 1))
    return Trace(
        "trickle",
        "200 pods, one every 2 s (alternating 500m/1Gi and 1/2Gi): capacity that is still "
        "launching should be used by the pods that arrive while it boots.",
        520,
        10,
        tuple(events),
    )


def _spot_mix() -> Trace:
    rng = random.Random(7)
    events = []
    for index in range(12):
        capacity = ("spot", "any", "on-demand")[index % 3]
        shape = PodShape(
            rng.choice(["250m", "500m", "1", "2"]),
            rng.choice(["512Mi", "1Gi", "4Gi"]),
            capacity=capacity,
        )
        events.append(Event(0, "create", f"spot-{index:02d}", rng.randint(10, 30), shape))
    events += [Event(300, "scale", e.workload, e.replicas // 2) for e in events]
    return Trace(
        "spot-mix",
        "Twelve deployments (about 240 pods): a third spot only, a third spot or on-demand, a "
        "third on-demand only; halved after 5 minutes.",
        480,
        10,
        tuple(events),
    )


def _gpu_day() -> Trace:
    """A day of GPU serving and training compressed to 12 minutes (30 s per hour)."""
    hour = 30.0
    events = [Event(0, "create", "serve", 2, PodShape("2", "8Gi", 1))]
    for h in range(1, 24):
        replicas = round(2 + 6 * max(0.0, math.sin(math.pi * (h - 6) / 14)))
        events.append(Event(h * hour, "scale", "serve", replicas))
    for start_h, hours, n in ((1, 6, 4), (9, 3, 2), (15, 5, 8)):
        name = f"train-{start_h:02d}"
        events.append(Event(start_h * hour, "create", name, n, PodShape("8", "32Gi", 1)))
        events.append(Event((start_h + hours) * hour, "delete", name))
    events.sort(key=lambda e: e.at)
    return Trace(
        "gpu-day",
        "GPU serving (1-GPU pods, 2 to 8 replicas on a diurnal curve) and three training "
        "jobs of 1-GPU pods (modelled as deployments created and deleted), a day in 12 "
        "minutes.",
        24 * hour,
        10,
        tuple(events),
    )


SCENARIOS = {
    "smoke": _smoke,
    "posts": _posts,
    "burst-scale-in": _burst_scale_in,
    "trickle": _trickle,
    "spot-mix": _spot_mix,
    "gpu-day": _gpu_day,
}


def scenario(name: str) -> Trace:
    try:
        build = SCENARIOS[name]
    except KeyError:
        raise TraceError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})") from None
    return parse_trace(build().to_json())  # the named scenarios obey the documented format
