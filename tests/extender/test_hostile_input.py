"""The extender under hostile input (issue #19): replies stay on the wire format, user
mistakes are worded as such, a node sent in the request is judged as sent, and memory follows
one request, not the number of requests."""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gibbous.core import keys
from gibbous.extender.app import MAX_BODY_BYTES, ExtenderLimits, SentNodeViews, create_app
from gibbous.extender.state import StaticView
from tests.extender.test_extender import FULL, client_for, make_node
from tests.factories import config as make_config
from tests.factories import make_pod

REPLY_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def assert_priority_list(reply: Any, hosts: list[str]) -> None:
    assert [entry["Host"] for entry in reply] == hosts
    assert all(type(entry["Score"]) is int and 0 <= entry["Score"] <= 10 for entry in reply)


def test_a_node_named_by_a_number_is_a_bad_request_not_a_host_of_5() -> None:
    args = copy.deepcopy(FULL)
    args["Nodes"]["items"][0]["metadata"]["name"] = 5
    client = client_for([])
    for verb in ("/filter", "/prioritize"):
        reply = client.post(verb, json=args)
        assert reply.status_code == 400
        assert "Nodes.items[0] has no metadata.name string" in reply.text


@pytest.mark.parametrize("price", ["inf", "nan", "1e308", "1" * 32, "-1"])
def test_unreadable_or_huge_prices_still_give_a_score_per_node(price: str) -> None:
    priced = make_node("priced", cpu="1m")
    priced["metadata"]["labels"][keys.PRICE_PER_HOUR] = price
    client = client_for([priced, make_node("plain")])
    args = {"Pod": make_pod(cpu="100m"), "Nodes": None, "NodeNames": ["priced", "plain"]}
    reply = client.post("/prioritize", json=args)
    assert reply.status_code == 200
    assert_priority_list(reply.json(), ["priced", "plain"])


def test_integer_label_values_and_unicode_gpu_counts_are_not_errors() -> None:
    odd = make_node("odd", gpus=1, gpu_sku="T4")
    odd["metadata"]["labels"]["nvidia.com/gpu.count"] = "²"
    odd["metadata"]["labels"][keys.GPU_COUNT] = "²"
    odd["metadata"]["labels"]["team"] = 7
    odd["metadata"]["annotations"] = {"gibbous.dev/observed-utilization": "cpu=1.2.3"}
    args = {"Pod": make_pod(cpu="100m"), "Nodes": {"items": [odd]}, "NodeNames": None}
    client = client_for([])
    body = client.post("/filter", json=args).json()
    assert set(body) == REPLY_KEYS and body["Error"] == ""
    assert_priority_list(client.post("/prioritize", json=args).json(), ["odd"])


def test_a_pod_it_cannot_read_is_told_in_the_authors_words() -> None:
    pod = make_pod(cpu="-1")
    client = client_for([make_node("n1")])
    body = client.post("/filter", json={"Pod": pod, "Nodes": None, "NodeNames": ["n1"]}).json()
    assert body["Error"].startswith("gibbous: cannot read the pod: ")
    assert "spec.containers[0].resources.requests.cpu" in body["Error"]
    assert "internal" not in body["Error"]
    scores = client.post("/prioritize", json={"Pod": pod, "Nodes": None, "NodeNames": ["n1"]})
    assert_priority_list(scores.json(), ["n1"])


def test_a_sent_node_is_judged_as_sent_even_with_a_known_name_and_version() -> None:
    args = copy.deepcopy(FULL)
    for node in args["Nodes"]["items"]:
        node["metadata"]["resourceVersion"] = "42"
    client = client_for([])
    names = [n["metadata"]["name"] for n in args["Nodes"]["items"]]
    first = client.post("/filter", json=args).json()
    assert [n["metadata"]["name"] for n in first["Nodes"]["items"]] == names
    # The same name and resourceVersion, now with a hot taint: a different node.
    args["Nodes"]["items"][0]["spec"]["taints"] = [
        {"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"}
    ]
    second = client.post("/filter", json=args).json()
    assert second["FailedNodes"] == {names[0]: "gibbous: node is hot"}


def test_views_of_sent_nodes_are_kept_for_one_request_only() -> None:
    views = SentNodeViews(time_slices=1)
    for round_ in range(20):
        views.views([make_node(f"n{round_}-{i}") for i in range(50)])
    assert len(views.previous) == 50


def test_a_body_declared_too_large_is_refused_before_it_is_read() -> None:
    client = client_for([])
    reply = client.post(
        "/filter",
        content=b"{}",
        headers={"content-length": str(MAX_BODY_BYTES + 1), "content-type": "application/json"},
    )
    assert reply.status_code == 413


def test_other_methods_get_405() -> None:
    client = client_for([])
    assert client.get("/filter").status_code == 405
    assert client.put("/prioritize").status_code == 405


def test_deep_nesting_is_a_bad_request() -> None:
    client = client_for([])
    body = '{"Pod": ' + "[" * 5000 + "]" * 5000 + "}"
    reply = client.post("/filter", content=body.encode())
    assert reply.status_code == 400


def test_every_reply_is_json_the_scheduler_can_read() -> None:
    client: TestClient = client_for([make_node("n1")])
    reply = client.post("/filter", content=json.dumps({"Pod": {}}).encode())
    assert reply.status_code == 200 and set(reply.json()) == REPLY_KEYS


def test_the_extender_is_no_lookup_service_for_names_and_types() -> None:
    # Before, unknown names passed while known ones failed naming their instance type: a
    # caller could confirm names and read types. Now a name the cache does not hold fails
    # with one neutral message, and a known node's reason names the pod's limit only.
    nodes = [
        make_node(
            "known-gpu",
            placement="bin-select",
            instance_type="p4d.24xlarge",
            gpus=8,
            gpu_sku="A100",
            price=32.77,
        )
    ]
    client = client_for(nodes)
    pod = make_pod(
        gpus=1,
        annotations={
            keys.INSTANCE_TYPE_REGEXP: r"^g5\.",
            keys.INSTANCE_GPU_SKUS: "T4",
            keys.INSTANCE_MAX_COST: "1",
        },
    )
    reply = client.post(
        "/filter", json={"Pod": pod, "Nodes": None, "NodeNames": ["known-gpu", "guessed"]}
    ).json()
    assert reply["NodeNames"] == []
    assert reply["FailedNodes"] == {
        "known-gpu": "gibbous: instance type does not match '^g5\\\\.'",
        "guessed": "gibbous: node not known to the extender yet",
    }
    for pattern in ("p4d", "24xlarge", "A100", "32.77", "8 GPUs"):
        assert pattern not in json.dumps(reply)
    for limit, reason in (
        ({keys.INSTANCE_GPU_SKUS: "T4"}, "gibbous: GPU model not in T4"),
        ({keys.INSTANCE_MAX_GPUS: "2"}, "gibbous: node has more GPUs than the pod allows (2)"),
        ({keys.INSTANCE_MAX_COST: "1"}, "gibbous: node costs more than the pod allows ($1/hr)"),
    ):
        answered = client.post(
            "/filter",
            json={"Pod": make_pod(gpus=1, annotations=limit), "NodeNames": ["known-gpu"]},
        ).json()
        assert answered["FailedNodes"] == {"known-gpu": reason}, limit


def test_a_chunked_body_past_the_limit_is_refused() -> None:
    # Content-Length was checked before reading; a chunked body is counted as it arrives.
    limits = ExtenderLimits(max_body_bytes=100_000)
    client = TestClient(create_app(make_config(), StaticView(), limits=limits))

    def chunks() -> Iterator[bytes]:
        yield b'{"Pod": {}, "NodeNames": ["'
        for _ in range(50):
            yield b"n" * 10_000

    reply = client.post("/filter", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413


def test_views_of_a_large_request_are_not_kept_after_it() -> None:
    limits = ExtenderLimits(sent_views_body_bytes=50_000)
    client = TestClient(create_app(make_config(), StaticView(), limits=limits))
    small = {"Pod": make_pod(), "Nodes": {"items": [make_node(f"s{i}") for i in range(3)]}}
    large = {"Pod": make_pod(), "Nodes": {"items": [make_node(f"l{i}") for i in range(500)]}}
    tracemalloc.start()
    try:
        assert client.post("/filter", json=small).status_code == 200
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        assert client.post("/filter", json=large).status_code == 200
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown  # 500 nodes' views and dicts held ~1.5 MB before
