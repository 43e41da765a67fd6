"""The webhook under hostile input (issue #19): what it cannot read is denied with the field
named, never admitted as an internal error; patches only name paths that exist; memory is
bounded by bytes; other methods get 405; deep nesting is a bad request."""

from __future__ import annotations

import base64
import copy
import gc
import json
import tracemalloc
from typing import Any

import jsonpatch
import pytest
from starlette.testclient import TestClient

from gibbous.core import keys
from gibbous.webhook.app import create_app
from tests.factories import config as make_config
from tests.factories import make_pod


def review(
    pod: Any, *, operation: str = "CREATE", uid: str = "u-1", old: Any = None
) -> dict[str, Any]:
    """A Pod AdmissionReview as kube-apiserver sends it (`old`: the object an UPDATE replaces)."""
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": operation,
        "object": pod,
    }
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(make_config(schedulerName="gibbous-scheduler")))


def answer(client: TestClient, path: str, body: Any) -> dict[str, Any]:
    reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    response: dict[str, Any] = reply.json()["response"]
    return response


def test_exa_quantities_are_read_and_the_pod_is_labelled() -> None:
    client = TestClient(create_app(make_config()))
    pod = make_pod(memory="1E")
    pod["spec"]["containers"][0]["resources"]["requests"]["example.com/widget"] = "1E"
    mutated = answer(client, "/mutate", review(pod))
    assert "warnings" not in mutated
    patched = jsonpatch.apply_patch(pod, json.loads(_patch_text(mutated)))
    assert patched["metadata"]["labels"][keys.PLACEMENT] == "bin-select"
    assert answer(client, "/validate", review(pod))["allowed"] is True


def test_unicode_digits_are_denied_with_every_problem_named(client: TestClient) -> None:
    pod = make_pod(
        annotations={
            keys.INSTANCE_MAX_GPUS: "²",
            keys.INSTANCE_OFFERINGS: "cheap",
            keys.INSTANCE_TYPE_REGEXP: "(",
        }
    )
    denied = answer(client, "/validate", review(pod))
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    for key, value in ((keys.INSTANCE_MAX_GPUS, "²"), (keys.INSTANCE_OFFERINGS, "cheap")):
        assert f"{key}: invalid value {json.dumps(value, ensure_ascii=False)}" in message
    assert keys.INSTANCE_TYPE_REGEXP in message
    mutated = answer(client, "/mutate", review(pod))
    assert not any("internal error" in w for w in mutated.get("warnings", []))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (keys.INSTANCE_MAX_GPUS, "٣"),
        (keys.INSTANCE_MAX_GPUS, "①"),
        (keys.INSTANCE_MAX_COST, "1_000"),
        (keys.INSTANCE_MAX_COST, "inf"),
        (keys.INSTANCE_MAX_COST, "nan"),
        (keys.INSTANCE_MAX_COST, "４.75"),
    ],
)
def test_numbers_are_ascii_only(client: TestClient, key: str, value: str) -> None:
    denied = answer(client, "/validate", review(make_pod(annotations={key: value})))
    assert denied["allowed"] is False and key in denied["status"]["message"]


@pytest.mark.parametrize("quantity", ["１", "1\u00a0", "1" * 12_000 + "x", "2" * 70])
def test_unreadable_requests_are_denied_naming_the_field(client: TestClient, quantity: str) -> None:
    denied = answer(client, "/validate", review(make_pod(cpu=quantity)))
    assert denied["allowed"] is False
    assert "spec.containers[0].resources.requests.cpu" in denied["status"]["message"]
    assert len(denied["status"]["message"]) < 600  # the value is quoted, not copied


@pytest.mark.parametrize("spec", [None, "spec", ["a"], 5])
def test_an_object_without_a_pod_spec_gets_no_patch(client: TestClient, spec: Any) -> None:
    pod = make_pod()
    pod["spec"] = spec
    mutated = answer(client, "/mutate", review(pod))
    assert "patch" not in mutated and mutated["allowed"] is True
    no_spec = make_pod()
    del no_spec["spec"]
    assert "patch" not in answer(client, "/mutate", review(no_spec))


def test_null_tolerations_with_spot_are_not_an_internal_error() -> None:
    client = TestClient(create_app(make_config()))
    pod = make_pod(annotations={keys.INSTANCE_OFFERINGS: "spot"})
    pod["spec"]["tolerations"] = [None]
    mutated = answer(client, "/mutate", review(pod))
    assert not any("internal error" in w for w in mutated.get("warnings", []))
    patched = jsonpatch.apply_patch(pod, json.loads(_patch_text(mutated)))
    assert {
        "key": keys.SPOT_TAINT_KEY,
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    } in patched["spec"]["tolerations"]


@pytest.mark.parametrize("depth", [900, 990, 1100, 20_000])
def test_deep_nesting_is_a_bad_request_or_an_answer(client: TestClient, depth: int) -> None:
    body = json.dumps(review(make_pod()))
    nested = body.replace(
        '"kind": "AdmissionReview"',
        f'"x": {"[" * depth}{"]" * depth}, "kind": "AdmissionReview"',
        1,
    )
    reply = client.post("/validate", content=nested.encode())
    assert reply.status_code in (200, 400), reply.status_code


def test_other_methods_get_405_on_the_admission_paths(client: TestClient) -> None:
    for path in ("/mutate", "/validate", "/mutate-opted-in", "/validate-opted-in"):
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            reply = client.request(method, path)
            assert reply.status_code == 405, (method, path)
            assert reply.headers["allow"] == "POST"


def test_memory_is_bounded_by_bytes_not_by_entries() -> None:
    # 120 distinct 2.5 MB invalid values grew the webhook by 580 MB before (memo and caches
    # keyed by whole values). Now long values are never cached: memory stays flat.
    client = TestClient(create_app(make_config()))
    tracemalloc.start()
    try:
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        for index in range(40):
            value = f"{index}" + "9" * 2_000_000
            pod = make_pod(annotations={keys.INSTANCE_MAX_GPUS: value})
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = value[:500_000]
            for path in ("/validate", "/mutate"):
                reply = client.post(path, content=json.dumps(review(pod)).encode())
                assert reply.status_code == 200  # read, not refused for its size
        del pod, value
        gc.collect()  # garbage (exceptions holding frames) is not growth
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 8 * 2**20, grown


def _patch_text(response: dict[str, Any]) -> str:
    return base64.b64decode(response.get("patch", "W10=")).decode()


def test_reviews_are_not_modified(client: TestClient) -> None:
    pod = make_pod(memory="1E")
    body = review(pod)
    before = copy.deepcopy(body)
    answer(client, "/mutate", body)
    assert body == before


def _growth_of(client: TestClient, namespaces: list[str], paths: tuple[str, ...]) -> int:
    pod = make_pod()
    tracemalloc.start()
    try:
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        for namespace in namespaces:
            body = review(pod)
            body["request"]["namespace"] = namespace
            encoded = json.dumps(body).encode()
            del body
            for path in paths:
                assert client.post(path, content=encoded).status_code == 200
        del encoded, namespace
        gc.collect()
        return int(tracemalloc.get_traced_memory()[0] - baseline)
    finally:
        tracemalloc.stop()


def test_distinct_large_namespaces_do_not_grow_the_memo() -> None:
    # 1,100 requests with distinct 1 MiB namespaces grew each endpoint by ~1 GiB before:
    # the memo counted entries and weighed only the pod's shape. 40 of 512 KiB on two
    # endpoints held 40 MiB; now an entry that heavy is not kept at all.
    client = TestClient(create_app(make_config()))
    namespaces = [f"ns{index}-" + "n" * 512 * 1024 for index in range(40)]
    grown = _growth_of(client, namespaces, ("/validate", "/mutate"))
    assert grown < 4 * 2**20, grown


def test_many_medium_namespaces_stay_within_the_memo_budget() -> None:
    # Each entry (a 24 KiB namespace) is small enough to keep: the byte budget (4 MiB a
    # memo), not the entry count, bounds them. 400 of them held ~10 MiB before.
    client = TestClient(create_app(make_config()))
    namespaces = [f"ns{index}-" + "n" * 24 * 1024 for index in range(400)]
    grown = _growth_of(client, namespaces, ("/validate",))
    assert grown < 6 * 2**20, grown


def test_a_structure_the_api_server_refuses_is_denied_naming_the_field(
    client: TestClient,
) -> None:
    pod = make_pod()
    pod["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"weight": 5}]}
    }
    mutated = answer(client, "/mutate", review(pod))
    assert not any("internal error" in w for w in mutated.get("warnings", []))
    denied = answer(client, "/validate", review(pod))
    assert denied["allowed"] is False
    assert (
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: "
        "expected an object (NodeSelector), got a list"
    ) in denied["status"]["message"]
