"""Node views built once per node version."""

from __future__ import annotations

from typing import Any

from gibbous.core import keys
from gibbous.nodeviews import ViewCache


def gpu_node(name: str, version: str, slices_allocatable: int = 4) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": version,
            "labels": {keys.CREATED_BY: keys.CREATED_BY_VALUE},
        },
        "status": {"allocatable": {"cpu": "4", keys.NVIDIA_GPU: str(slices_allocatable)}},
    }


def test_a_view_is_built_once_per_version_and_counts_physical_gpus() -> None:
    cache = ViewCache(time_slices=4)
    first = cache.view(gpu_node("a", "1"))
    assert first.gpu_count == 1  # four time slices of one GPU
    assert cache.view(gpu_node("a", "1")) is first
    changed = cache.view(gpu_node("a", "2", slices_allocatable=8))
    assert changed is not first and changed.gpu_count == 2
    assert ViewCache().view(gpu_node("b", "1")).gpu_count == 4


def test_nodes_without_a_version_are_read_every_time() -> None:
    cache = ViewCache()
    node = gpu_node("a", "")
    assert cache.view(node) is not cache.view(node)


def test_keep_only_drops_nodes_that_are_gone() -> None:
    cache = ViewCache()
    for name in ("a", "b", "c"):
        cache.view(gpu_node(name, "1"))
    cache.keep_only({"b"})
    assert cache.get("a") is None and cache.get("c") is None and cache.get("b") is not None
