"""The webhook over real TLS sockets, with AdmissionReviews in the exact upstream shape."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gibbous.webhook.app as app_module
from gibbous.certs.authority import generate_serving
from gibbous.core import keys
from tests.factories import make_pod
from tests.webhook.conftest import RunningWebhook

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "admissionreview_pod_create.json").read_text()
)


def review(
    pod: dict[str, Any], *, operation: str = "CREATE", dry_run: bool = False, uid: str = "u-1"
) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(FIXTURE)
    body["request"]["uid"] = uid
    body["request"]["object"] = pod
    body["request"]["operation"] = operation
    body["request"]["dryRun"] = dry_run
    body["request"]["namespace"] = pod["metadata"].get("namespace", "default")
    return body


def apply_response(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "patch" not in response:
        assert "patchType" not in response
        return pod
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"]))
    patched: dict[str, Any] = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(pod))
    return patched


def post(webhook: RunningWebhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with webhook.client() as client:
        reply = client.post(f"{path}?timeout=10s", json=body)  # the API server appends ?timeout
    assert reply.status_code == 200
    document: dict[str, Any] = reply.json()
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    response: dict[str, Any] = document["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


def test_upstream_generate_name_gpu_pod(webhook: RunningWebhook) -> None:
    pod = FIXTURE["request"]["object"]
    assert "name" not in pod["metadata"]  # generateName only
    response = post(webhook, "/mutate", FIXTURE)
    assert response["allowed"] is True
    patched = apply_response(pod, response)
    assert patched["metadata"]["labels"][keys.PLACEMENT] == "bin-select"
    assert patched["spec"]["schedulingGates"] == [{"name": keys.PROVISIONING_GATE}]


def test_missing_labels_sidecars_and_dry_run(webhook: RunningWebhook) -> None:
    pod = make_pod("p", cpu="500m", annotations={keys.INSTANCE_OFFERINGS: "spot"})
    pod["spec"]["initContainers"] = [
        {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "2"}}}
    ]
    response = post(webhook, "/mutate", review(pod, dry_run=True))
    patched = apply_response(pod, response)
    assert patched["metadata"]["labels"][keys.PLACEMENT] == "bin-select"  # 500m + 2 CPU sidecar
    assert {t["key"] for t in patched["spec"]["tolerations"]} == {
        keys.SPOT_TAINT_KEY,
        keys.AKS_SCALESET_PRIORITY,
    }


def test_unmanaged_pod_gets_no_patch(webhook: RunningWebhook) -> None:
    response = post(webhook, "/mutate", review(make_pod(managed=False)))
    assert response == {"uid": "u-1", "allowed": True}


def test_validation_denies_with_a_readable_message(webhook: RunningWebhook) -> None:
    pod = make_pod(annotations={keys.INSTANCE_OFFERINGS: "cheap"})
    response = post(webhook, "/validate", review(pod))
    assert response["allowed"] is False
    assert 400 <= response["status"]["code"] < 500
    assert (
        'node.elotl.co/instance-offerings: invalid value "cheap"' in response["status"]["message"]
    )
    assert "patch" not in response and "patchType" not in response
    ok = post(webhook, "/validate", review(make_pod()))
    assert ok == {"uid": "u-1", "allowed": True}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE"}}',
            "expected apiVersion",
        ),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "request is missing"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}',
            "uid",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"PATCH"}}',
            "operation",
        ),
    ],
)
def test_malformed_bodies_get_400(webhook: RunningWebhook, body: bytes, fragment: str) -> None:
    with webhook.client() as client:
        reply = client.post("/mutate", content=body)
    assert reply.status_code == 400
    assert fragment in reply.text


def test_oversized_body_gets_413(webhook: RunningWebhook) -> None:
    with webhook.client() as client:
        reply = client.post("/mutate", content=b"x" * (3 * 1024 * 1024 + 1))
    assert reply.status_code == 413


def test_internal_error_allows_unchanged_with_warning(
    webhook: RunningWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app_module, "plan_mutation", explode)
    response = post(webhook, "/mutate", review(make_pod()))
    assert response["allowed"] is True and "patch" not in response
    assert "internal error" in response["warnings"][0]
    with webhook.client() as client:
        metrics = client.get("/metrics").text
    assert 'gibbous_webhook_internal_errors_total{endpoint="mutate"} 1.0' in metrics


def test_health_and_metrics(webhook: RunningWebhook) -> None:
    post(webhook, "/mutate", FIXTURE)
    post(webhook, "/validate", review(make_pod(annotations={keys.INSTANCE_MAX_GPUS: "x"})))
    with webhook.client() as client:
        assert client.get("/healthz").text == "ok"
        assert client.get("/readyz").status_code == 200
        text = client.get("/metrics").text
    assert 'gibbous_webhook_requests_total{endpoint="mutate",outcome="allowed"} 1.0' in text
    assert "gibbous_webhook_denials_total 1.0" in text
    assert "gibbous_webhook_patch_operations_total 2.0" in text
    assert "gibbous_webhook_request_duration_seconds_bucket" in text


def peer_serial(webhook: RunningWebhook) -> int:
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    port = int(webhook.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_certificate_is_reloaded_without_restart(webhook: RunningWebhook) -> None:
    before = peer_serial(webhook)
    now = datetime.datetime.now(datetime.UTC)
    fresh = generate_serving(
        webhook.ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=10, now=now
    )
    (webhook.cert_dir / "tls.key").write_bytes(fresh.key_pem)
    (webhook.cert_dir / "tls.crt").write_bytes(fresh.cert_pem)
    deadline = time.monotonic() + 10
    while peer_serial(webhook) == before:
        assert time.monotonic() < deadline, "new certificate was not picked up"
        time.sleep(0.05)
    assert peer_serial(webhook) == fresh.certificate.serial_number
    assert post(webhook, "/mutate", FIXTURE)["allowed"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=512),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(
            lambda value: json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": value}
            ).encode()
        ),
    )
)
def test_fuzzed_bodies_never_crash_the_server(webhook: RunningWebhook, body: bytes) -> None:
    with webhook.client() as client:
        for path in ("/mutate", "/validate"):
            reply = client.post(path, content=body)
            assert reply.status_code in (200, 400), reply.text
        assert client.get("/healthz").status_code == 200


def test_fuzzed_pod_objects_are_answered(webhook: RunningWebhook) -> None:
    weird: list[Any] = [
        {"metadata": None},
        {"metadata": {"labels": {"elotl-luna": "true"}}, "spec": {"containers": "x"}},
        {
            "metadata": {
                "labels": {"elotl-luna": "true"},
                "annotations": {keys.INSTANCE_MAX_COST: 5},
            },
            "spec": {"containers": [{"resources": {"requests": {"cpu": {"a": 1}}}}]},
        },
    ]
    with webhook.client() as client:
        for index, obj in enumerate(weird):
            body = review(make_pod(), uid=f"w{index}")
            body["request"]["object"] = obj
            for path in ("/mutate", "/validate"):
                reply = client.post(path, json=body)
                assert reply.status_code == 200
                assert reply.json()["response"]["uid"] == f"w{index}"


def test_https_only(webhook: RunningWebhook) -> None:
    plain = webhook.url.replace("https://", "http://")
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{plain}/healthz")


def test_opted_in_namespace_paths_manage_unlabelled_pods(webhook: RunningWebhook) -> None:
    pod = make_pod("p", managed=False, annotations={keys.INSTANCE_MAX_COST: "x"})
    patched = apply_response(pod, post(webhook, "/mutate-opted-in", review(pod)))
    assert patched["metadata"]["labels"]["elotl-luna"] == "true"
    assert post(webhook, "/validate-opted-in", review(pod))["allowed"] is False
    assert post(webhook, "/mutate", review(pod)) == {
        "uid": "u-1",
        "allowed": True,
    }  # the plain path leaves it
