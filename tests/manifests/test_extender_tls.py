"""The extender behind mutual TLS in the chart (issue #32): with webhook.tls cert-manager, a
CA Issuer chain issues the extender's serving certificate and the Gibbous scheduler's
client certificate, the extender requires a client certificate of that CA, and the
scheduler's extender entry presents one and checks the extender's with the same CA. With
webhook.tls self (the default) the extender keeps that CA and both pairs in Secrets itself
(gibbous/certs/selfmanaged.py; tests/certs/test_extender_certs.py checks the pairs with
OpenSSL) and the scheduler mounts the client Secret it writes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gibbous.cli import build_parser
from gibbous.devcluster.binaries import OLD_VERSION, current_version
from tests.manifests import openapi
from tests.manifests.test_chart import one, template

CERT_MANAGER = ("webhook.tls=cert-manager",)


def _pod(objects: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment", suffix)["spec"]["template"]["spec"]
    return spec


def _mounted_secret(pod: dict[str, Any], path: str) -> dict[str, Any]:
    """The secret volume source mounted at the directory of `path` in the pod's container."""
    (container,) = pod["containers"]
    directory = path.rsplit("/", 1)[0]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    source: dict[str, Any] = volume["secret"]
    return source


def _certificate(objects: list[dict[str, Any]], secret: str) -> dict[str, Any]:
    (found,) = [
        o for o in objects if o["kind"] == "Certificate" and o["spec"]["secretName"] == secret
    ]
    return found


def _scheduler_extender(objects: list[dict[str, Any]]) -> dict[str, Any]:
    text = one(objects, "ConfigMap", "-scheduler-config")["data"]["scheduler-config.yaml"]
    (extender,) = yaml.safe_load(text)["extenders"]
    found: dict[str, Any] = extender
    return found


@pytest.mark.parametrize("version", [OLD_VERSION, current_version()])
def test_cert_manager_runs_the_extender_behind_mutual_tls(version: str) -> None:
    objects = template(version, (), CERT_MANAGER, release="elotl-luna")
    for obj in objects:
        if not obj["apiVersion"].startswith("cert-manager.io/"):
            assert openapi.problems(version, obj) == [], (obj["kind"], obj["metadata"]["name"])

    # The extender: serving pair and client CA from its Secret, readable through fsGroup.
    pod = _pod(objects, "-extender")
    args = build_parser().parse_args(pod["containers"][0]["args"])
    serving = _mounted_secret(pod, args.tls_cert)
    assert _mounted_secret(pod, args.tls_key) == serving
    assert _mounted_secret(pod, args.tls_client_ca) == serving
    assert [args.tls_cert, args.tls_key, args.tls_client_ca] == [
        f"{args.tls_cert.rsplit('/', 1)[0]}/{name}" for name in ("tls.crt", "tls.key", "ca.crt")
    ]
    assert serving["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 65532
    server_certificate = _certificate(objects, serving["secretName"])
    assert "server auth" in server_certificate["spec"]["usages"]

    # Probes and metrics go to --probe-listen (no client certificate there), the port the
    # NetworkPolicy opens to metricsFrom.
    probe_port = int(args.probe_listen.rsplit(":", 1)[1])
    assert probe_port == 8889
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert ports[container[probe]["httpGet"]["port"]] == probe_port
    assert "https" not in ports  # the PodMonitor scrapes https ports without a client certificate
    policy = one(objects, "NetworkPolicy", "-extender")
    assert {"port": probe_port, "protocol": "TCP"} in [
        port for rule in policy["spec"]["ingress"] for port in rule["ports"]
    ]

    # The scheduler: HTTPS to a name the serving certificate carries, with the client pair
    # and the CA from the client Certificate's Secret.
    extender = _scheduler_extender(objects)
    assert extender["enableHTTPS"] is True
    host = extender["urlPrefix"].removeprefix("https://").rsplit(":", 1)[0]
    assert host in server_certificate["spec"]["dnsNames"]
    tls = extender["tlsConfig"]
    assert set(tls) == {"certFile", "keyFile", "caFile"}  # kube-scheduler's ExtenderTLSConfig
    scheduler = _pod(objects, "-scheduler")
    client = _mounted_secret(scheduler, tls["certFile"])
    assert _mounted_secret(scheduler, tls["keyFile"]) == client
    assert _mounted_secret(scheduler, tls["caFile"]) == client
    assert client["defaultMode"] == 0o440 and scheduler["securityContext"]["fsGroup"] == 65532
    client_certificate = _certificate(objects, client["secretName"])
    assert "client auth" in client_certificate["spec"]["usages"]

    # One CA issues both (so each Secret's ca.crt checks the other side), and it is not the
    # webhook's self-signed issuer.
    issuer_ref = server_certificate["spec"]["issuerRef"]
    assert client_certificate["spec"]["issuerRef"] == issuer_ref
    (issuer,) = [
        o for o in objects if o["kind"] == "Issuer" and o["metadata"]["name"] == issuer_ref["name"]
    ]
    ca_certificate = _certificate(objects, issuer["spec"]["ca"]["secretName"])
    assert ca_certificate["spec"]["isCA"] is True
    webhook_certificate = one(objects, "Certificate", "-webhook")
    assert webhook_certificate["spec"]["issuerRef"] != issuer_ref


@pytest.mark.parametrize("version", [OLD_VERSION, current_version()])
def test_self_managed_tls_runs_the_extender_behind_mutual_tls(version: str) -> None:
    objects = template(version, (), (), release="elotl-luna")
    assert not [o for o in objects if o["kind"] in ("Certificate", "Issuer")]
    pod = _pod(objects, "-extender")
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.self_managed_certs
    # The extender writes its serving pair and client CA into a volume of its own (memory),
    # from its Secret, which no pod mounts (it holds the CA key).
    directory = args.tls_cert.rsplit("/", 1)[0]
    for path in (args.tls_key, args.tls_client_ca):
        assert path.rsplit("/", 1)[0] == directory
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    assert not mount.get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    mounted = {
        v["secret"]["secretName"]
        for o in objects
        if o["kind"] == "Deployment"
        for v in o["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert args.secret not in mounted
    assert args.namespace == "elotl"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == int(
        args.probe_listen.rsplit(":", 1)[1]
    )

    # The scheduler calls a name the extender's certificate carries (the Service's, as
    # kube-scheduler dials it: NAME.NAMESPACE.svc) and mounts the client Secret it writes.
    extender = _scheduler_extender(objects)
    assert extender["enableHTTPS"] is True
    host = extender["urlPrefix"].removeprefix("https://").rsplit(":", 1)[0]
    assert host == f"{args.service}.{args.namespace}.svc"
    assert one(objects, "Service", "-extender")["metadata"]["name"] == args.service
    tls = extender["tlsConfig"]
    assert set(tls) == {"certFile", "keyFile", "caFile"}
    scheduler = _pod(objects, "-scheduler")
    client = _mounted_secret(scheduler, tls["certFile"])
    assert client["secretName"] == args.client_secret
    assert _mounted_secret(scheduler, tls["keyFile"]) == client
    assert _mounted_secret(scheduler, tls["caFile"]) == client
    assert [tls["certFile"], tls["keyFile"], tls["caFile"]] == [
        f"{tls['certFile'].rsplit('/', 1)[0]}/{name}" for name in ("tls.crt", "tls.key", "ca.crt")
    ]
    assert client["defaultMode"] == 0o440 and scheduler["securityContext"]["fsGroup"] == 65532

    # The extender may read and replace exactly its two Secrets (and create, which RBAC
    # cannot limit by name).
    role = one(objects, "Role", "-extender")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert [sorted(r["resourceNames"]) for r in named] == [
        sorted([args.secret, args.client_secret])
    ]


def test_without_the_gibbous_scheduler_the_client_certificate_is_still_issued() -> None:
    # The operator's own scheduler calls the extender then: it mounts this Secret.
    objects = template(current_version(), (), (*CERT_MANAGER, "scheduler.enabled=false"))
    client = one(objects, "Certificate", "-extender-client")
    assert "client auth" in client["spec"]["usages"]
    assert not [
        o for o in objects if o["kind"] == "Deployment" and "scheduler" in o["metadata"]["name"]
    ]
