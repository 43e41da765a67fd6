"""What `gibbous dev-cluster up` prints is the demo docs/getting-started.md gives: a
Deployment labelled for Gibbous from the start, and the KUBECONFIG line with the real path
(a newcomer was shown the old create-then-patch commands)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from gibbous.devcluster.controlplane import ControlPlane
from gibbous.devcluster.demo import DEPLOYMENT_DEMO
from gibbous.devcluster.stack import DevCluster, default_directory
from tests.docs.fenced import fenced_blocks

DEMO_SECTION = "Run all of Gibbous on this machine (no cloud)"


def _report(directory: Path) -> str:
    out = io.StringIO()
    plane = SimpleNamespace(server="https://127.0.0.1:6443", kubeconfig=directory / "kubeconfig")
    DevCluster(directory, out)._report(cast(ControlPlane, plane), [])
    return out.getvalue()


def test_the_printed_demo_is_the_documented_one(tmp_path: Path) -> None:
    documented = fenced_blocks("docs/getting-started.md", DEMO_SECTION)
    deployment = next(b for b in documented if b.startswith("kubectl apply"))
    printed = _report(tmp_path)
    assert deployment == DEPLOYMENT_DEMO
    assert deployment in printed
    assert "kubectl patch" not in printed
    assert 'elotl-luna: "true"' in printed


def test_the_printed_kubeconfig_line_honours_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    directory = default_directory()
    assert directory == tmp_path / "state" / "gibbous" / "dev-cluster"
    lines = _report(directory).splitlines()
    assert f"export KUBECONFIG={tmp_path}/state/gibbous/dev-cluster/kubeconfig" in lines


def test_a_relative_dir_gives_an_absolute_kubeconfig_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = _report(Path("here")).splitlines()
    assert f"export KUBECONFIG={tmp_path}/here/kubeconfig" in lines
