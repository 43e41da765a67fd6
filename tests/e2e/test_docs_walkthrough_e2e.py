"""A newcomer's path, walked as written: the `sh` blocks of README.md's quick start, of
docs/getting-started.md's dev-cluster demo and of docs/install/helm.md's chart-in-a-dev-
cluster section, run in order by bash from the root of the checkout, in a fresh HOME and
XDG_STATE_HOME, with kubectl and helm on PATH as the docs ask. What each block's output
must show is what the docs claim for it (the estimate's $3.6494/hr; a node appears and
the three demo pods run; the chart installs and its pods wait for a node).

Two translations only: `.venv/bin/` is the bin directory of the Python running the tests,
and the venv's creation and `pip install` (`python3 -m venv .venv && .venv/bin/pip
install -e .`) are left out, since that Python already has Gibbous installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.installtools import helm_tools
from tests.docs.fenced import fenced_blocks
from tests.e2e.conftest import repo_root

pytestmark = pytest.mark.e2e

VENV_BIN = str(Path(sys.executable).parent)
INSTALL_STEPS = re.compile(r"^(python3 -m venv \.venv|\.venv/bin/pip install\b)")


def as_run_here(block: str) -> str:
    steps = [s for s in block.split(" && ") if not INSTALL_STEPS.match(s.strip())]
    return " && ".join(steps).replace(".venv/bin/", f"{VENV_BIN}/")


def newcomer_environment(home: Path) -> dict[str, str]:
    tools = helm_tools()
    on_path = home / "bin"
    on_path.mkdir(parents=True)
    for tool in (tools.kubectl, tools.helm):
        (on_path / tool.name).symlink_to(tool)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("KUBE", "XDG_"))
    }
    return {
        **environment,
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PATH": os.pathsep.join([str(on_path), VENV_BIN, os.environ.get("PATH", "")]),
        # This checkout's Gibbous, whichever checkout the venv was installed from.
        "PYTHONPATH": str(repo_root()),
        # The control plane the suite already has (docs: "where the binaries come from").
        "KUBEBUILDER_ASSETS": str(find_binaries().apiserver.parent),
    }


def bash(block: str, environment: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", as_run_here(block)],
        cwd=repo_root(),
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


def test_the_quick_start_and_the_dev_cluster_demo_work_as_written(tmp_path: Path) -> None:
    environment = newcomer_environment(tmp_path / "home")
    state = tmp_path / "home" / "state" / "gibbous" / "dev-cluster"

    (quick_start,) = fenced_blocks("README.md", "Try it (one command, built-in data)")
    assert "$3.6494/hr" in bash(quick_start, environment).replace(" ", "")

    up, demo, status_and_down = fenced_blocks(
        "docs/getting-started.md", "Run all of Gibbous on this machine (no cloud)"
    )
    printed = bash(up, environment)
    # "run that line in your shell"
    (export,) = [line for line in printed.splitlines() if line.startswith("export KUBECONFIG=")]
    assert export == f"export KUBECONFIG={state / 'kubeconfig'}"
    environment["KUBECONFIG"] = export.split("=", 1)[1]
    try:
        shown = bash(demo, environment)
        assert 'deployment "demo" successfully rolled out' in shown
        nodes = [line.split() for line in shown.splitlines()[1:] if " Ready " in f" {line} "]
        assert nodes, shown  # a node, with its instance type and price columns filled
        phases = bash(
            "kubectl get pods -l app=demo -o jsonpath='{.items[*].status.phase}'", environment
        )
        assert phases.split() == ["Running"] * 3
    finally:
        bash(status_and_down, environment)
    assert not state.exists()

    (chart,) = fenced_blocks("docs/install/helm.md", "Try the chart in a dev cluster")
    environment.pop("KUBECONFIG")
    try:
        shown = bash(chart, environment)
        assert "STATUS: deployed" in shown
        assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/zz-gibbous" in shown
        assert "deployment.apps/gibbous-webhook" in shown
    finally:
        bash(".venv/bin/gibbous dev-cluster down", environment)
    assert not state.exists()
