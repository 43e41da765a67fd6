import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import ExistingNode, Guardrails, PendingPod, Plan
from gibbous.core.podmodel.resources import Resources, total
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod, offers

AWS_OFFERS = offers()


def pending(pod: dict[str, object], cfg: Config) -> PendingPod:
    return describe_pod(pod, cfg)[0]


def plan_for(pods: list[dict[str, object]], cfg: Config, **kwargs: object) -> Plan:
    return simulate([pending(p, cfg) for p in pods], offers(cfg.cloud, cfg), cfg, **kwargs)  # type: ignore[arg-type]


def nodes_by_type(plan: Plan) -> Counter[tuple[str, str]]:
    return Counter((n.offer.name, str(n.offer.category)) for n in plan.new_nodes)


def test_time_slicing_known_answers() -> None:
    # P17: two 1-GPU pods, binPackingNodeGPU=2, binSelectPodGPUThreshold=2.
    pods = [make_pod(f"gpu-{i}", cpu="1", memory="2G", gpus=1) for i in range(2)]
    sliced = config(nvidiaGPUTimeSlices=2, binPackingNodeGPU=2, binSelectPodGPUThreshold=2)
    plan = plan_for(pods, sliced)
    assert nodes_by_type(plan) == {("g4dn.xlarge", "on-demand"): 1}
    assert plan.cost_per_hour == pytest.approx(0.526)
    whole = config(nvidiaGPUTimeSlices=1, binPackingNodeGPU=2, binSelectPodGPUThreshold=2)
    assert nodes_by_type(plan_for(pods, whole)) == {("g3.8xlarge", "on-demand"): 1}
    no_g3 = config(
        nvidiaGPUTimeSlices=1,
        binPackingNodeGPU=2,
        binSelectPodGPUThreshold=2,
        binPackingNodeTypeRegexp="^([^g]|g($|[^3])).*$",
    )
    plan = plan_for(pods, no_g3)
    assert nodes_by_type(plan) == {("g4dn.12xlarge", "on-demand"): 1}
    assert plan.cost_per_hour == pytest.approx(3.912)


def test_time_slice_aware_allocation_halves_nodes() -> None:
    # P17: four 1-GPU pods with 2 slices need one 2-GPU node, not two.
    pods = [make_pod(f"g{i}", cpu="1", memory="2G", gpus=1) for i in range(4)]
    cfg = config(nvidiaGPUTimeSlices=2, binPackingNodeGPU=4, binSelectPodGPUThreshold=2)
    plan = plan_for(pods, cfg)
    assert len(plan.new_nodes) == 1
    assert plan.new_nodes[0].offer.instance.gpu_count * 2 >= 4


def worker(name: str, gpus: int, skus: str) -> dict[str, object]:
    return make_pod(
        name, cpu="16", memory="16Gi", gpus=gpus, annotations={keys.INSTANCE_GPU_SKUS: skus}
    )


@pytest.mark.parametrize(
    ("cloud", "gpus", "skus", "expected_type", "expected_count"),
    [
        # P04 cost-estimate tables (workers only).
        ("aws", 1, "L4,A10G,A10,L40S", "g6.8xlarge", 2),
        ("aws", 2, "L4,A10G,A10,L40S", "g6.12xlarge", 1),  # two 2-GPU workers share a 4-GPU node
        ("aws", 1, "A100", "p4d.24xlarge", 1),  # A100 only in 8-GPU p4d
        ("gcp", 1, "L4,A10G,A10,L40S", "g2-standard-32", 2),
        (
            "gcp",
            2,
            "L4,A10G,A10,L40S",
            "g2-standard-24",
            2,
        ),  # tie with g2-standard-48 keeps one per pod
        ("gcp", 1, "A100", "a2-highgpu-2g", 2),
        ("azure", 1, "L4,A10G,A10,L40S", "Standard_NV36ads_A10_v5", 2),
        ("azure", 2, "L4,A10G,A10,L40S", "Standard_NV72ads_A10_v5", 2),
        ("azure", 1, "A100", "Standard_NC24ads_A100_v4", 2),
    ],
)
def test_sticker_shock_tables(
    cloud: str, gpus: int, skus: str, expected_type: str, expected_count: int
) -> None:
    cfg = config(cloudProvider=cloud)
    plan = plan_for([worker("w0", gpus, skus), worker("w1", gpus, skus)], cfg)
    assert nodes_by_type(plan) == {(expected_type, "on-demand"): expected_count}
    assert not plan.unschedulable


# Kueue's sample Job: identical pods of 1 CPU, 200Mi and one GPU, on GKE. The built-in GCP
# catalog's prices (its list prices: n1-standard-4 with one T4 $0.54/hr, with two T4
# $0.89/hr, n1-standard-8 with four T4 $1.78/hr; no other SKU is cheaper per count), by hand:
#   1 pod: 0.54; 2 pods: 0.89 (not 2 x 0.54 = 1.08); 3 pods: 0.89 + 0.54 = 1.43 (not
#   3 x 0.54 = 1.62, nor 2 x 0.89 = 1.78); 4 pods: 1.78 (2 x t4x2 or one t4x4, not 2.16);
#   5 pods: 1.78 + 0.54 = 2.32 (not 2.70).
@pytest.mark.parametrize(
    ("pods", "total", "nodes"),
    [(1, 0.54, 1), (2, 0.89, 1), (3, 1.43, 2), (4, 1.78, None), (5, 2.32, None)],
)
def test_a_mix_of_gpu_types_when_cheaper_in_total_for_every_count(
    pods: int, total: float, nodes: int | None
) -> None:
    cfg = config(cloudProvider="gcp")
    plan = plan_for([make_pod(f"k{i}", cpu="1", memory="200Mi", gpus=1) for i in range(pods)], cfg)
    assert plan.cost_per_hour == pytest.approx(total)
    assert nodes is None or len(plan.new_nodes) == nodes
    assert sorted(k for n in plan.new_nodes for k in n.pods) == [
        f"default/k{i}" for i in range(pods)
    ]
    assert all(len(n.pods) <= n.offer.instance.gpu_count for n in plan.new_nodes)
    assert not plan.unschedulable


def test_bin_pack_pods_share_nodes_and_bin_select_pods_do_not() -> None:
    cfg = config()
    small = [make_pod(f"s{i}", cpu="250m", memory="512Mi") for i in range(20)]
    big = [make_pod(f"b{i}", cpu="3", memory="2Gi") for i in range(2)]
    plan = simulate([pending(p, cfg) for p in small + big], AWS_OFFERS, cfg)
    bin_pack = [n for n in plan.new_nodes if n.placement is Placement.BIN_PACK]
    bin_select = [n for n in plan.new_nodes if n.placement is Placement.BIN_SELECT]
    assert sum(len(n.pods) for n in bin_pack) == 20
    assert len(bin_pack) == 2  # 20 x 250m on ~3.7-CPU allocatable 4-vCPU nodes
    assert all(k.startswith("default/s") for n in bin_pack for k in n.pods)
    assert sorted(k for n in bin_select for k in n.pods) == ["default/b0", "default/b1"]


def test_reuse_off_gives_every_bin_select_pod_its_own_node() -> None:
    cfg = config(binSelectNodeReuse=False)
    pods = [make_pod(f"b{i}", cpu="3", memory="2Gi") for i in range(3)]
    plan = plan_for(pods, cfg)
    assert len(plan.new_nodes) == 3
    assert {n.assigned_pod_uid for n in plan.new_nodes} == {"uid-b0", "uid-b1", "uid-b2"}


def test_oversized_bin_pack_pod_becomes_bin_select() -> None:
    cfg = config(
        binPackingNodeCpu=2,
        binPackingNodeMemory="2Gi",
        binSelectPodMemoryThreshold="8Gi",
        binPackingNodeStrategy="cheapest-node",
    )
    plan = plan_for([make_pod("m", cpu="500m", memory="3Gi")], cfg)
    assert plan.placements["default/m"] is Placement.BIN_SELECT
    assert not plan.unschedulable
    # The default strategy takes a larger spec-meeting type that holds it as bin-pack.
    roomy = plan_for(
        [make_pod("m", cpu="500m", memory="3Gi")],
        config(binPackingNodeCpu=2, binPackingNodeMemory="2Gi", binSelectPodMemoryThreshold="8Gi"),
    )
    assert roomy.placements["default/m"] is Placement.BIN_PACK


def test_cheapest_node_strategy_is_lunas_rule() -> None:
    cfg = config(binPackingNodeStrategy="cheapest-node")
    plan = plan_for([make_pod(f"s{i}", cpu="1500m", memory="1Gi") for i in range(10)], cfg)
    assert {n.offer.name for n in plan.new_nodes} == {"t3a.xlarge"}  # cheapest 4 vCPU / 16Gi


# --- properties ----------------------------------------------------------------------

CPU = ["50m", "100m", "250m", "500m", "1", "1500m", "3", "6", "30"]
MEMORY = ["64Mi", "256Mi", "512Mi", "1Gi", "2Gi", "6Gi", "40Gi", "700Gi"]

pod_spec = st.tuples(
    st.sampled_from(CPU),
    st.sampled_from(MEMORY),
    st.sampled_from([0, 0, 0, 1, 2, 16]),
    st.integers(min_value=-1, max_value=1),
    st.booleans(),
)
# Bugs live where many pods share a node: a few shapes at once, each dozens of times.
pod_specs = st.lists(
    st.tuples(pod_spec, st.integers(min_value=1, max_value=120)), min_size=1, max_size=4
).map(lambda groups: [spec for spec, count in groups for _ in range(count)])

# Edge shapes: many small pods that fill bin-pack nodes several times over, small and
# medium pods together, pods just under and at a node's size, GPUs beyond the budget.
EDGE_SPECS = [
    [("250m", "256Mi", 0, 0, False)] * 150,
    [("100m", "64Mi", 0, 0, False)] * 200 + [("1500m", "2Gi", 0, 1, True)] * 40,
    [("1", "1Gi", 0, 0, False)] * 60 + [("3", "6Gi", 0, -1, False)] * 25,
    [("6", "40Gi", 1, 0, False)] * 12 + [("50m", "64Mi", 0, 0, True)] * 90,
    [("30", "700Gi", 16, 0, False)] * 3,
]


def build(specs: list[tuple[str, str, int, int, bool]], cfg: Config) -> list[PendingPod]:
    out = []
    for index, (cpu, memory, gpus, priority, spot) in enumerate(specs):
        annotations = {keys.INSTANCE_OFFERINGS: "spot,on-demand"} if spot else {}
        pod = make_pod(f"p{index:03d}", cpu=cpu, memory=memory, gpus=gpus, annotations=annotations)
        pod["spec"]["priority"] = priority
        out.append(pending(pod, cfg))
    return out


def assert_sound(
    plan: Plan, pods: list[PendingPod], existing: tuple[ExistingNode, ...] = ()
) -> None:
    keys_ = [p.key for p in pods]
    requests = {p.key: p.requirement.requests for p in pods}
    placed_new = [k for n in plan.new_nodes for k in n.pods]
    # Conservation: every pod exactly once, placed or reported with a reason.
    assert sorted(placed_new + list(plan.on_existing) + list(plan.unschedulable)) == sorted(keys_)
    assert all(plan.unschedulable.values())
    for node in plan.new_nodes:  # never overcommitted
        used = total(requests[k] for k in node.pods)
        assert used.fits_in(node.offer.allocatable), (node.offer.name, used, node.offer.allocatable)
    for existing_node in existing:
        used = total(
            requests[k] for k, name in plan.on_existing.items() if name == existing_node.name
        )
        assert used.fits_in(existing_node.free)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_specs, st.sampled_from([None, 2, 8]), st.sampled_from([None, 3]), st.booleans())
@example(EDGE_SPECS[0], None, None, False)
@example(EDGE_SPECS[1], None, None, True)
@example(EDGE_SPECS[2], 2, 3, False)
@example(EDGE_SPECS[3], 8, None, True)
@example(EDGE_SPECS[4], 2, None, False)
def test_packing_is_sound_and_respects_guardrails(
    specs: list[tuple[str, str, int, int, bool]],
    gpu_limit: int | None,
    max_nodes: int | None,
    reuse: bool,
) -> None:
    cfg = config(clusterGPULimit=gpu_limit, maxNodes=max_nodes, binSelectNodeReuse=reuse)
    pods = build(specs, cfg)
    plan = simulate(pods, AWS_OFFERS, cfg)
    assert_sound(plan, pods)
    if gpu_limit is not None:
        assert plan.gpus <= gpu_limit
    if max_nodes is not None:
        assert len(plan.new_nodes) <= max_nodes


@settings(max_examples=12, deadline=None)
@given(pod_specs, st.randoms(use_true_random=False))
def test_packing_is_deterministic_whatever_the_input_order(
    specs: list[tuple[str, str, int, int, bool]], rng: random.Random
) -> None:
    cfg = config()
    pods = build(specs, cfg)
    first = simulate(pods, AWS_OFFERS, cfg)
    shuffled = list(pods)
    rng.shuffle(shuffled)
    assert simulate(shuffled, AWS_OFFERS, cfg) == first


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_specs, st.lists(st.sampled_from(["m5.xlarge", "c5.2xlarge", "g4dn.xlarge"]), max_size=4))
def test_existing_nodes_are_never_overcommitted(
    specs: list[tuple[str, str, int, int, bool]], types: list[str]
) -> None:
    cfg = config()
    pods = build(specs, cfg)
    by_name: dict[str, Offer] = {o.name: o for o in AWS_OFFERS if str(o.category) == "on-demand"}
    existing = [
        ExistingNode(
            f"n{i}",
            free=by_name[t].allocatable - Resources(cpu_millis=500, pods=1),
            placement=Placement.BIN_PACK,
            labels={keys.ARCH: "amd64"},
            offer=by_name[t],
        )
        for i, t in enumerate(types)
    ]
    plan = simulate(pods, AWS_OFFERS, cfg, existing=existing)
    assert_sound(plan, pods, tuple(existing))


def test_guardrails_dataclass_counts_what_is_already_running() -> None:
    cfg = config(clusterGPULimit=4)
    pods = [pending(make_pod(f"g{i}", cpu="1", gpus=1), cfg) for i in range(4)]
    plan = simulate(pods, AWS_OFFERS, cfg, guardrails=Guardrails.from_config(cfg, gpus=3))
    assert plan.gpus <= 1


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(CPU[:6]), st.sampled_from(MEMORY[:5])), min_size=1, max_size=60
    )
)
def test_lowest_total_cost_never_costs_more_than_lunas_rule(specs: list[tuple[str, str]]) -> None:
    luna = config(binPackingNodeStrategy="cheapest-node")
    ours = config()
    pods = [make_pod(f"p{i:03d}", cpu=c, memory=m) for i, (c, m) in enumerate(specs)]
    luna_plan = plan_for(pods, luna)
    if luna_plan.unschedulable or any(
        n.placement is Placement.BIN_SELECT for n in luna_plan.new_nodes
    ):
        return
    assert plan_for(pods, ours).cost_per_hour <= luna_plan.cost_per_hour + 1e-9


def test_guardrails_are_never_exceeded_and_refusals_are_reported() -> None:
    pods = [make_pod(f"g{i}", cpu="1", gpus=1) for i in range(5)]
    plan = plan_for(pods, config(clusterGPULimit=3))
    assert plan.gpus <= 3
    assert len(plan.unschedulable) == 2
    assert all("clusterGPULimit" in reason for reason in plan.unschedulable.values())
    capped = plan_for(
        [make_pod(f"b{i}", cpu="3") for i in range(4)], config(maxNodes=1, binSelectNodeReuse=False)
    )
    assert len(capped.new_nodes) == 1 and len(capped.unschedulable) == 3
    assert "maxNodes (1)" in next(iter(capped.unschedulable.values()))
    cost = plan_for(
        [make_pod(f"b{i}", cpu="3") for i in range(4)],
        config(maxClusterCostPerHour=0.2, binSelectNodeReuse=False),
    )
    assert cost.cost_per_hour <= 0.2
    assert all("maxClusterCostPerHour" in r for r in cost.unschedulable.values())


def test_existing_nodes_are_used_first() -> None:
    cfg = config()
    offer = next(o for o in AWS_OFFERS if o.name == "m5.xlarge" and str(o.category) == "on-demand")
    launching = ExistingNode(
        "gibbous-1",
        free=offer.allocatable,
        placement=Placement.BIN_PACK,
        labels={keys.INSTANCE_TYPE: "m5.xlarge", keys.ARCH: "amd64"},
        offer=offer,
    )
    plan = simulate(
        [pending(make_pod(f"s{i}"), cfg) for i in range(3)], AWS_OFFERS, cfg, existing=[launching]
    )
    assert plan.on_existing == {f"default/s{i}": "gibbous-1" for i in range(3)}
    assert not plan.new_nodes


def test_bin_select_pod_goes_to_its_own_node_and_not_to_bin_pack_nodes() -> None:
    cfg = config()
    big = pending(make_pod("big", cpu="3", uid="u-big"), cfg)
    offer = next(o for o in AWS_OFFERS if o.name == "m5.2xlarge" and str(o.category) == "on-demand")
    packed = ExistingNode("pack", free=offer.allocatable, placement=Placement.BIN_PACK, offer=offer)
    own = ExistingNode(
        "own",
        free=offer.allocatable,
        placement=Placement.BIN_SELECT,
        assigned_pod_uid="u-big",
        offer=offer,
    )
    assert simulate([big], AWS_OFFERS, cfg, existing=[packed, own]).on_existing == {
        "default/big": "own"
    }
    plan = simulate([big], AWS_OFFERS, cfg, existing=[packed])
    assert not plan.on_existing and len(plan.new_nodes) == 1


def test_tainted_existing_node_is_skipped_unless_tolerated() -> None:
    cfg = config()
    offer = next(o for o in AWS_OFFERS if o.name == "m5.xlarge" and str(o.category) == "on-demand")
    taint = {"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}
    node = ExistingNode(
        "spot", free=offer.allocatable, placement=Placement.BIN_PACK, taints=(taint,), offer=offer
    )
    plan = simulate([pending(make_pod("a"), cfg)], AWS_OFFERS, cfg, existing=[node])
    assert not plan.on_existing
    tolerant = make_pod("b", tolerations=[{"key": keys.SPOT_TAINT_KEY, "operator": "Exists"}])
    assert simulate([pending(tolerant, cfg)], AWS_OFFERS, cfg, existing=[node]).on_existing == {
        "default/b": "spot"
    }


def test_bin_packing_node_min_pod_count_excludes_types_running_fewer_pods() -> None:
    # docs.elotl.co/luna/configuration: binPackingNodeMinPodCount beside binPackingNodeCpu and
    # binPackingNodeMemory. t3a.xlarge runs 58 pods on EKS (AWS's eni-max-pods: 4 ENIs x
    # (15 - 1) + 2).
    pods = [make_pod(f"s{i}", cpu="1500m", memory="1Gi") for i in range(10)]
    fits = plan_for(
        pods, config(binPackingNodeStrategy="cheapest-node", binPackingNodeMinPodCount=58)
    )
    assert {n.offer.name for n in fits.new_nodes} == {"t3a.xlarge"}
    more = plan_for(
        pods, config(binPackingNodeStrategy="cheapest-node", binPackingNodeMinPodCount=59)
    )
    assert more.new_nodes and "t3a.xlarge" not in {n.offer.name for n in more.new_nodes}
    assert all(n.offer.allocatable.pods >= 59 for n in more.new_nodes)
