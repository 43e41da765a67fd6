"""Choice-layer rules the mutation run of issue 37 (docs/mutation.md) showed no test held.

Expected values come from the clouds' API documents and docs (EC2 DescribeInstanceTypes,
Azure Resource SKUs and Retail Prices, Cloud Billing's SKU prices, OCI's price list, GKE's
accelerator and GPU-sharing labels, GKE/EKS ephemeral-storage reservations) and from hand
computations written here."""

from __future__ import annotations

import pytest

from gibbous.core.choice.awslive import parse_instance_types
from gibbous.core.choice.azurelive import parse_resource_skus, parse_retail_prices
from gibbous.core.choice.catalog import InstanceType, parse_catalog_csv
from gibbous.core.choice.gcplive import parse_machine_types, unit_price
from gibbous.core.choice.machinelabels import gke_accelerator
from gibbous.core.choice.n1gpus import n1_gpu_limit
from gibbous.core.choice.nodedisk import ephemeral_allocatable
from gibbous.core.choice.ocilive import parse_price_list
from gibbous.core.choice.selection import (
    build_offers,
    candidate_offers,
    cheapest_offer_for_shape,
    offer_labels,
)
from gibbous.core.errors import CatalogError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.podmodel.constraints import PriceCategory
from tests.factories import config, csv_catalog, make_pod
from tests.factories import offers as offers_of

GIB = 2**30
HEADER = (
    "cloud,region,instance_type,vcpu,memory_gib,gpu_count,gpu_sku,arch,"
    "on_demand_usd_per_hour,spot_usd_per_hour,gpu_memory_gib,max_pods"
)


def catalog_row(row: str, source: str = "my.csv") -> list[InstanceType]:
    return list(parse_catalog_csv(f"{HEADER}\n{row}\n", source))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("aws,us-west-2,m5.large,,8,0,,amd64,0.096,,,", "my.csv:2: column vcpu is empty"),
        (
            "aws,us-west-2,m5.large,2,8,0,,amd64,0.096,,,many",
            "my.csv:2: column max_pods: 'many' is not a number",
        ),
    ],
)
def test_catalog_errors_name_the_file_and_line(row: str, message: str) -> None:
    with pytest.raises(CatalogError) as raised:
        catalog_row(row)
    assert str(raised.value) == message


def test_a_catalog_sku_without_gpus_is_dropped() -> None:
    (instance,) = catalog_row("aws,us-west-2,m5.large,2,8,0,T4,amd64,0.096,,,")
    assert instance.gpu_sku == ""


@pytest.mark.parametrize(
    ("name", "gpus", "gpu_memory_gib", "label"),
    [
        # GKE's cloud.google.com/gke-accelerator values: a2-highgpu has 40 GB A100s,
        # a2-ultragpu 80 GB ones
        ("a2-highgpu-1g", 1, 40, "nvidia-tesla-a100"),
        ("a2-highgpu-2g", 2, 80, "nvidia-tesla-a100"),
        ("a2-ultragpu-1g", 1, 80, "nvidia-a100-80gb"),
        ("a2-ultragpu-2g", 2, 160, "nvidia-a100-80gb"),
    ],
)
def test_gke_accelerator_tells_the_a100s_apart(
    name: str, gpus: int, gpu_memory_gib: int, label: str
) -> None:
    (instance,) = catalog_row(f"gcp,us-central1,{name},12,85,{gpus},A100,amd64,3.67,,{gpu_memory_gib},")  # fmt: skip
    assert gke_accelerator(instance) == label


def test_gke_gpu_time_sharing_labels() -> None:
    # GKE: cloud.google.com/gke-gpu-sharing-strategy=time-sharing and
    # cloud.google.com/gke-max-shared-clients-per-gpu=<n> on time-shared GPU nodes
    instances = catalog_row("gcp,us-central1,g2-standard-4,4,16,1,L4,amd64,0.71,,24,")
    for slices, expected in ((1, None), (2, "2"), (3, "3")):
        cfg = config(cloudProvider="gcp", nvidiaGPUTimeSlices=slices)
        labels = offer_labels(build_offers(instances, cfg)[0], cfg)
        assert labels.get("cloud.google.com/gke-max-shared-clients-per-gpu") == expected
        sharing = labels.get("cloud.google.com/gke-gpu-sharing-strategy")
        assert sharing == (None if expected is None else "time-sharing")


@pytest.mark.parametrize(
    ("cloud", "disk_gib", "allocatable"),
    [
        # GKE: 10 % eviction threshold + min(50 %, 6 GiB + 35 %, 100 GiB)
        ("gcp", 100, (100 - 10 - 41) * GIB),
        ("gcp", 10, 10 * GIB - GIB - 5 * GIB),
        # EKS: 10 % + 1 GiB kube-reserved; a 1 GiB disk leaves nothing, not less
        ("aws", 1, 0),
        ("azure", 100, 90 * GIB),
    ],
)
def test_ephemeral_allocatable(cloud: str, disk_gib: int, allocatable: int) -> None:
    assert ephemeral_allocatable(cloud, disk_gib) == allocatable


def test_n1_gpu_limits_only_for_attachable_counts() -> None:
    # Compute Engine attaches 1, 2 or 4 T4s to an N1 machine; no such GPU as "Z9"
    assert n1_gpu_limit("T4", 3) is None
    assert n1_gpu_limit("Z9", 1) is None
    assert n1_gpu_limit("T4", 1) is not None


def test_ec2_types_without_memory_are_left_out() -> None:
    def info(name: str, mib: int) -> dict[str, object]:
        return {
            "InstanceType": name,
            "VCpuInfo": {"DefaultVCpus": 2},
            "MemoryInfo": {"SizeInMiB": mib},
            "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
            "SupportedUsageClasses": ["on-demand"],
        }

    specs = parse_instance_types([{"InstanceTypes": [info("m5.large", 8192), info("x.none", 0)]}])
    assert sorted(specs) == ["m5.large"]


def test_azure_sizes_with_impossible_sizes_and_windows_only_prices_are_left_out() -> None:
    def size(name: str, memory: str) -> dict[str, object]:
        return {
            "resourceType": "virtualMachines",
            "name": name,
            "locations": ["westeurope"],
            "locationInfo": [{"location": "westeurope", "zones": ["1"]}],
            "capabilities": [
                {"name": "vCPUs", "value": "2"},
                {"name": "MemoryGB", "value": memory},
            ],
        }

    pages = [{"value": [size("Standard_D2s_v5", "8"), size("Standard_Inf", "inf")]}]
    assert sorted(parse_resource_skus(pages, "westeurope")) == ["Standard_D2s_v5"]

    def price(sku: str, usd: float, product: str) -> dict[str, object]:
        return {
            "currencyCode": "USD",
            "retailPrice": usd,
            "armRegionName": "westeurope",
            "meterName": "D2s v5",
            "skuName": "D2s v5",
            "productName": product,
            "unitOfMeasure": "1 Hour",
            "type": "Consumption",
            "armSkuName": sku,
        }

    items = [
        price("Standard_D2s_v5", 0.096, "Virtual Machines DSv5 Series"),
        price("Standard_W2s_v5", 0.188, "Virtual Machines WSv5 Series Windows"),
    ]
    on_demand, _ = parse_retail_prices([{"Items": items}], "westeurope")
    assert on_demand == {"Standard_D2s_v5": 0.096}


def test_gcp_prices_in_another_currency_are_not_read_as_dollars() -> None:
    def sku(currency: str | None) -> dict[str, object]:
        money = {"units": "0", "nanos": 31611000}
        if currency:
            money["currencyCode"] = currency
        rate = {"startUsageAmount": 0, "unitPrice": money}
        return {"pricingInfo": [{"pricingExpression": {"tieredRates": [rate]}}]}

    assert unit_price(sku("USD")) == pytest.approx(0.031611)
    assert unit_price(sku(None)) == pytest.approx(0.031611)
    assert unit_price(sku("EUR")) is None


def test_a_gcp_page_that_is_not_an_object_is_named() -> None:
    with pytest.raises(CatalogError, match="a page is not an object"):
        parse_machine_types(["not a page"], "us-central1")  # type: ignore[list-item]


def test_oci_prices_are_pay_as_you_go() -> None:
    item = {
        "partNumber": "B93113",  # E4 OCPU
        "metricName": "OCPU Per Hour",
        "currencyCodeLocalizations": [
            {
                "currencyCode": "USD",
                "prices": [
                    {"model": "MONTHLY_COMMIT", "value": 0.02},
                    {"model": "PAY_AS_YOU_GO", "value": 0.025},
                ],
            }
        ],
    }
    assert parse_price_list([{"items": [item]}]) == {("E4", "ocpu"): 0.025}


def test_the_bin_pack_shape_no_type_meets_is_named() -> None:
    instances = parse_catalog_csv(
        csv_catalog(
            "aws,us-west-2,small.large,2,8,0,,amd64,0.10,0.03",
            "aws,us-west-2,big.xlarge,4,16,0,,amd64,0.20,0.06",
        ),
        "test",
    )
    # placeNodeSelector puts a single-value selector (team=ml) on the node: no note about it
    cfg = config(placeNodeSelector=True, binPackingNodeCpu="8", binPackingNodeMemory="8Gi")
    pod = make_pod("p", node_selector={"team": "ml"})
    affinity = describe_pod(pod, cfg)[0].requirement.affinity
    result = cheapest_offer_for_shape(
        build_offers(instances, cfg),
        cpu_millis=8000,
        memory_bytes=8 * GIB,
        gpus=0,
        config=cfg,
        categories=frozenset({PriceCategory.ON_DEMAND}),
        affinity=affinity,
    )
    # 2 on-demand offers of 2 and 4 vCPUs: none has 8
    assert result.reason == (
        "no instance type meets the bin-pack node spec: none of the 2 offers left passes "
        "the binPackingNode shape (>= 8 vCPU, 8Gi, 0 GPU(s))"
    )


def test_a_reason_names_what_the_pod_asks_and_the_zone_it_cannot_have() -> None:
    # Two ORed terms: m5 (Intel, amd64 only) on arm64, each met alone but not together;
    # or a zone of another region. Zones of the install: us-west-2a and b.
    cfg = config(zones=["us-west-2a", "us-west-2b"])
    pod = make_pod("p", cpu="100m")

    def expression(key: str, value: str) -> dict[str, object]:
        return {"key": key, "operator": "In", "values": [value]}

    terms = [
        {
            "matchExpressions": [
                expression("karpenter.k8s.aws/instance-family", "m5"),
                expression("kubernetes.io/arch", "arm64"),
            ]
        },
        {"matchExpressions": [expression("topology.kubernetes.io/zone", "eu-west-1a")]},
    ]
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
    requirement = describe_pod(pod, cfg)[0].requirement
    result = candidate_offers(requirement, offers_of("aws", cfg), cfg)
    assert not result
    assert result.reason == (
        "no instance type with >= 100m CPU, 0.12Gi memory: no offer satisfies the pod's node "
        "selector and affinity (architecture, zone, labels) (it asks for "
        "karpenter.k8s.aws/instance-family In m5); zone eu-west-1a is not a zone of aws "
        "us-west-2 where nodes can be made (zones: us-west-2a, us-west-2b)"
    )
