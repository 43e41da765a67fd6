"""`gibbous dev-cluster up --without-gibbous`: the control plane and a default scheduler with
none of Gibbous, so the Helm chart installs into it (into a full dev cluster it cannot: the
dev cluster registers `zz-gibbous` itself). The chart's objects are stored and its webhook
configurations registered; its pods stay Pending, as the docs say, since no node exists
(nothing here runs containers); `kubectl apply -k manifests/base` installs as well."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from gibbous.devcluster.installtools import helm_tools
from tests.e2e.conftest import eventually, repo_root

pytestmark = pytest.mark.e2e


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=180, check=False, input=stdin, cwd=repo_root()
    )


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("bare") / "cluster"
    up = run(
        sys.executable,
        "-m",
        "gibbous",
        "dev-cluster",
        "up",
        "--without-gibbous",
        "--dir",
        str(directory),
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"export KUBECONFIG={directory / 'kubeconfig'}" in up.stdout
        assert "helm install gibbous charts/gibbous" in up.stdout
        yield directory
    finally:
        down = run(sys.executable, "-m", "gibbous", "dev-cluster", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert not directory.exists()


def test_the_chart_installs_its_objects_are_stored_and_its_pods_wait_for_a_node(
    bare_cluster: Path,
) -> None:
    kubeconfig = str(bare_cluster / "kubeconfig")
    helm = [str(helm_tools().helm), "--kubeconfig", kubeconfig]
    kubectl = [str(helm_tools().kubectl), "--kubeconfig", kubeconfig]
    installed = run(
        *helm,
        "install",
        "gibbous",
        "charts/gibbous",
        "--namespace",
        "gibbous",
        "--create-namespace",
        # The chart renders only with an image named (docs/install/helm.md); none runs here.
        "--set",
        "image.repository=registry.example.com/gibbous",
    )
    assert installed.returncode == 0, installed.stderr

    manifest = run(*helm, "get", "manifest", "gibbous", "--namespace", "gibbous")
    objects = [o for o in yaml.safe_load_all(manifest.stdout) if o]
    stored = run(*kubectl, "get", "-f", "-", "-o", "json", stdin=yaml.safe_dump_all(objects))
    assert stored.returncode == 0, stored.stderr
    assert len(yaml.safe_load(stored.stdout)["items"]) == len(objects)

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    api = client.ApiClient(configuration)
    admission = client.AdmissionregistrationV1Api(api)
    assert admission.read_mutating_webhook_configuration("zz-gibbous").webhooks
    assert admission.read_validating_webhook_configuration("zz-gibbous").webhooks

    core = client.CoreV1Api(api)

    def pending_for_want_of_a_node() -> bool:
        pods = core.list_namespaced_pod("gibbous").items
        reasons = {
            e.message
            for e in core.list_namespaced_event("gibbous").items
            if e.reason == "FailedScheduling"
        }
        return (
            len(pods) == 8  # two replicas each of webhook, extender, scheduler, autoscaler
            and all(p.status.phase == "Pending" for p in pods)
            and "no nodes available to schedule pods" in reasons
        )

    eventually(pending_for_want_of_a_node, timeout_s=60, what="the chart's pods Pending: no nodes")
    assert core.list_node().items == []

    uninstalled = run(*helm, "uninstall", "gibbous", "--namespace", "gibbous", "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    applied = run(*kubectl, "apply", "-k", "manifests/base")
    assert applied.returncode == 0, applied.stderr
    assert (
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/zz-gibbous created"
        in applied.stdout
    )
