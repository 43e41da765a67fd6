import pytest

from gibbous.core.choice.catalog import allocatable, family_of, parse_catalog_csv
from gibbous.core.errors import CatalogError
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.settings.options.overhead import NodeOverheadConfig
from tests.factories import catalog, csv_catalog


def test_user_catalog_with_empty_spot() -> None:
    types = parse_catalog_csv(
        csv_catalog(
            "aws,us-east-1,x1.big,8,32,1,t4,x86_64,1.0,",
            "aws,us-east-1,x1.small,2,8,0,,arm64,0.1,0.03",
        ),
        "my.csv",
    )
    big, small = types
    assert big.gpu_sku == "T4" and big.arch == "amd64" and big.spot_price is None
    assert big.price(PriceCategory.SPOT, 0.5) == 0.5
    assert small.spot_price == 0.03 and small.family == "x1"


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        (
            ["aws,us-east-1,a,2,8,0,,amd64,notaprice,"],
            2,
            "on_demand_usd_per_hour: 'notaprice' is not a number",
        ),
        (["aws,us-east-1,a,2,8,0,,amd64,0.1,", "ibm,x,b,2,8,0,,amd64,0.1,"], 3, "cloud 'ibm'"),
        (["aws,us-east-1,a,2,8,1,,amd64,0.1,"], 2, "gpu_sku is empty"),
        (["aws,us-east-1,a,2,8,0,,sparc,0.1,"], 2, "arch 'sparc'"),
        (["aws,us-east-1,a,0,8,0,,amd64,0.1,"], 2, "vcpu and memory_gib must be > 0"),
        (
            ["aws,us-east-1,a,2,8,0,,amd64,0.1,", "aws,us-east-1,a,2,8,0,,amd64,0.1,"],
            3,
            "duplicate",
        ),
        (["aws,us-east-1,a,2,8,0,,amd64,0.1,,extra"], 2, "more fields"),
    ],
)
def test_bad_rows_name_file_line_and_reason(rows: list[str], line: int, fragment: str) -> None:
    with pytest.raises(CatalogError) as raised:
        parse_catalog_csv(csv_catalog(*rows), "cat.csv")
    assert str(raised.value).startswith(f"cat.csv:{line}: ")
    assert fragment in str(raised.value)


def test_missing_header_column() -> None:
    with pytest.raises(CatalogError, match=r"cat\.csv:1: missing column"):
        parse_catalog_csv("cloud,region\naws,x\n", "cat.csv")


@pytest.mark.parametrize(
    ("cloud", "name", "family"),
    [
        ("aws", "g4dn.xlarge", "g4dn"),
        ("gcp", "n1-standard-32+t4x2", "n1"),
        ("azure", "Standard_NC4as_T4_v3", "ncas_t4_v3"),
        ("azure", "Standard_E4-2ads_v5", "eads_v5"),
        ("oci", "VM.GPU2.1", "vm.gpu2"),
    ],
)
def test_family_names(cloud: str, name: str, family: str) -> None:
    assert family_of(cloud, name) == family


def test_every_type_named_in_the_posts_is_in_the_builtin_catalogs() -> None:
    named = {
        "aws": [
            "g4dn.xlarge",
            "g4dn.12xlarge",
            "g3.8xlarge",
            "g6.8xlarge",
            "g6.12xlarge",
            "p4d.24xlarge",
            "r5a.xlarge",
            "t3a.small",
            "t3a.xlarge",
            "t3a.2xlarge",
            "g6.4xlarge",
            "g4dn.2xlarge",
            "g5.xlarge",
            "m5.large",
        ],
        "gcp": [
            "e2-medium",
            "e2-highmem-4",
            "g2-standard-32",
            "g2-standard-24",
            "a2-highgpu-2g",
            "n1-standard-4+t4x1",
            "n1-standard-4",
            "n1-standard-32+t4x2",
            "n1-highmem-32+t4x2",
            "n1-standard-32+p4x2",
            "g2-standard-12",
            "g2-standard-16",
            "c2d-highcpu-8",
            "c2d-highcpu-4",
            "n2-standard-16",
        ],
        "azure": [
            "Standard_E4as_v5",
            "Standard_NV36ads_A10_v5",
            "Standard_NV72ads_A10_v5",
            "Standard_NC24ads_A100_v4",
            "Standard_NC64as_T4_v3",
            "Standard_NC4as_T4_v3",
            "Standard_NC16as_T4_v3",
            "Standard_B2als_v2",
            "Standard_A8m_v2",
            "Standard_DS2_v2",
            "Standard_NC6s_v3",
        ],
        "oci": ["VM.GPU2.1"],
    }
    for cloud, names in named.items():
        present = {t.name for t in catalog(cloud)}
        assert not set(names) - present, cloud


@pytest.mark.parametrize(
    ("cloud", "name", "price"),
    [
        ("aws", "g4dn.xlarge", 0.526),
        ("aws", "g4dn.12xlarge", 3.912),
        ("aws", "g3.8xlarge", 2.28),
        ("aws", "g6.8xlarge", 2.0144),
        ("aws", "r5a.xlarge", 0.226),
        ("gcp", "e2-highmem-4", 0.1808),
        ("gcp", "g2-standard-32", 1.7343),
        ("gcp", "g2-standard-24", 2.0008),
        ("gcp", "n1-standard-4+t4x1", 0.54),
        ("gcp", "n1-standard-32+t4x2", 2.22),
        ("gcp", "n1-standard-32+p4x2", 2.72),
        ("azure", "Standard_NC64as_T4_v3", 4.352),
        ("azure", "Standard_NV36ads_A10_v5", 3.2),
        ("oci", "VM.GPU2.1", 1.275),
    ],
)
def test_posts_prices(cloud: str, name: str, price: float) -> None:
    by_name = {t.name: t for t in catalog(cloud)}
    assert by_name[name].on_demand_price == pytest.approx(price, abs=5e-5)


def test_every_builtin_row_has_price_date_and_gpu_details() -> None:
    for cloud in ("aws", "gcp", "azure", "oci"):
        for instance in catalog(cloud):
            assert instance.price_date
            if instance.gpu_count:
                assert instance.gpu_sku


def test_allocatable_subtracts_reservations_and_slices_gpus() -> None:
    g4dn = {t.name: t for t in catalog("aws")}["g4dn.xlarge"]
    node = allocatable(g4dn, NodeOverheadConfig(), time_slices=2)
    assert node.gpus == 2
    # By hand, GKE's documented tiers (plan-node-sizes) for 4 vCPU / 16 GiB, the 100Mi
    # eviction threshold and the default DaemonSet allowance (100m, 200Mi): CPU 6 % of
    # the first core, 1 % of the second, 0.5 % of the next two; memory 25 % of the first
    # 4 GiB, 20 % of the next 4, 10 % of the next 8.
    assert node.cpu_millis == 4000 - (60 + 10 + 10) - 100
    reserved = 0.25 * 4 * 2**30 + 0.20 * 4 * 2**30 + 0.10 * 8 * 2**30
    assert node.memory_bytes == 16 * 2**30 - round(reserved) - 100 * 2**20 - 200 * 2**20
    assert node.pods == 29  # EKS ENI limit for g4dn.xlarge
    bare = allocatable(
        g4dn,
        NodeOverheadConfig(
            reservation="none",
            daemonset_cpu_millis=0,
            daemonset_memory_bytes=0,
            eviction_memory_bytes=0,
        ),
        1,
    )
    assert bare.cpu_millis == 4000 and bare.memory_bytes == 16 * 2**30
