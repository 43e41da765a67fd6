"""Wrong-size answers: a type far larger than its pods ask, in a dimension they did not ask
for. Types are written out from the built-in catalogs' rows (gibbous/catalogs/*.csv);
expected excesses are computed by hand in each test: GPUs when none asked, else >= 4x
the asked GPUs; vCPU and memory (pods without GPUs) >= 4x the pods' total and at least
32 vCPU / 256 GiB more."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.selection import PodRequirement, build_offers
from gibbous.core.choice.wrongsize import Excess, is_bare_metal, wrong_size
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.scaleup import plan_scale_up
from tests.factories import config, make_pod

GIB = 2**30


def row(
    cloud: str, name: str, vcpu: float, memory_gib: float, *, gpus: int = 0, sku: str = ""
) -> InstanceType:
    return InstanceType(
        cloud=cloud,
        region="r",
        name=name,
        family="",
        vcpu=vcpu,
        memory_bytes=int(memory_gib * GIB),
        gpu_count=gpus,
        gpu_sku=sku,
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=1.0,
        spot_price=None,
    )


# oci.csv: BM.GPU4.8,128,2048,8,A100,amd64,24.4
BM_GPU4_8 = row("oci", "BM.GPU4.8", 128, 2048, gpus=8, sku="A100")
# aws.csv
G4DN_XLARGE = row("aws", "g4dn.xlarge", 4, 16, gpus=1, sku="T4")
G4DN_12XLARGE = row("aws", "g4dn.12xlarge", 48, 192, gpus=4, sku="T4")
P4D_24XLARGE = row("aws", "p4d.24xlarge", 96, 1152, gpus=8, sku="A100")
M5_LARGE = row("aws", "m5.large", 2, 8)
C6I_32XLARGE = row("aws", "c6i.32xlarge", 128, 256)
M6I_32XLARGE = row("aws", "m6i.32xlarge", 128, 512)


def pod(cpu: str | None = "100m", memory: str | None = "128Mi", **options: Any) -> PendingPod:
    return describe_pod(make_pod(cpu=cpu, memory=memory, **options), config())[0]


def need(cpu: str | None = "100m", memory: str | None = "128Mi", **options: Any) -> PodRequirement:
    return pod(cpu, memory, **options).requirement


def test_the_oci_1000gi_pod_on_the_8xa100_bare_metal_machine() -> None:
    # 8 GPUs, none asked; vCPU 128 >= 4 x 4 and 128 - 4 = 124 >= 32; memory 2048Gi is
    # 2.05x 1000Gi: not far larger there (memory is what the pod asked for).
    found = wrong_size(BM_GPU4_8, [need("4", "1000Gi")])
    assert found is not None
    assert found.bare_metal
    assert found.excess == (
        Excess(keys.NVIDIA_GPU, 8, 0),
        Excess("cpu", 128, 4.0),
    )
    assert found.describe() == (
        "BM.GPU4.8 (bare metal) is far larger than its pods ask: 8 A100 GPU(s) though no pod "
        "asks for a GPU; 128 vCPU for 4 CPU requested"
    )


def test_a_gpu_machine_for_a_pod_without_gpus_is_said_even_when_small() -> None:
    # g4dn.xlarge: 4 vCPU (4 - 1 = 3 < 32 surplus: not far in vCPU), 16 GiB, 1 T4.
    found = wrong_size(G4DN_XLARGE, [need("1", "2Gi")])
    assert found is not None
    assert not found.bare_metal
    assert found.excess == (Excess(keys.NVIDIA_GPU, 1, 0),)
    assert found.describe().endswith("1 T4 GPU(s) though no pod asks for a GPU")


def test_ordinary_fixed_shapes_are_quiet() -> None:
    # m5.large for a 250m pod: 8x in vCPU, 64x in memory, but 1.75 vCPU and 7.5 GiB spare.
    assert wrong_size(M5_LARGE, [need("250m", "128Mi")]) is None


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        # 120 CPU, 16Gi: c6i.32xlarge has 256 GiB, 16x but 240 GiB spare (< 256): quiet.
        (C6I_32XLARGE, ()),
        # m6i.32xlarge: 512 GiB, 32x and 496 GiB spare: memory is far larger.
        (M6I_32XLARGE, (Excess("memory", 512 * GIB, 16 * GIB),)),
    ],
)
def test_memory_nobody_asked_for_counts_only_when_the_spare_is_a_large_machine(
    instance: InstanceType, expected: tuple[Excess, ...]
) -> None:
    found = wrong_size(instance, [need("120", "16Gi")])
    assert (found.excess if found else ()) == expected


def test_memory_excess_message_in_gib() -> None:
    found = wrong_size(M6I_32XLARGE, [need("120", "16Gi")])
    assert found is not None
    assert found.describe() == (
        "m6i.32xlarge is far larger than its pods ask: 512Gi memory for 16Gi requested"
    )


def test_the_pods_on_a_node_are_summed() -> None:
    # 8 pods x 4 CPU = 32 CPU on 128 vCPU: 128 >= 4 x 32 and 96 spare -> far larger.
    eight = [need("4", "4Gi")] * 8
    found = wrong_size(C6I_32XLARGE, eight)
    assert found is not None and Excess("cpu", 128, 32.0) in found.excess
    # 9 pods: 36 CPU, 4 x 36 = 144 > 128 -> not far larger in vCPU (memory 256 vs 36Gi:
    # 7.1x but 220 GiB spare < 256 -> quiet).
    assert wrong_size(C6I_32XLARGE, [need("4", "4Gi")] * 9) is None


@pytest.mark.parametrize(
    ("instance", "gpus", "expected"),
    [
        (G4DN_12XLARGE, 1, (Excess(keys.NVIDIA_GPU, 4, 1),)),  # 4 >= 4 x 1
        (G4DN_12XLARGE, 2, ()),  # 4 < 8
        (P4D_24XLARGE, 2, (Excess(keys.NVIDIA_GPU, 8, 2),)),  # 8 >= 8
        (P4D_24XLARGE, 8, ()),  # 96 vCPU for 1 CPU comes with 8 GPUs: not checked
    ],
)
def test_gpu_pods_are_judged_by_their_gpus_alone(
    instance: InstanceType, gpus: int, expected: tuple[Excess, ...]
) -> None:
    found = wrong_size(instance, [need("1", "1Gi", gpus=gpus)])
    assert (found.excess if found else ()) == expected


@pytest.mark.parametrize(
    "options",
    [
        {"node_selector": {keys.INSTANCE_TYPE: "BM.GPU4.8"}},
        {"node_selector": {keys.GPU_SKU: "A100"}},
        {"annotations": {keys.INSTANCE_TYPE_REGEXP: "^BM\\."}},
        {"annotations": {keys.INSTANCE_GPU_SKUS: "A100"}},
    ],
)
def test_a_pod_that_names_its_type_asked_for_it(options: dict[str, Any]) -> None:
    assert wrong_size(BM_GPU4_8, [need("4", "1000Gi", **options)]) is None


@pytest.mark.parametrize(
    ("cloud", "name", "bare"),
    [
        ("oci", "BM.Standard.E4.128", True),
        ("oci", "BM.GPU4.8", True),
        ("oci", "VM.Standard.E4.Flex-4-64", False),
        ("aws", "m5.metal", True),
        ("aws", "m7i.metal-24xl", True),
        ("aws", "m5.24xlarge", False),
        ("gcp", "c3-standard-192-metal", True),
        ("gcp", "c3-standard-176", False),
        ("azure", "Standard_M416ms_v2", False),
    ],
)
def test_bare_metal_by_the_clouds_names(cloud: str, name: str, bare: bool) -> None:
    assert is_bare_metal(row(cloud, name, 8, 8)) is bare


def test_the_scale_up_plan_carries_the_warning_for_the_launch() -> None:
    cfg = config(cloudProvider="oci")
    offers = build_offers([BM_GPU4_8, row("oci", "VM.Standard.E4.Flex-2-16", 4, 16)], cfg)
    big, small = pod("4", "1000Gi"), describe_pod(make_pod("small", cpu="1", memory="1Gi"), cfg)[0]
    plan = plan_scale_up([big, small], offers, cfg, now=0.0)
    by_type = {launch.offer.name: launch for launch in plan.launches}
    assert set(by_type) == {"BM.GPU4.8", "VM.Standard.E4.Flex-2-16"}
    wrong = by_type["BM.GPU4.8"].wrong_size
    assert wrong is not None and wrong.instance.name == "BM.GPU4.8"
    assert by_type["VM.Standard.E4.Flex-2-16"].wrong_size is None
