"""`helm install` of the chart with a Luna user's values file into a real API server, at
v1.20 and the current release: every object accepted server-side, the webhook's own
self-managed TLS (run from the installed Deployment's command line) registering a
caBundle in both prefixed webhook configurations, the extender's self-managed mutual TLS
issuing the client pair the scheduler mounts and refusing callers without it, a configuration change rolling the
pods, and `helm uninstall` leaving no webhook configuration behind (a leftover one
would send every matching pod's admission to a Service that is gone).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.installtools import helm_tools
from tests.e2e.conftest import eventually, repo_root, server_minor

pytestmark = pytest.mark.e2e
RELEASES = ("current", "1.20")

RELEASE = "gbs-e2e"
NAMESPACE = "gibbous-helm"
FULLNAME = "gbs-e2e-gibbous"
PREFIX = "zz-e2e-"
CONFIGURATION = PREFIX + FULLNAME
# No pod of another module carries this label: the installed webhook selects none of them.
LABELS = "e2e.gibbous.dev/helm=yes"


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> Any:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(helm_tools().helm), "--kubeconfig", str(control_plane.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            input=stdin,
            timeout=180,
        )

    return run


def install_args(*sets: str) -> list[str]:
    args = [
        RELEASE,
        str(repo_root() / "charts" / "gibbous"),
        "--namespace",
        NAMESPACE,
        "--values",
        str(repo_root() / "tests" / "fixtures" / "luna-values" / "p07-rke2.yaml"),
        "--set",
        f"labels={LABELS}",
        "--set",
        f"webhookConfigPrefix={PREFIX}",
        # No image is published, so the chart needs one named; no pod here pulls it.
        "--set",
        "image.repository=registry.example.com/gibbous",
    ]
    for item in sets:
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def installed(helm: Any) -> Iterator[None]:
    result = helm("install", *install_args(), "--create-namespace")
    assert result.returncode == 0, result.stderr
    try:
        yield
    finally:
        helm("uninstall", RELEASE, "--namespace", NAMESPACE)


def manifest_objects(helm: Any) -> list[dict[str, Any]]:
    result = helm("get", "manifest", RELEASE, "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def configurations(api: client.ApiClient) -> list[Any]:
    admission = client.AdmissionregistrationV1Api(api)
    return [
        c
        for c in (
            *admission.list_mutating_webhook_configuration().items,
            *admission.list_validating_webhook_configuration().items,
        )
        if c.metadata.name == CONFIGURATION
    ]


def test_every_object_is_accepted_and_stored(
    api: client.ApiClient, control_plane: ControlPlane, helm: Any, installed: None
) -> None:
    objects = manifest_objects(helm)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "MutatingWebhookConfiguration", "ClusterRole", "ConfigMap"} <= kinds
    stored = subprocess.run(
        [
            str(helm_tools().kubectl),
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "get",
            "-f",
            "-",
            "-o",
            "json",
        ],
        input=yaml.safe_dump_all(objects),
        capture_output=True,
        text=True,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    items = yaml.safe_load(stored.stdout)
    assert len(items.get("items", [items])) == len(objects)
    pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    assert pdb["apiVersion"] == ("policy/v1" if server_minor(api) >= 21 else "policy/v1beta1")
    scheduler = yaml.safe_load(
        next(o for o in objects if o["metadata"]["name"] == f"{FULLNAME}-scheduler-config")["data"][
            "scheduler-config.yaml"
        ]
    )
    expected = "v1" if server_minor(api) >= 25 else "v1beta1"
    assert scheduler["apiVersion"] == f"kubescheduler.config.k8s.io/{expected}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_self_managed_tls_registers_the_ca_under_the_prefixed_name(
    api: client.ApiClient,
    control_plane: ControlPlane,
    helm: Any,
    installed: None,
    tmp_path: Path,
) -> None:
    assert [c.webhooks[0].client_config.ca_bundle for c in configurations(api)] == [None, None]
    apps = client.AppsV1Api(api)
    deployment = apps.read_namespaced_deployment(f"{FULLNAME}-webhook", NAMESPACE)
    args = deployment.spec.template.spec.containers[0].args
    config_map = client.CoreV1Api(api).read_namespaced_config_map(f"{FULLNAME}-config", NAMESPACE)
    (tmp_path / "config.yaml").write_text(config_map.data["config.yaml"])
    # The installed command line, with this machine's paths and port where the pod's
    # volumes and network would be.
    local = {
        "--config": str(tmp_path / "config.yaml"),
        "--listen": f"127.0.0.1:{free_port()}",
        "--tls-cert": str(tmp_path / "tls.crt"),
        "--tls-key": str(tmp_path / "tls.key"),
    }
    command = [_replace(a, local) for a in args]
    log = (tmp_path / "webhook.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gibbous", *command, f"--kubeconfig={control_plane.kubeconfig}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Both configurations are written one after the other: wait for the second too.
        bundles = eventually(
            lambda: (
                found
                if len(
                    found := [
                        c.webhooks[0].client_config.ca_bundle
                        for c in configurations(api)
                        if c.webhooks[0].client_config.ca_bundle
                    ]
                )
                == 2
                else None
            ),
            timeout_s=60,
            what="caBundle in both webhook configurations",
        )
        assert process.poll() is None, (tmp_path / "webhook.log").read_text()
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        log.close()
    assert len(bundles) == 2 and bundles[0] == bundles[1]
    secret = client.CoreV1Api(api).read_namespaced_secret(f"{FULLNAME}-webhook-tls", NAMESPACE)
    assert b"BEGIN CERTIFICATE" in base64.b64decode(bundles[0])
    assert secret.data


def test_the_extender_issues_the_scheduler_s_client_certificate_and_requires_it(
    api: client.ApiClient,
    control_plane: ControlPlane,
    installed: None,
    tmp_path: Path,
) -> None:
    """webhook.tls self: the installed extender keeps its CA and serving pair in one Secret
    and writes the scheduler's client pair into the Secret the scheduler mounts; a caller
    with that pair is answered, one without it is refused at the handshake."""
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    args = (
        apps.read_namespaced_deployment(f"{FULLNAME}-extender", NAMESPACE)
        .spec.template.spec.containers[0]
        .args
    )
    scheduler = apps.read_namespaced_deployment(f"{FULLNAME}-scheduler", NAMESPACE)
    (client_volume,) = [v for v in scheduler.spec.template.spec.volumes if v.secret]
    config_map = core.read_namespaced_config_map(f"{FULLNAME}-config", NAMESPACE)
    (tmp_path / "config.yaml").write_text(config_map.data["config.yaml"])
    port = free_port()
    local = {
        "--config": str(tmp_path / "config.yaml"),
        "--listen": f"127.0.0.1:{port}",
        "--probe-listen": f"127.0.0.1:{free_port()}",
        "--tls-cert": str(tmp_path / "tls.crt"),
        "--tls-key": str(tmp_path / "tls.key"),
        "--tls-client-ca": str(tmp_path / "ca.crt"),
    }
    command = [_replace(a, local) for a in args]
    log = (tmp_path / "extender.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gibbous", *command, f"--kubeconfig={control_plane.kubeconfig}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def client_secret() -> Any:
        try:
            return core.read_namespaced_secret(client_volume.secret.secret_name, NAMESPACE)
        except client.ApiException:
            return None

    try:
        secret = eventually(client_secret, timeout_s=60, what="the scheduler's client Secret")
        for name, data in (("ca.crt", "ca"), ("tls.crt", "crt"), ("tls.key", "key")):
            (tmp_path / f"client.{data}").write_bytes(base64.b64decode(secret.data[name]))
        # kube-scheduler dials the Service name of its urlPrefix; here it is on loopback.
        host = f"{FULLNAME}-extender.{NAMESPACE}.svc"
        scheduler_side = ssl.create_default_context(cafile=str(tmp_path / "client.ca"))
        scheduler_side.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
        anonymous = ssl.create_default_context(cafile=str(tmp_path / "client.ca"))

        def get_healthz(context: ssl.SSLContext) -> bytes:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                return tls.recv(64)

        def answered() -> bytes | None:
            try:
                return get_healthz(scheduler_side)
            except OSError:
                return None  # not listening yet

        assert eventually(answered, timeout_s=60, what="the extender answering").startswith(
            b"HTTP/1.1 200"
        )
        # TLS 1.3: the refusal may come after the client's side of the handshake, as the
        # connection closing before any answer.
        try:
            refused = not get_healthz(anonymous).startswith(b"HTTP/")
        except OSError:
            refused = True
        assert refused
        assert process.poll() is None, (tmp_path / "extender.log").read_text()
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        log.close()
    # The Secret with the CA key is the extender's alone: the scheduler mounts the other.
    serving = core.read_namespaced_secret(f"{FULLNAME}-extender-tls", NAMESPACE)
    assert "ca.key" in serving.data and "ca.key" not in secret.data


def _replace(argument: str, local: dict[str, str]) -> str:
    name = argument.split("=", 1)[0]
    return f"{name}={local[name]}" if name in local else argument


def test_a_configuration_change_rolls_the_deployments(
    api: client.ApiClient, helm: Any, installed: None
) -> None:
    apps = client.AppsV1Api(api)

    def checksum() -> str:
        deployment = apps.read_namespaced_deployment(f"{FULLNAME}-autoscaler", NAMESPACE)
        value: str = deployment.spec.template.metadata.annotations["checksum/config"]
        return value

    before = checksum()
    result = helm("upgrade", *install_args("scaleUpTimeout=20m"))
    assert result.returncode == 0, result.stderr
    assert checksum() != before
    config_map = client.CoreV1Api(api).read_namespaced_config_map(f"{FULLNAME}-config", NAMESPACE)
    assert yaml.safe_load(config_map.data["config.yaml"])["scaleUpTimeout"] == "20m"
    # An upgrade keeps the caBundle the webhook wrote (Helm does not own that field).
    assert all(c.webhooks[0].client_config.ca_bundle for c in configurations(api))


def test_uninstall_leaves_no_webhook_configuration_behind(
    api: client.ApiClient, helm: Any, installed: None
) -> None:
    result = helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    assert result.returncode == 0, result.stderr
    assert configurations(api) == []
    rbac = client.RbacAuthorizationV1Api(api)
    assert not [
        r.metadata.name
        for r in rbac.list_cluster_role().items
        if r.metadata.name.startswith(FULLNAME)
    ]
