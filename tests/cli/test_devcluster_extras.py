"""`gibbous dev-cluster up --cloud` without the `emulator` extra: it says which extra to
install, exits 2 and leaves nothing behind, before starting anything (a newcomer got a raw
boto3 traceback with --cloud aws, and a GKE emulator log with a DIR left behind with gcp)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gibbous.cli import main
from gibbous.devcluster.extras import missing_modules

REPO = Path(__file__).resolve().parents[2]

# A Python in which these top-level packages cannot be imported, as in an install without
# the extra: `None` in sys.modules makes `import` and `find_spec` fail as for an absent one.
HIDING_SITECUSTOMIZE = """
import os, sys
for name in os.environ["HIDDEN_MODULES"].split(","):
    sys.modules[name] = None
"""


@pytest.mark.parametrize(
    ("cloud", "hidden", "named"),
    [
        ("aws", "boto3", "boto3"),
        ("gcp", "google", "google.cloud.container_v1"),
        ("azure", "azure", "azure.mgmt.containerservice"),
        ("oci", "oci", "oci"),
    ],
)
def test_up_without_the_emulator_extra_says_which_extra_and_starts_nothing(
    tmp_path: Path, cloud: str, hidden: str, named: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDING_SITECUSTOMIZE)
    state = tmp_path / "dev-cluster"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "HIDDEN_MODULES": hidden,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gibbous",
            "dev-cluster",
            "up",
            "--cloud",
            cloud,
            "--dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"--cloud {cloud} needs the `emulator` extra" in result.stderr
    assert named in result.stderr
    assert ".venv/bin/pip install -e '.[emulator]'" in result.stderr
    assert not state.exists()


def test_kwok_needs_no_extra_and_every_cloud_is_known() -> None:
    assert missing_modules("kwok") == []
    # This suite runs with the dev extra, which holds everything the emulators need.
    for cloud in ("aws", "gcp", "azure", "oci"):
        assert missing_modules(cloud) == []


def test_set_is_refused_without_gibbous_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "dev-cluster"
    argv = ["dev-cluster", "up", "--without-gibbous", "--set", "scaleUpTimeout=20m"]
    assert main([*argv, "--dir", str(state)]) == 2
    assert not state.exists()
