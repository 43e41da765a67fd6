"""How big an N1 machine may be with GPUs attached: Compute Engine's limits per GPU count.

Compute Engine caps the vCPUs and memory of an N1 VM by the model and number of GPUs
attached to it ("GPU machine types", https://cloud.google.com/compute/docs/gpus, the
"N1 + T4", "N1 + P4", "N1 + V100", "N1 + P100" tables; K80, end of life, had its own);
GKE refuses a node pool over them. The numbers as transcribed, with the page cited, in
SkyPilot's GCP catalog (`sky/clouds/service_catalog/gcp_catalog.py`,
`_NUM_ACC_TO_MAX_CPU_AND_MEMORY` and `check_accelerator_attachable_to_host`, zone
exceptions included). A count missing from the table is not attachable (T4, P4 and P100
stop at 4). Memory is in GiB: the page's "GB" are the machine types' (n1-highmem-96's
624 GB is `memoryMb` 638976).
"""

from __future__ import annotations

from collections.abc import Mapping

# GPU SKU -> GPU count -> (most vCPUs, most GiB of memory).
N1_GPU_LIMITS: Mapping[str, Mapping[int, tuple[int, int]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
}
# (SKU, count) -> the zones where the limit differs, and the limit there.
N1_GPU_ZONE_LIMITS: Mapping[tuple[str, int], tuple[frozenset[str], tuple[int, int]]] = {
    ("P100", 4): (frozenset({"us-east1-c", "europe-west1-d", "europe-west1-b"}), (64, 208)),
    ("K80", 8): (frozenset({"asia-east1-a", "us-east1-d"}), (64, 416)),
}


def n1_gpu_limit(sku: str, count: int, zone: str = "") -> tuple[int, int] | None:
    """The most vCPUs and GiB an N1 machine may have with `count` `sku` GPUs in `zone`
    (any zone when empty: the general row), None when that count does not attach."""
    limit = N1_GPU_LIMITS.get(sku, {}).get(count)
    if limit is None:
        return None
    zones, zone_limit = N1_GPU_ZONE_LIMITS.get((sku, count), (frozenset(), limit))
    return zone_limit if zone in zones else limit


def n1_gpu_fits(sku: str, count: int, vcpu: float, memory_gib: float, zone: str = "") -> bool:
    """Whether Compute Engine attaches `count` `sku` GPUs to an N1 machine this big."""
    limit = n1_gpu_limit(sku, count, zone)
    return limit is not None and vcpu <= limit[0] and memory_gib <= limit[1]
