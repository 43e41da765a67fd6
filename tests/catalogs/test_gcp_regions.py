"""The built-in GCP catalog covers every public region, with the big families where Google
sells them. The regions and where-sold facts are written here from Google's documentation,
not read from the generated file."""

from __future__ import annotations

import pytest

from gibbous.catalogs import builtin_regions, load_catalog
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.errors import CatalogError

GIB = 1024**3
# Compute Engine "Regions and zones" (cloud.google.com/compute/docs/regions-zones), the public
# regions as `gcloud compute regions list` gave them in 2026-08 (us-central2, a TPU-only
# region closed to general use, is not among them).
PUBLIC_REGIONS = [
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "asia-southeast3",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west10",
    "europe-west12",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
]
# Compute Engine "GPU regions and zones" (cloud.google.com/compute/docs/gpus/gpu-regions-zones)
# and "Memory-optimized machine family" (M3 regions): a few regions each family is sold in.
SOLD_IN = {
    "H100": ["us-central1", "europe-west4", "us-east4", "asia-northeast1"],  # A3 High
    "A100-40": ["us-central1", "europe-west4", "asia-northeast1"],  # A2 Standard
    "A100-80": ["us-central1", "europe-west4", "us-east4"],  # A2 Ultra
    "L4": ["us-central1", "europe-west4", "asia-east1", "us-east4"],  # G2
    "T4": ["us-central1", "europe-west4", "asia-east1", "us-east1"],  # N1 + T4
}
M3_SOLD_IN = ["us-central1", "europe-west4", "asia-northeast1"]


@pytest.fixture(scope="module")
def catalogs() -> dict[str, list[InstanceType]]:
    return {region: load_catalog(None, "gcp", region) for region in PUBLIC_REGIONS}


def _gpu(types: list[InstanceType], sku: str, gib: int) -> list[InstanceType]:
    return [t for t in types if t.gpu_sku == sku and t.gpu_memory_bytes == t.gpu_count * gib * GIB]


def test_every_public_region_has_a_catalog_and_no_other(
    catalogs: dict[str, list[InstanceType]],
) -> None:
    assert sorted(builtin_regions("gcp")) == sorted(PUBLIC_REGIONS)
    for region, types in catalogs.items():
        assert types, region
        assert all(t.region == region and t.on_demand_price > 0 and t.price_date for t in types)
        # Every type has zones, that region's (GCP zone names are <region>-<letter>).
        assert all(t.zones for t in types), region
        assert all(z.rsplit("-", 1)[0] == region for t in types for z in t.zones), region


def test_the_big_gpu_families_are_there_where_google_sells_them(
    catalogs: dict[str, list[InstanceType]],
) -> None:
    wanted = {"H100": ("H100", 80), "A100-40": ("A100", 40), "A100-80": ("A100", 80)}
    wanted |= {"L4": ("L4", 24), "T4": ("T4", 16)}
    for family, regions in SOLD_IN.items():
        sku, gib = wanted[family]
        for region in regions:
            assert _gpu(catalogs[region], sku, gib), f"{family} in {region}"
    a3 = {t.name: t for t in catalogs["europe-west4"]}["a3-highgpu-8g"]
    # A3 High: 8 H100 80GB, 208 vCPUs, 1872 GB (Compute Engine "Accelerator-optimized").
    assert (a3.gpu_count, a3.vcpu, a3.memory_bytes) == (8, 208, 1872 * GIB)


def test_memory_optimized_and_general_families_are_there(
    catalogs: dict[str, list[InstanceType]],
) -> None:
    for region in M3_SOLD_IN:
        assert any(t.name.startswith("m3-") for t in catalogs[region]), region
    # M1 ultramem-160: 160 vCPUs, 3844 GB (Compute Engine "Memory-optimized machine family").
    m1 = {t.name: t for t in catalogs["europe-west4"]}["m1-ultramem-160"]
    assert (m1.vcpu, m1.memory_bytes) == (160, round(3844 * GIB))
    for region in ("europe-west4", "asia-northeast1", "us-east1"):
        names = {t.name.split("-")[0] for t in catalogs[region]}
        assert {"e2", "n1", "n2", "n2d", "c3"} <= names, region


def test_a_region_has_its_own_prices() -> None:
    # europe-west4 lists above us-central1 (Compute Engine pricing: Netherlands vs Iowa).
    west4 = {t.name: t.on_demand_price for t in load_catalog(None, "gcp", "europe-west4")}
    central = {t.name: t.on_demand_price for t in load_catalog(None, "gcp", "us-central1")}
    assert west4["g2-standard-32"] > central["g2-standard-32"]
    assert west4["e2-highmem-4"] > central["e2-highmem-4"]


def test_a_region_google_does_not_have_is_an_error_naming_those_it_has() -> None:
    with pytest.raises(CatalogError) as error:
        load_catalog(None, "gcp", "mars-central1")
    assert "no instance types for gcp/mars-central1" in str(error.value)
    assert "europe-west4" in str(error.value) and "us-central1" in str(error.value)
