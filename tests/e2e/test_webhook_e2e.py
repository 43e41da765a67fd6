"""The real kube-apiserver calls the Gibbous webhook over TLS and applies its patches."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gibbous.autoscaler.kube import KubeCluster
from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.certs.rotation import RotationPolicy
from gibbous.certs.selfmanaged import KubernetesSecretStore, SelfManagedCertificates
from gibbous.core import keys
from gibbous.core.admission.mutation import ServerFeatures
from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.installtools import helm_tools
from gibbous.serving import Listen, TLSServer
from tests.e2e.conftest import eventually, make_namespace
from tests.factories import api_pod
from tests.factories import config as make_config
from tests.webhook.conftest import start_webhook

pytestmark = pytest.mark.e2e


def register(
    api: client.ApiClient,
    name: str,
    url: str,
    ca_pem: bytes,
    *,
    validating: bool = True,
    object_selector: dict[str, Any] | None = None,
) -> None:
    admission = client.AdmissionregistrationV1Api(api)
    selector = (
        object_selector if object_selector is not None else {"matchLabels": {"elotl-luna": "true"}}
    )
    client_config = {"url": f"{url}/mutate", "caBundle": base64.b64encode(ca_pem).decode()}
    common: dict[str, Any] = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": 3,
        "objectSelector": selector,
        "namespaceSelector": {
            "matchExpressions": [{"key": "e2e-skip", "operator": "DoesNotExist"}]
        },
        "clientConfig": client_config,
    }
    mutating = {
        "metadata": {"name": name},
        "webhooks": [
            {
                **common,
                "name": f"pods.{name}.gibbous.dev",
                "reinvocationPolicy": "IfNeeded",
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }
    admission.create_mutating_webhook_configuration(mutating)
    if validating:
        hook = {
            **common,
            "name": "pods.gibbous.dev",
            "clientConfig": {**client_config, "url": f"{url}/validate"},
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["pods"],
                }
            ],
        }
        admission.create_validating_webhook_configuration(
            {"metadata": {"name": name}, "webhooks": [hook]}
        )


@pytest.fixture(scope="module")
def gibbous_webhook(
    api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    running, thread = start_webhook(
        tmp_path_factory.mktemp("webhook"),
        make_config(cloudProvider="azure", schedulerName="gibbous-scheduler"),
        ServerFeatures(scheduling_gates=False),
    )
    register(api, "zz-gibbous", running.url, running.ca.cert_pem)
    yield running
    running.server.stop()
    thread.join(timeout=10)


def pods_of(api: client.ApiClient, namespace: str, selector: str, count: int) -> list[Any]:
    core = client.CoreV1Api(api)
    return eventually(
        lambda: (
            items
            if len(items := core.list_namespaced_pod(namespace, label_selector=selector).items)
            >= count
            else None
        ),
        what=f"{count} pods {selector} in {namespace}",
    )


def deployment(
    name: str,
    *,
    cpu: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    replicas: int = 2,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **labels}, "annotations": annotations or {}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.k8s.io/pause:3.9",
                            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def test_deployment_pods_are_mutated_by_the_real_api_server(
    api: client.ApiClient, gibbous_webhook: Any
) -> None:
    make_namespace(api, "team-a")
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        "team-a", deployment("web", cpu="100m", labels={"elotl-luna": "true"})
    )
    apps.create_namespaced_deployment(
        "team-a",
        deployment(
            "spotty",
            cpu="3",
            labels={"elotl-luna": "true"},
            annotations={keys.INSTANCE_OFFERINGS: "spot,on-demand"},
        ),
    )
    apps.create_namespaced_deployment("team-a", deployment("plain", cpu="100m", labels={}))
    for pod in pods_of(api, "team-a", "app=web", 2):
        assert pod.metadata.labels[keys.PLACEMENT] == "bin-pack"
        assert pod.spec.scheduler_name == "gibbous-scheduler"
        assert pod.metadata.generate_name.startswith("web-")
    for pod in pods_of(api, "team-a", "app=spotty", 2):
        assert pod.metadata.labels[keys.PLACEMENT] == "bin-select"
        tolerated = {(t.key, t.value, t.effect) for t in pod.spec.tolerations}
        assert (keys.SPOT_TAINT_KEY, "spot", "NoSchedule") in tolerated
        assert (keys.AKS_SCALESET_PRIORITY, "spot", "NoSchedule") in tolerated
    for pod in pods_of(api, "team-a", "app=plain", 2):
        assert keys.PLACEMENT not in pod.metadata.labels
        assert pod.spec.scheduler_name == "default-scheduler"


def test_invalid_annotation_is_rejected_and_kubectl_shows_why(
    api: client.ApiClient, gibbous_webhook: Any, control_plane: ControlPlane, tmp_path: Path
) -> None:
    make_namespace(api, "team-b")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  namespace: team-b\n  labels: {elotl-luna: 'true'}\n"
        "  annotations: {node.elotl.co/instance-max-cost: cheap}\n"
        "spec:\n  containers: [{name: c, image: registry.k8s.io/pause:3.9}]\n"
    )
    result = subprocess.run(
        [
            str(helm_tools().kubectl),
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "apply",
            "-f",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert 'admission webhook "pods.gibbous.dev" denied the request' in result.stderr
    assert 'node.elotl.co/instance-max-cost: invalid value "cheap"' in result.stderr
    assert "a positive number of dollars per hour" in result.stderr


def fake_vpa(cpu: str) -> Starlette:
    """A mutating webhook standing in for VPA's: sets the first container's CPU request."""

    async def mutate(request: Request) -> Response:
        review = json.loads(await request.body())
        patch = [{"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": cpu}]
        response = {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
        return Response(
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                }
            ),
            media_type="application/json",
        )

    return Starlette(routes=[Route("/mutate", mutate, methods=["POST"])])


def test_vpa_runs_first_and_the_placement_follows_its_requests(
    api: client.ApiClient, gibbous_webhook: Any, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="vpa", days=1, now=now)
    paths = write_bundle(
        tmp_path,
        ca,
        generate_serving(ca, dns_names=[], ip_addresses=["127.0.0.1"], days=1, now=now),
    )
    server = TLSServer(
        fake_vpa("2406m"),
        Listen("127.0.0.1", 0),
        str(paths["tls.crt"]),
        str(paths["tls.key"]),
        log_level="warning",
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    eventually(lambda: server.started, what="fake VPA webhook")
    register(
        api,
        "vpa-webhook-config",
        f"https://127.0.0.1:{server.bound_port()}",
        ca.cert_pem,
        validating=False,
        object_selector={"matchLabels": {"vpa": "grow"}},
    )
    try:
        make_namespace(api, "team-c")
        client.AppsV1Api(api).create_namespaced_deployment(
            "team-c",
            deployment(
                "grown", cpu="100m", labels={"elotl-luna": "true", "vpa": "grow"}, replicas=1
            ),
        )
        (pod,) = pods_of(api, "team-c", "app=grown", 1)
        assert pod.spec.containers[0].resources.requests["cpu"] == "2406m"  # P09 Exp. 4
        assert pod.metadata.labels[keys.PLACEMENT] == "bin-select"
    finally:
        client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(
            "vpa-webhook-config"
        )
        server.stop()


def test_pods_are_admitted_when_the_webhook_is_down(
    api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    # Would manage every pod in team-d if it were up; the pod carries no elotl-luna label,
    # so only this (stopped) webhook is asked about it.
    running, thread = start_webhook(tmp_path, make_config(managedNamespaces=["team-d"]))
    register(
        api,
        "zz-gibbous-down",
        running.url,
        running.ca.cert_pem,
        validating=False,
        object_selector={"matchLabels": {"down-test": "yes"}},
    )
    running.server.stop()
    thread.join(timeout=10)
    make_namespace(api, "team-d")
    pod = {
        "metadata": {"name": "survivor", "labels": {"down-test": "yes"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
    }
    created = client.CoreV1Api(api).create_namespaced_pod("team-d", pod)
    assert created.metadata.labels == {
        "down-test": "yes"
    }  # admitted, unmutated (failurePolicy Ignore)


def test_self_managed_certificates_against_the_real_api(
    api: client.ApiClient, tmp_path: Path
) -> None:
    make_namespace(api, "gibbous")
    admission = client.AdmissionregistrationV1Api(api)
    hook = {
        "name": "pods.gibbous.dev",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "clientConfig": {
            "service": {"name": "gibbous-webhook", "namespace": "gibbous", "path": "/mutate"}
        },
        "objectSelector": {"matchLabels": {"never": "matches"}},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }
        ],
    }
    admission.create_mutating_webhook_configuration(
        {
            "metadata": {"name": "rotation-test"},
            "webhooks": [hook, {**hook, "name": "second.gibbous.dev"}],
        }
    )
    admission.create_validating_webhook_configuration(
        {"metadata": {"name": "rotation-test"}, "webhooks": [hook]}
    )
    now = [datetime.datetime.now(datetime.UTC)]
    certificates = SelfManagedCertificates(
        store=KubernetesSecretStore(api),
        namespace="gibbous",
        secret="gibbous-webhook-tls",
        configurations=("rotation-test",),
        cert_path=tmp_path / "tls.crt",
        key_path=tmp_path / "tls.key",
        policy=RotationPolicy(
            dns_names=("gibbous-webhook.gibbous.svc",), ca_days=90, serving_days=30
        ),
        clock=lambda: now[0],
    )
    state = certificates.sync()
    secret = client.CoreV1Api(api).read_namespaced_secret("gibbous-webhook-tls", "gibbous")
    assert secret.type == "kubernetes.io/tls"
    assert (
        base64.b64decode(secret.data["tls.crt"])
        == state.tls_crt
        == (tmp_path / "tls.crt").read_bytes()
    )
    mutating = admission.read_mutating_webhook_configuration("rotation-test")
    bundles = {
        base64.b64decode(h.client_config.ca_bundle)
        if isinstance(h.client_config.ca_bundle, str)
        else h.client_config.ca_bundle
        for h in mutating.webhooks
    }
    assert bundles == {state.ca_bundle}
    now[0] += datetime.timedelta(days=61)  # CA rotation due
    rotated = certificates.sync()
    assert len(rotated.ca_certs) == 2
    validating = admission.read_validating_webhook_configuration("rotation-test")
    assert base64.b64decode(validating.webhooks[0].client_config.ca_bundle) == rotated.ca_bundle


def test_hostile_pods_are_denied_or_read_never_admitted_as_internal_errors(
    api: client.ApiClient, gibbous_webhook: Any
) -> None:
    """Issue #19 through the real API server: Unicode digits and bad Luna values are denied
    with every problem named; a valid `1E` quantity is read (not an internal error)."""
    make_namespace(api, "team-hostile")
    core = client.CoreV1Api(api)
    bad = api_pod(
        "digits",
        annotations={
            keys.INSTANCE_MAX_GPUS: "²",
            keys.INSTANCE_OFFERINGS: "cheap",
            keys.INSTANCE_TYPE_REGEXP: "(",
        },
    )
    with pytest.raises(client.ApiException) as denied:
        core.create_namespaced_pod("team-hostile", bad)
    message = json.loads(denied.value.body)["message"]
    assert 'admission webhook "pods.gibbous.dev" denied the request' in message
    assert 'instance-max-gpus: invalid value "²"' in message
    assert 'instance-offerings: invalid value "cheap"' in message
    exa = api_pod("exa", cpu="100m", memory="1E")
    created = core.create_namespaced_pod("team-hostile", exa)
    assert created.metadata.labels[keys.PLACEMENT] == "bin-select"
    assert created.spec.scheduler_name == "gibbous-scheduler"


def test_a_pod_admitted_with_a_bad_annotation_while_the_webhook_was_down_can_be_updated(
    api: client.ApiClient, gibbous_webhook: Any
) -> None:
    """Issue #18: later updates that leave the bad annotation as it was (a label, the
    autoscaler's release of its gate) are allowed; one that changes it to another bad value
    is not. The webhook is "down" for the pod's creation by its namespace being outside the
    webhook's namespaceSelector then (failurePolicy Ignore has the same effect)."""
    core = client.CoreV1Api(api)
    make_namespace(api, "team-e", labels={"e2e-skip": "yes"})
    body = api_pod("admitted", annotations={keys.INSTANCE_MAX_COST: "cheap"})
    body["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    core.create_namespaced_pod("team-e", body)
    core.patch_namespace("team-e", {"metadata": {"labels": {"e2e-skip": None}}})  # webhook back
    core.patch_namespaced_pod("admitted", "team-e", {"metadata": {"labels": {"team": "ml"}}})
    raw = api.sanitize_for_serialization(core.read_namespaced_pod("admitted", "team-e"))
    KubeCluster(api).release_pod(raw, "some-node")  # the autoscaler's gate release
    released = core.read_namespaced_pod("admitted", "team-e")
    assert not released.spec.scheduling_gates
    assert released.spec.node_selector == {keys.HOSTNAME: "some-node"}
    with pytest.raises(client.ApiException) as denied:
        core.patch_namespaced_pod(
            "admitted",
            "team-e",
            {"metadata": {"annotations": {keys.INSTANCE_MAX_COST: "dear"}}},
        )
    assert 'instance-max-cost: invalid value "dear"' in json.loads(denied.value.body)["message"]
