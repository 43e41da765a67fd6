"""The extender over HTTP with ExtenderArgs in the exact upstream shape, replies parsed
the way kube-scheduler parses them (capitalised Go field names)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import gibbous.extender.app as app_module
from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.planning.placement import node_view, normalize_gpu_sku, pod_facts
from gibbous.core.settings.config import Config
from gibbous.extender.app import create_app
from gibbous.extender.state import PodLedger, StaticView
from tests.factories import config as make_config
from tests.factories import make_pod

FIXTURES = Path(__file__).parents[1] / "fixtures"
NODECACHE = json.loads((FIXTURES / "extender_filter_args_nodecache.json").read_text())
FULL = json.loads((FIXTURES / "extender_filter_args_full.json").read_text())


def make_node(
    name: str,
    *,
    placement: str | None = "bin-pack",
    cpu: str = "8",
    memory: str = "32Gi",
    gpus: int = 0,
    instance_type: str = "m5.2xlarge",
    capacity: str = "on-demand",
    price: float = 0.384,
    assigned: str = "",
    taints: list[dict[str, str]] | None = None,
    gpu_sku: str = "",
    observed: str = "",
) -> dict[str, Any]:
    labels = {keys.INSTANCE_TYPE: instance_type, keys.ARCH: "amd64", keys.HOSTNAME: name}
    if placement is not None:
        labels |= {
            keys.CREATED_BY: keys.CREATED_BY_VALUE,
            keys.PLACEMENT: placement,
            keys.CAPACITY_TYPE: capacity,
            keys.PRICE_PER_HOUR: f"{price:.4f}",
        }
        if gpus:
            labels |= {keys.GPU_SKU: gpu_sku, keys.GPU_COUNT: str(gpus)}
    if assigned:
        labels[keys.ASSIGNED_POD_UID] = assigned
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    annotations = {"gibbous.dev/observed-utilization": observed} if observed else {}
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"taints": taints or []},
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


def client_for(
    nodes: list[dict[str, Any]], cfg: Config | None = None, ledger: PodLedger | None = None
) -> TestClient:
    view = StaticView({n["metadata"]["name"]: n for n in nodes}, ledger or PodLedger())
    return TestClient(create_app(cfg or make_config(), view))


def filter_names(client: TestClient, pod: dict[str, Any], names: list[str]) -> dict[str, Any]:
    reply = client.post("/filter", json={"Pod": pod, "Nodes": None, "NodeNames": names})
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    assert set(body) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert body["Nodes"] is None
    assert set(body["NodeNames"]) <= set(names)  # the scheduler rejects names not in its input
    return body


def test_upstream_nodecache_fixture_with_unmanaged_and_managed_pods() -> None:
    nodes = copy.deepcopy(FULL["Nodes"]["items"])
    client = client_for(nodes)
    body = filter_names(client, NODECACHE["Pod"], NODECACHE["NodeNames"])
    # The fixture's pod is a 1-GPU Luna pod (bin-select); none of these nodes is Gibbous's,
    # so all stay eligible.
    assert body["NodeNames"] == NODECACHE["NodeNames"] and body["Error"] == ""
    unmanaged = copy.deepcopy(NODECACHE["Pod"])
    del unmanaged["metadata"]["labels"]["elotl-luna"]
    assert (
        filter_names(client, unmanaged, NODECACHE["NodeNames"])["NodeNames"]
        == NODECACHE["NodeNames"]
    )


def test_full_nodelist_form_replies_in_the_same_form() -> None:
    client = client_for([])
    hot = copy.deepcopy(FULL)
    hot["Nodes"]["items"][1]["spec"]["taints"] = [
        {"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"}
    ]
    reply = client.post("/filter", json=hot)
    body = reply.json()
    assert body["NodeNames"] is None
    kept = [n["metadata"]["name"] for n in body["Nodes"]["items"]]
    hot_name = hot["Nodes"]["items"][1]["metadata"]["name"]
    assert hot_name not in kept and len(kept) == 2
    assert body["FailedNodes"] == {hot_name: "gibbous: node is hot"}
    scores = client.post("/prioritize", json=hot).json()
    assert [s["Host"] for s in scores] == [n["metadata"]["name"] for n in hot["Nodes"]["items"]]
    assert all(0 <= s["Score"] <= 10 for s in scores)


def test_hot_and_warm_nodes() -> None:
    warm = make_node(
        "warm", taints=[{"key": keys.HOT_NODE_TAINT, "value": "warm", "effect": "NoSchedule"}]
    )
    hot = make_node(
        "hot", taints=[{"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"}]
    )
    cool = make_node("cool")
    static = make_node("static", placement=None)
    client = client_for([warm, hot, cool, static])
    small = filter_names(client, make_pod(cpu="100m"), ["warm", "hot", "cool", "static"])
    assert small["NodeNames"] == ["cool", "static"]
    assert small["FailedNodes"] == {"warm": "gibbous: node is warm", "hot": "gibbous: node is hot"}
    assert small["FailedAndUnresolvableNodes"] == {}
    big = filter_names(client, make_pod(cpu="4", uid="u-big"), ["warm", "hot", "static"])
    assert big["NodeNames"] == ["static"]  # warm is a bin-pack node: wrong class, permanently
    assert "hot" in big["FailedNodes"]


def test_bin_pack_and_bin_select_separation_and_reservation() -> None:
    mine = make_node("mine", placement="bin-select", assigned="u-me")
    theirs_pending = make_node("theirs", placement="bin-select", assigned="u-waiting")
    orphan = make_node("orphan", placement="bin-select", assigned="u-gone")
    packed = make_node("packed")
    ledger = PodLedger()
    ledger.update("ns/waiting", make_pod("waiting", uid="u-waiting", cpu="4"))  # unbound
    client = client_for([mine, theirs_pending, orphan, packed], ledger=ledger)
    bin_select = filter_names(
        client, make_pod("me", cpu="4", uid="u-me"), ["mine", "theirs", "orphan", "packed"]
    )
    assert bin_select["NodeNames"] == ["mine", "orphan"]
    assert bin_select["FailedAndUnresolvableNodes"] == {
        "packed": "gibbous: bin-pack node, pod is bin-select"
    }
    # Every rejection is in FailedNodes too, for schedulers older than 1.21.
    assert bin_select["FailedNodes"] == {
        "theirs": "gibbous: node is reserved for another pending pod",
        "packed": "gibbous: bin-pack node, pod is bin-select",
    }
    bin_pack = filter_names(client, make_pod("small", cpu="100m"), ["mine", "packed"])
    assert bin_pack["NodeNames"] == ["packed"]
    assert bin_pack["FailedAndUnresolvableNodes"] == {
        "mine": "gibbous: bin-select node, pod is bin-pack"
    }
    no_reuse = client_for([orphan], cfg=make_config(binSelectNodeReuse=False))
    assert filter_names(no_reuse, make_pod("x", cpu="4", uid="u-x"), ["orphan"])["NodeNames"] == []


def test_constraints_against_node_labels() -> None:
    spot = make_node("spot", placement="bin-select", capacity="spot", price=0.2)
    pricey = make_node(
        "pricey",
        placement="bin-select",
        instance_type="p4d.24xlarge",
        price=21.958,
        gpus=8,
        gpu_sku="A100",
    )
    t4 = make_node(
        "t4", placement="bin-select", instance_type="g4dn.xlarge", price=0.526, gpus=1, gpu_sku="T4"
    )
    client = client_for([spot, pricey, t4])
    on_demand = filter_names(client, make_pod("a", cpu="4", uid="a"), ["spot", "t4"])
    assert (
        on_demand["FailedAndUnresolvableNodes"]["spot"]
        == "gibbous: node is spot, pod allows on-demand"
    )
    gpu = make_pod(
        "g",
        cpu="1",
        gpus=1,
        uid="g",
        annotations={
            keys.INSTANCE_GPU_SKUS: "T4,L4",
            keys.INSTANCE_MAX_COST: "5",
            keys.INSTANCE_MAX_GPUS: "4",
        },
    )
    body = filter_names(client, gpu, ["pricey", "t4"])
    assert body["NodeNames"] == ["t4"]
    assert body["FailedAndUnresolvableNodes"]["pricey"] == "gibbous: GPU model not in L4/T4"
    regexp = make_pod("r", cpu="4", uid="r", annotations={keys.INSTANCE_TYPE_REGEXP: r"^g4dn\."})
    assert filter_names(client, regexp, ["pricey", "t4"])["NodeNames"] == ["t4"]


def test_prioritize_prefers_own_node_tight_cheap_and_cool() -> None:
    own = make_node("own", placement="bin-select", assigned="u1")
    busy = make_node("busy")
    empty = make_node("empty")
    near_warm = make_node("near-warm", observed="cpu=55.0,memory=20.0")
    cheap = make_node("cheap", price=0.1)
    ledger = PodLedger()
    bound = make_pod("b", cpu="6", memory="24Gi")
    bound["spec"]["nodeName"] = "busy"
    ledger.update("default/b", bound)
    client = client_for([own, busy, empty, near_warm, cheap], ledger=ledger)
    names = ["own", "busy", "empty", "near-warm", "cheap"]
    select = {
        s["Host"]: s["Score"]
        for s in client.post(
            "/prioritize",
            json={"Pod": make_pod(cpu="4", uid="u1"), "Nodes": None, "NodeNames": names},
        ).json()
    }
    assert select["own"] == 10
    pack = {
        s["Host"]: s["Score"]
        for s in client.post(
            "/prioritize", json={"Pod": make_pod(cpu="1"), "Nodes": None, "NodeNames": names}
        ).json()
    }
    assert pack["busy"] > pack["empty"]  # tighter packing
    assert pack["cheap"] > pack["empty"]  # cheaper per vCPU
    assert pack["near-warm"] < pack["empty"]  # keeps away from nodes close to warm
    unmanaged = client.post(
        "/prioritize", json={"Pod": make_pod(managed=False), "Nodes": None, "NodeNames": names}
    ).json()
    assert all(s["Score"] == 0 for s in unmanaged)


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"Nodes": null}',
        b'{"Pod": {}, "NodeNames": "x"}',
        b'{"Pod": {}, "Nodes": {"items": 3}}',
    ],
)
def test_malformed_bodies_get_400(body: bytes) -> None:
    reply = client_for([]).post("/filter", content=body)
    assert reply.status_code == 400


def test_internal_error_sets_error_not_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "judge_nodes", lambda *a, **k: 1 / 0)
    body = (
        client_for([make_node("n")])
        .post("/filter", json={"Pod": make_pod(), "Nodes": None, "NodeNames": ["n"]})
        .json()
    )
    assert body["Error"].startswith("gibbous extender internal error")


def test_unknown_names_fail_for_now_and_readiness() -> None:
    client = client_for([])
    body = filter_names(client, make_pod(), ["not-cached"])
    assert body["NodeNames"] == []
    assert body["FailedNodes"] == {"not-cached": "gibbous: node not known to the extender yet"}
    assert body["FailedAndUnresolvableNodes"] == {}  # the scheduler tries again
    assert client.get("/readyz").status_code == 200 and client.get("/healthz").text == "ok"
    assert "gibbous_extender_requests_total" in client.get("/metrics").text


def test_gpu_sku_names_from_gfd_and_gke() -> None:
    assert [
        normalize_gpu_sku(s)
        for s in ("NVIDIA-A10G", "Tesla-T4-SHARED", "nvidia-l4", "A100-SXM4-40GB")
    ] == ["A10G", "T4", "L4", "A100"]
    static = node_view(FULL["Nodes"]["items"][0])
    assert (
        static.gpu_sku == "A10G" and static.category is not None and str(static.category) == "spot"
    )


# --- property: filter equals an independent brute-force reading of the rules ---------

node_specs = st.tuples(
    st.sampled_from([None, "bin-pack", "bin-select"]),
    st.sampled_from(["", "warm", "hot"]),
    st.sampled_from(["spot", "on-demand"]),
    st.sampled_from(["", "u0", "u1", "u9"]),
)
pod_specs = st.tuples(
    st.sampled_from(["100m", "4"]),
    st.sampled_from(["", "spot", "spot,on-demand"]),
    st.sampled_from(["u0", "u1"]),
)


def expected(
    pod: tuple[str, str, str], node: tuple[str | None, str, str, str], pending: set[str]
) -> tuple[bool, bool]:
    cpu, offerings, uid = pod
    placement, hot, capacity, assigned = node
    selects = cpu == "4" or offerings != ""
    if hot == "hot" or (hot == "warm" and not selects):
        return False, False
    if not selects and placement == "bin-select":
        return False, True
    if selects and placement == "bin-pack":
        return False, True
    if (
        selects
        and placement == "bin-select"
        and assigned
        and assigned != uid
        and assigned in pending
    ):
        return False, False
    allowed = set((offerings or "on-demand").split(","))
    category = capacity if placement is not None else "on-demand"
    if (placement is not None or offerings) and category not in allowed:
        return False, True
    return True, False


@settings(max_examples=200, deadline=None)
@given(pod_specs, st.lists(node_specs, min_size=1, max_size=6))
def test_filter_matches_brute_force(
    pod: tuple[str, str, str], nodes: list[tuple[str | None, str, str, str]]
) -> None:
    cpu, offerings, uid = pod
    objects = []
    for index, (placement, hot, capacity, assigned) in enumerate(nodes):
        taints = [{"key": keys.HOT_NODE_TAINT, "value": hot, "effect": "NoSchedule"}] if hot else []
        node = make_node(
            f"n{index}", placement=placement, capacity=capacity, assigned=assigned, taints=taints
        )
        objects.append(node)
    ledger = PodLedger()
    ledger.update("ns/waiting", make_pod("w", uid="u9", cpu="4"))
    client = client_for(objects, ledger=ledger)
    annotations = {keys.INSTANCE_OFFERINGS: offerings} if offerings else {}
    body = filter_names(
        client,
        make_pod("p", cpu=cpu, uid=uid, annotations=annotations),
        [f"n{i}" for i in range(len(nodes))],
    )
    for index, spec in enumerate(nodes):
        ok, permanent = expected(pod, spec, {"u9"})
        name = f"n{index}"
        assert (name in body["NodeNames"]) is ok, (spec, body)
        if not ok:
            assert (name in body["FailedAndUnresolvableNodes"]) is permanent
    scores = client.post(
        "/prioritize",
        json={
            "Pod": make_pod("p", cpu=cpu, uid=uid),
            "Nodes": None,
            "NodeNames": [f"n{i}" for i in range(len(nodes))],
        },
    ).json()
    assert all(0 <= s["Score"] <= 10 for s in scores)


def test_pod_facts_prefer_the_webhook_label() -> None:
    pod = make_pod(cpu="100m", labels={keys.PLACEMENT: "bin-select"})
    assert pod_facts(pod, make_config()).placement is Placement.BIN_SELECT
