"""The webhook's and the extender's HTTP paths under the bodies of the second round of
attacks (issue #32, re-run): every answer is a 400 that names the problem or a reply in
the wire format (an AdmissionReview response with the request's uid; an ExtenderFilterResult
or a HostPriorityList), never a 500, and each comes within two seconds (on a shared machine; they take
milliseconds to a few hundred)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from gibbous.webhook.app import create_app as create_webhook
from tests.extender.test_extender import client_for, make_node
from tests.factories import config as make_config
from tests.factories import make_pod
from tests.webhook.test_hostile_input import review

POD = make_pod()
POD["metadata"]["labels"] = {"elotl-luna": "true"}
REVIEW = json.dumps(review(POD))


def with_review(old: str, new: str) -> bytes:
    assert old in REVIEW
    return REVIEW.replace(old, new, 1).encode()


WEBHOOK_BODIES = {
    "a 100,000-digit integer": with_review('"CREATE"', '"CREATE", "x": ' + "9" * 100_000),
    "NaN": with_review('"CREATE"', '"CREATE", "x": NaN'),
    "invalid UTF-8": b'{"request": "\xff\xfe"}',
    "a lone surrogate": with_review('"uid": "u-1"', '"uid": "\\ud800"'),
    "50,000 keys": ("{" + ",".join(f'"k{i}": 0' for i in range(50_000)) + "}").encode(),
    "duplicate keys": b'{"request": 1, "request": {"uid": "x"}}',
    "a uid that is a list": with_review('"uid": "u-1"', '"uid": ["u-1"]'),
    "a null request": b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", '
    b'"request": null}',
    "an object that is text": with_review('"object": {', '"object": "x", "o": {'),
    "a kind that is an object": with_review('"kind": "Pod"', '"kind": {"a": 1}'),
    "v1beta1": with_review("admission.k8s.io/v1", "admission.k8s.io/v1beta1"),
    "a list": b"[1, 2, 3]",
}

EXTENDER_BODIES = {
    "a 100,000-digit integer": b'{"Pod": {}, "NodeNames": ["a"], "x": ' + b"9" * 100_000 + b"}",
    "NaN names": b'{"Pod": {}, "NodeNames": [NaN]}',
    "names as an object": b'{"Pod": {}, "NodeNames": {"a": 1}}',
    "names as text": b'{"Pod": {}, "NodeNames": "abc"}',
    "a null pod": b'{"Pod": null, "NodeNames": ["a"]}',
    "a pod that is a list": b'{"Pod": [], "NodeNames": ["a"]}',
    "5,000 duplicate names": json.dumps({"Pod": POD, "NodeNames": ["a"] * 5_000}).encode(),
    "a 1 MB name": json.dumps({"Pod": POD, "NodeNames": ["a" * 1_000_000]}).encode(),
    "null items": json.dumps({"Pod": POD, "Nodes": {"items": None}}).encode(),
    "items as an object": json.dumps({"Pod": POD, "Nodes": {"items": {"a": 1}}}).encode(),
    "a node that is text": json.dumps({"Pod": POD, "Nodes": {"items": ["x"]}}).encode(),
    "labels as a list": json.dumps(
        {"Pod": POD, "Nodes": {"items": [{"metadata": {"name": "n", "labels": ["x"]}}]}}
    ).encode(),
    "allocatable of 1e400": json.dumps(
        {
            "Pod": POD,
            "Nodes": {
                "items": [{"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "1e400"}}}]
            },
        }
    ).encode(),
    "invalid UTF-8": b'{"Pod": "\xff"}',
    "a list": b"[]",
}


def timed_post(client: TestClient, path: str, body: bytes) -> Any:
    started = time.monotonic()
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert time.monotonic() - started < 2.0, path
    return reply


@pytest.fixture(scope="module")
def webhook() -> TestClient:
    return TestClient(
        create_webhook(make_config(schedulerName="gibbous-scheduler")),
        raise_server_exceptions=False,
    )


@pytest.fixture(scope="module")
def extender() -> TestClient:
    return client_for([make_node("a")])


@pytest.mark.parametrize("name", sorted(WEBHOOK_BODIES))
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_the_webhook_answers_every_hostile_body(webhook: TestClient, path: str, name: str) -> None:
    reply = timed_post(webhook, path, WEBHOOK_BODIES[name])
    if reply.status_code == 400:
        assert reply.text.startswith("bad AdmissionReview: ")
        return
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == "u-1"  # the review's, the only one that gets this far
    assert type(body["response"]["allowed"]) is bool


@pytest.mark.parametrize("name", sorted(EXTENDER_BODIES))
@pytest.mark.parametrize("path", ["/filter", "/prioritize"])
def test_the_extender_answers_every_hostile_body(
    extender: TestClient, path: str, name: str
) -> None:
    reply = timed_post(extender, path, EXTENDER_BODIES[name])
    if reply.status_code == 400:
        assert reply.text.startswith("bad ExtenderArgs: ")
        return
    assert reply.status_code == 200, reply.text
    body = reply.json()
    if path == "/filter":
        # kube-scheduler's ExtenderFilterResult (k8s.io/kube-scheduler/extender/v1).
        assert set(body) == {
            "Nodes",
            "NodeNames",
            "FailedNodes",
            "FailedAndUnresolvableNodes",
            "Error",
        }
    else:
        # HostPriorityList: a Host and an integer Score within MaxExtenderPriority (10).
        assert all(type(e["Score"]) is int and 0 <= e["Score"] <= 10 for e in body)
        assert all(isinstance(e["Host"], str) for e in body)
