"""Seeded pod mixes for the benchmarks (Karpenter's makeDiversePods shape, seed 42)."""

from __future__ import annotations

import random
from typing import Any

CPU = ["100m", "250m", "500m", "1", "1500m"]
MEMORY = ["100Mi", "256Mi", "512Mi", "1Gi", "2Gi", "3Gi"]
ZONES = ["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"]


def diverse_pods(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """Small pods from fixed menus; 5% big (bin-select), 2% GPU, 20% pinned to a zone."""
    rng = random.Random(seed)
    pods = []
    for index in range(count):
        roll = rng.random()
        if roll < 0.02:
            cpu, memory, gpus = "4", "16Gi", 1
        elif roll < 0.07:
            cpu, memory, gpus = rng.choice(["3", "4", "6"]), rng.choice(["4Gi", "8Gi"]), 0
        else:
            cpu, memory, gpus = rng.choice(CPU), rng.choice(MEMORY), 0
        resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
        if gpus:
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "resources": resources}]}
        if rng.random() < 0.2:
            spec["nodeSelector"] = {"topology.kubernetes.io/zone": rng.choice(ZONES)}
        pods.append(
            {
                "metadata": {
                    "name": f"pod-{index:05d}",
                    "namespace": "bench",
                    "uid": f"uid-{index}",
                    "labels": {"elotl-luna": "true"},
                },
                "spec": spec,
            }
        )
    return pods


def small_pods(count: int, seed: int) -> list[dict[str, Any]]:
    """Bin-pack-only mixes for the exact-optimum comparison."""
    rng = random.Random(seed)
    pods = []
    for index in range(count):
        requests = {"cpu": rng.choice(CPU), "memory": rng.choice(MEMORY)}
        pods.append(
            {
                "metadata": {"name": f"p{index}", "namespace": "bench", "uid": f"u{index}"},
                "spec": {
                    "containers": [{"name": "c", "image": "x", "resources": {"requests": requests}}]
                },
            }
        )
    return pods
