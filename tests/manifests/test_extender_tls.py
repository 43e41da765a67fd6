"""The extender behind mutual TLS in the chart (issue #32): with webhook.tls cert-manager, a
CA Issuer chain issues the extender's serving certificate and the Gibbous scheduler's
client certificate, the extender requires a client certificate of that CA, and the
scheduler's extender entry presents one and checks the extender's with the same CA. With
webhook.tls self the extender serves plain HTTP (docs/decisions.md, "Install, second pass")."""

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


def test_with_self_managed_tls_the_extender_serves_plain_http() -> None:
    objects = template(current_version())
    args = build_parser().parse_args(_pod(objects, "-extender")["containers"][0]["args"])
    assert args.tls_cert is None and args.tls_client_ca is None
    extender = _scheduler_extender(objects)
    assert extender["urlPrefix"].startswith("http://") and "tlsConfig" not in extender
    assert not [o for o in objects if o["kind"] in ("Certificate", "Issuer")]


def test_without_the_gibbous_scheduler_the_client_certificate_is_still_issued() -> None:
    # The operator's own scheduler calls the extender then: it mounts this Secret.
    objects = template(current_version(), (), (*CERT_MANAGER, "scheduler.enabled=false"))
    client = one(objects, "Certificate", "-extender-client")
    assert "client auth" in client["spec"]["usages"]
    assert not [
        o for o in objects if o["kind"] == "Deployment" and "scheduler" in o["metadata"]["name"]
    ]
