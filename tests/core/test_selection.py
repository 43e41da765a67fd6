from gibbous.core import keys
from gibbous.core.choice.catalog import parse_catalog_csv
from gibbous.core.choice.selection import PodRequirement, build_offers, candidate_offers
from gibbous.core.podmodel.affinity import pod_node_affinity
from gibbous.core.podmodel.constraints import PriceCategory, parse_constraints
from gibbous.core.podmodel.pods import pod_requests
from tests.factories import config, csv_catalog, make_pod, offers, spot_post_ray_head

ON_DEMAND = frozenset({PriceCategory.ON_DEMAND})
BOTH = frozenset(PriceCategory)


def requirement(
    pod: dict[str, object], offerings: frozenset[PriceCategory] = ON_DEMAND
) -> PodRequirement:
    annotations = pod["metadata"]["annotations"]  # type: ignore[index]
    constraints = parse_constraints(annotations)
    return PodRequirement(
        requests=pod_requests(pod),
        constraints=constraints,
        offerings=constraints.offerings or offerings,
        affinity=pod_node_affinity(pod),
    )


TIES = csv_catalog(
    "aws,us-west-2,b.large,2,8,0,,amd64,0.10,0.10",
    "aws,us-west-2,a.large,2,8,0,,amd64,0.10,0.11",
    "aws,us-west-2,a.mem,2,16,0,,amd64,0.10,0.12",
    "aws,us-west-2,a.xlarge,4,8,0,,amd64,0.10,0.13",
    "aws,us-west-2,z.large,2,8,0,,amd64,0.05,0.02",
    "aws,us-west-2,g1.xlarge,4,16,2,T4,amd64,0.30,0.90",  # 2 GPUs, the earlier name
    "aws,us-west-2,g2.xlarge,4,16,1,T4,amd64,0.30,0.90",
)


def test_cheapest_first_with_documented_tie_break() -> None:
    """docs/decisions.md: cheapest first; at equal price on-demand before spot, then fewer
    GPUs, fewer vCPUs, less memory, then the name. The order below is written by hand."""
    types = parse_catalog_csv(TIES, "ties.csv")
    cfg = config()
    plain = candidate_offers(
        requirement(make_pod(cpu="1", memory="1Gi"), BOTH), build_offers(types, cfg), cfg
    )
    assert [(o.name, str(o.category), o.price) for o in plain.offers] == [
        ("z.large", "spot", 0.02),
        ("z.large", "on-demand", 0.05),
        ("a.large", "on-demand", 0.10),  # same as b.large: by name
        ("b.large", "on-demand", 0.10),  # before its spot at the same price
        ("a.mem", "on-demand", 0.10),  # more memory
        ("a.xlarge", "on-demand", 0.10),  # more vCPUs, though less memory than a.mem
        ("b.large", "spot", 0.10),
        ("a.large", "spot", 0.11),
        ("a.mem", "spot", 0.12),
        ("a.xlarge", "spot", 0.13),
    ]
    gpu = candidate_offers(
        requirement(make_pod(cpu="1", memory="1Gi", gpus=1)), build_offers(types, cfg), cfg
    )
    assert [o.name for o in gpu.offers] == ["g2.xlarge", "g1.xlarge"]  # fewer GPUs first


def test_gke_spot_ranking_from_the_spot_post() -> None:
    # P10: 2 GPUs of T4/P4/L4, spot or on-demand, at most 2 GPUs, under $4.75, 27 CPU / 27Gi.
    pod = spot_post_ray_head()
    cfg = config(cloudProvider="gcp")
    result = candidate_offers(requirement(pod), offers("gcp", cfg), cfg)
    ranked = [(o.name, str(o.category), round(o.price, 4)) for o in result.offers[:4]]
    assert ranked[0] == ("n1-standard-32+t4x2", "spot", 1.11)
    assert ranked[1] == ("n1-highmem-32+t4x2", "spot", 1.2964)
    assert ranked[2] == ("n1-standard-32+p4x2", "spot", 1.36)
    on_demand_t4 = next(
        o
        for o in result.offers
        if o.name == "n1-standard-32+t4x2" and o.category is PriceCategory.ON_DEMAND
    )
    assert on_demand_t4.price == 2.22  # the P4 spot option is cheaper than T4 on-demand
    assert all(o.price <= 4.75 for o in result.offers)


def test_gpu_types_are_not_chosen_for_pods_without_gpus() -> None:
    result = candidate_offers(requirement(make_pod(cpu="3", memory="8Gi")), offers(), config())
    assert result.offers and all(o.instance.gpu_count == 0 for o in result.offers)


def test_unsatisfiable_reason_names_the_constraint() -> None:
    # P10: "AWS does not have any 4-GPU T4 instances with enough CPUs to handle the original request of 54".
    pod = make_pod(
        cpu="54",
        memory="54Gi",
        gpus=4,
        annotations={keys.INSTANCE_GPU_SKUS: "T4", keys.INSTANCE_MAX_GPUS: "4"},
    )
    result = candidate_offers(requirement(pod), offers(), config())
    assert not result
    assert result.reason.startswith("no T4 type with >= 54 CPU, 54Gi memory, 4 nvidia.com/gpu")
    assert "room" in result.reason


def test_max_cost_reason_names_the_cheapest() -> None:
    pod = make_pod(
        cpu="1", gpus=8, annotations={keys.INSTANCE_GPU_SKUS: "A100", keys.INSTANCE_MAX_COST: "5"}
    )
    result = candidate_offers(requirement(pod), offers(), config())
    assert not result
    assert "every fitting offer costs more than $5/hr (cheapest: p4d.24xlarge" in result.reason


def test_type_regexp_families_and_arch() -> None:
    pod = make_pod(annotations={keys.INSTANCE_TYPE_REGEXP: r"^m7i\."})
    assert {
        o.instance.family for o in candidate_offers(requirement(pod), offers(), config()).offers
    } == {"m7i"}
    excluded = make_pod(annotations={keys.INSTANCE_FAMILY_EXCLUSIONS: "t3,t3a,m5,m5a,c5a"})
    families = {
        o.instance.family
        for o in candidate_offers(requirement(excluded), offers(), config()).offers
    }
    assert families.isdisjoint({"t3", "t3a", "m5", "m5a", "c5a"})
    default = candidate_offers(requirement(make_pod()), offers(), config())
    assert {o.instance.arch for o in default.offers} == {"amd64"}  # architectures default
    arm = candidate_offers(
        requirement(make_pod(node_selector={keys.ARCH: "arm64"})), offers(), config()
    )
    assert {o.instance.arch for o in arm.offers} == {"arm64"}
    both = candidate_offers(
        requirement(make_pod()), offers(), config(architectures=["amd64", "arm64"])
    )
    assert {o.instance.arch for o in both.offers} == {"amd64", "arm64"}


def test_zone_and_instance_type_selectors() -> None:
    zoned = make_pod(node_selector={keys.ZONE: "us-west-2d"})
    result = candidate_offers(requirement(zoned), offers(), config())
    assert result and all("us-west-2d" in o.instance.zones for o in result.offers)
    typed = make_pod(node_selector={keys.INSTANCE_TYPE: "m5.large"})
    assert {o.name for o in candidate_offers(requirement(typed), offers(), config()).offers} == {
        "m5.large"
    }


def test_foreign_node_labels_need_place_node_selector() -> None:
    pod = make_pod(node_selector={"team": "ml"})
    refused = candidate_offers(requirement(pod), offers(), config())
    assert not refused and "node selector" in refused.reason
    assert candidate_offers(requirement(pod), offers(), config(placeNodeSelector=True))


def test_backed_off_and_gpu_budget() -> None:
    pod = make_pod(cpu="1", gpus=1)
    first = candidate_offers(requirement(pod), offers(), config()).offers[0]
    result = candidate_offers(
        requirement(pod), offers(), config(), backed_off=frozenset({(first.name, "on-demand")})
    )
    assert result.offers[0].name != first.name
    none_left = candidate_offers(requirement(pod), offers(), config(), gpu_budget=0)
    assert not none_left and "clusterGPULimit" in none_left.reason
