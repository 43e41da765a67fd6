"""The built-in OCI catalog covers every region of Oracle's commercial realm. The region list
is the oci SDK's; shapes and prices are Oracle's documentation, written here by hand."""

from __future__ import annotations

import oci.regions
import pytest

from gibbous.catalogs import builtin_regions, load_catalog
from gibbous.core.choice.catalog import InstanceType

GIB = 1024**3
# The SDK's region table: realm oc1 is the commercial one (the others are government,
# defence and dedicated/sovereign realms, out of the built-in data).
COMMERCIAL = sorted(r for r, realm in oci.regions.REGION_REALMS.items() if realm == "oc1")


@pytest.fixture(scope="module")
def catalogs() -> dict[str, dict[str, InstanceType]]:
    return {r: {t.name: t for t in load_catalog(None, "oci", r)} for r in COMMERCIAL}


def test_every_commercial_region_has_a_catalog_and_no_other(
    catalogs: dict[str, dict[str, InstanceType]],
) -> None:
    assert len(COMMERCIAL) > 40
    assert builtin_regions("oci") == COMMERCIAL
    assert "us-gov-ashburn-1" not in builtin_regions("oci")
    for region, types in catalogs.items():
        assert types, region
        assert all(t.on_demand_price > 0 and t.price_date for t in types.values())


def test_availability_domains_are_okes_zone_labels() -> None:
    # OCI "Regions and Availability Domains": Frankfurt and Phoenix have three ADs, Amsterdam
    # one; OKE's zone label is the AD name without the tenancy prefix (PHX-AD-1 in Phoenix).
    frankfurt = load_catalog(None, "oci", "eu-frankfurt-1")[0]
    assert frankfurt.zones == ("EU-FRANKFURT-1-AD-1", "EU-FRANKFURT-1-AD-2", "EU-FRANKFURT-1-AD-3")
    assert load_catalog(None, "oci", "us-phoenix-1")[0].zones == (
        "PHX-AD-1",
        "PHX-AD-2",
        "PHX-AD-3",
    )
    assert load_catalog(None, "oci", "eu-amsterdam-1")[0].zones == ("EU-AMSTERDAM-1-AD-1",)


def test_the_big_shapes_are_in_every_region_at_one_price(
    catalogs: dict[str, dict[str, InstanceType]],
) -> None:
    # OCI "Compute Shapes" (GPUs, memory) and Oracle's price list (one price in every
    # commercial region): H100 $10.00 and A100 80GB $4.00 a GPU-hour; A100 40GB (BM.GPU4.8)
    # $3.05; E4 $0.025 an OCPU + $0.0015 a GB.
    expected = {
        "BM.GPU.H100.8": (8, "H100", 80, 8 * 10.00),
        "BM.GPU.A100-v2.8": (8, "A100", 80, 8 * 4.00),
        "BM.GPU4.8": (8, "A100", 40, 8 * 3.05),
        "BM.GPU3.8": (8, "V100", 16, None),
        "BM.GPU.A10.4": (4, "A10", 24, None),
        "VM.GPU.A10.1": (1, "A10", 24, None),
    }
    for region, types in catalogs.items():
        for shape, (gpus, sku, gib, price) in expected.items():
            got = types[shape]
            assert (got.gpu_count, got.gpu_sku, got.gpu_memory_bytes) == (
                gpus,
                sku,
                gpus * gib * GIB,
            )
            if price is not None:
                assert got.on_demand_price == pytest.approx(price), (region, shape)
        # Bare metal and E-series large memory: BM.Standard.E4.128 is 128 OCPUs and 2048 GB.
        e4 = types["BM.Standard.E4.128"]
        assert (e4.vcpu, e4.memory_bytes) == (256, 2048 * GIB)
        assert e4.on_demand_price == pytest.approx(128 * 0.025 + 2048 * 0.0015)
        assert types["VM.Standard.E4.Flex-16-1024"].memory_bytes == 1024 * GIB
