"""`gibbous autoscaler`: its help and its refusals of bad setups, before touching a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gibbous.cli import main
from gibbous.commands.autoscaler import own_pod


def test_help_names_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gibbous", "autoscaler", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for word in (
        "--provider",
        "--kubeconfig",
        "--leader-elect",
        "--no-leader-elect",
        "--lease-namespace",
        "--period",
        "--kwok-boot-seconds",
        "--aws-launch-template",
        "clusterID",
        "scaleUpBatchIdle",
        "orphanGracePeriod",
    ):
        assert word in result.stdout, word


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--provider", "kwok", "--period", "0"], "--period must be > 0"),
        (["--provider", "kwok", "--set", "clusterID=Bad_Id"], "invalid cluster id"),
        (
            ["--provider", "kwok", "--kubeconfig", "/nonexistent"],
            "cannot load Kubernetes credentials",
        ),
        (
            [
                "--provider",
                "aws",
                "--kubeconfig",
                "KUBECONFIG",
                "--set",
                "aws.nodeInstanceProfile=n",
            ],
            "--provider aws: eks:DescribeCluster failed: cannot reach AWS",
        ),
        (
            ["--provider", "aws", "--kubeconfig", "KUBECONFIG"],
            "--provider aws: set aws.nodeInstanceProfile",
        ),
    ],
)
def test_bad_setups_exit_2_with_a_clear_message(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # AWS at an address nothing listens on: discovery fails at once, with a message.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    argv = [str(kubeconfig) if a == "KUBECONFIG" else a for a in argv]
    assert main(["autoscaler", "--log-level", "error", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_autoscaler_knows_its_own_pod_from_the_downward_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert own_pod() is None  # outside a cluster: no pod to put events on
    monkeypatch.setenv("POD_NAME", "gibbous-autoscaler-7d9f")
    monkeypatch.setenv("POD_NAMESPACE", "elotl")
    monkeypatch.setenv("POD_UID", "3f1c")
    assert own_pod() == {
        "metadata": {"name": "gibbous-autoscaler-7d9f", "namespace": "elotl", "uid": "3f1c"}
    }
