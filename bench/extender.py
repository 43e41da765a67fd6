"""Extender cost per pod: filter + prioritize handler time, against the JSON parse time of
the same payload, in the same run.

Two cases from the issue: the nodeCacheCapable form (NodeNames) over a 5,000-node cache,
and the full NodeList form with 500 realistic nodes (labels, taints, GPU labels, ~2 KB each).
The handler is called in-process through the ASGI app (no network), so the numbers are the
extender's own service time; the implied scheduling ceiling is 1 / (filter + prioritize).

Run: .venv/bin/python -m bench.extender [--pods 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from typing import Any

import orjson

from gibbous.core import keys
from gibbous.core.settings.loader import build_config
from gibbous.extender.app import create_app
from gibbous.extender.state import PodLedger, StaticView

ZONES = ["us-west-2a", "us-west-2b", "us-west-2c"]
PRICES = {"m5.2xlarge": 0.384, "c6i.4xlarge": 0.68, "g5.xlarge": 1.006, "g4dn.12xlarge": 3.912}
TYPES = [
    ("m5.2xlarge", "8", "32Gi", 0, ""),
    ("c6i.4xlarge", "16", "32Gi", 0, ""),
    ("g5.xlarge", "4", "16Gi", 1, "A10G"),
    ("g4dn.12xlarge", "48", "192Gi", 4, "T4"),
]


def nodes(count: int, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for index in range(count):
        instance, cpu, memory, gpus, sku = rng.choice(TYPES)
        placement = rng.choice(["bin-pack", "bin-pack", "bin-select", None])
        labels = {
            keys.HOSTNAME: f"node-{index:05d}",
            keys.INSTANCE_TYPE: instance,
            keys.INSTANCE_TYPE_BETA: instance,
            keys.ARCH: "amd64",
            keys.OS: "linux",
            keys.ZONE: rng.choice(ZONES),
            keys.REGION: "us-west-2",
            "eks.amazonaws.com/nodegroup": "workers",
            "k8s.io/cloud-provider-aws": "3f9e1c2b7a6d5e4f",
        }
        if placement:
            category = rng.choice(["spot", "on-demand"])
            price = PRICES[instance] * (
                0.5 if category == "spot" else 1.0
            )  # prices are per type and category
            labels |= {
                keys.CREATED_BY: keys.CREATED_BY_VALUE,
                keys.PLACEMENT: placement,
                keys.CAPACITY_TYPE: category,
                keys.PRICE_PER_HOUR: f"{price:.4f}",
            }
            if placement == "bin-select":
                labels[keys.ASSIGNED_POD_UID] = f"uid-{rng.randrange(10**6)}"
        if gpus:
            labels |= {"nvidia.com/gpu.product": f"NVIDIA-{sku}", "nvidia.com/gpu.count": str(gpus)}
        taints = (
            [{"key": keys.HOT_NODE_TAINT, "value": "warm", "effect": "NoSchedule"}]
            if rng.random() < 0.05
            else []
        )
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        out.append(
            {
                "metadata": {
                    "name": f"node-{index:05d}",
                    "uid": f"n-{index}",
                    "resourceVersion": str(1000 + index),
                    "labels": labels,
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                },
                "spec": {"providerID": f"aws:///us-west-2a/i-{index:017x}", "taints": taints},
                "status": {
                    "capacity": allocatable,
                    "allocatable": allocatable,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    "nodeInfo": {
                        "kubeletVersion": "v1.33.4",
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                    },
                },
            }
        )
    return out


def pod(index: int, rng: random.Random) -> dict[str, Any]:
    cpu = rng.choice(["100m", "250m", "500m", "1", "4"])
    annotations = {keys.INSTANCE_OFFERINGS: "spot,on-demand"} if rng.random() < 0.3 else {}
    return {
        "metadata": {
            "name": f"p-{index}",
            "namespace": "bench",
            "uid": f"uid-{index}",
            "labels": {"elotl-luna": "true"},
            "annotations": annotations,
        },
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}},
                }
            ]
        },
    }


async def call(app: Any, path: str, body: bytes) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8888),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"invalid run: {path} answered {status}")


def measure(app: Any, bodies: list[bytes]) -> tuple[list[float], list[float], list[float]]:
    filter_ms, prioritize_ms, parse_ms = [], [], []

    async def run() -> None:
        for body in bodies:
            start = time.perf_counter()
            orjson.loads(body)
            parse_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await call(app, "/filter", body)
            filter_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await call(app, "/prioritize", body)
            prioritize_ms.append((time.perf_counter() - start) * 1000)

    asyncio.run(run())
    return filter_ms, prioritize_ms, parse_ms


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    args = parser.parse_args()
    config = build_config()
    rng = random.Random(7)
    print(
        f"{'case':<26} {'filter p50/p99 ms':>18} {'prioritize p50/p99':>19} {'parse p50 ms':>13} {'(f+p)/parse':>12} {'pods/s ceiling':>15}"
    )
    for label, count, names_form in (
        ("NodeNames: 500 of 5000", 5000, True),
        ("full NodeList, 500 nodes", 500, False),
    ):
        cluster = nodes(count)
        view = StaticView({n["metadata"]["name"]: n for n in cluster}, PodLedger())
        app = create_app(config, view)
        # The scheduler passes the nodes that survived its own filters: all 500, or for
        # 5,000 nodes its numFeasibleNodesToFind sample of 500 (kube-scheduler's default).
        bodies = []
        for index in range(args.pods):
            if names_form:
                sample = rng.sample(cluster, 500)  # numFeasibleNodesToFind(5000) = 500
                bodies.append(
                    orjson.dumps(
                        {
                            "Pod": pod(index, rng),
                            "Nodes": None,
                            "NodeNames": [n["metadata"]["name"] for n in sample],
                        }
                    )
                )
            else:
                bodies.append(
                    orjson.dumps(
                        {
                            "Pod": pod(index, rng),
                            "Nodes": {"metadata": {}, "items": cluster},
                            "NodeNames": None,
                        }
                    )
                )
        measure(app, bodies[:20])  # warm-up
        gc.freeze()  # as the extender's node cache does after its first list
        filter_ms, prioritize_ms, parse_ms = measure(app, bodies)
        total = statistics.median(filter_ms) + statistics.median(prioritize_ms)
        print(
            f"{label:<26} {p(filter_ms, 0.5):>8.2f}/{p(filter_ms, 0.99):<9.2f} {p(prioritize_ms, 0.5):>9.2f}/{p(prioritize_ms, 0.99):<9.2f}"
            f" {statistics.median(parse_ms):>13.3f} {total / statistics.median(parse_ms):>12.1f} {1000 / total:>15.0f}"
        )


if __name__ == "__main__":
    main()
