"""The image, built from the Dockerfile and run, as the README tells users to build it.

Here no registry image can be pulled and `podman run` is refused (crun's setrlimit), so
scripts/build-image builds on a base made from Debian packages (debootstrap) with podman
(vfs storage, chroot isolation), exports the image's filesystem, and the commands run in
it under chroot as the image's non-root user. Needs root (podman, chroot); a machine that
cannot build says why in the skip reason (`-ra` prints it), never passes silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The build downloads the SDKs from PyPI into the image when pyproject.toml changed (its
# own layer, cached otherwise): minutes, past the suite's 300 s per test on a busy machine.
pytestmark = pytest.mark.timeout(1200)
TAG = "localhost/gibbous:suite"
PODMAN = ["podman", "--storage-driver", "vfs"]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("building and running the image needs root (podman, chroot) on this machine")
    target = tmp_path_factory.mktemp("image") / "rootfs"
    result = subprocess.run(
        [
            str(REPO / "scripts" / "build-image"),
            "--debian-base",
            "--tag",
            TAG,
            "--export",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    if result.returncode == 3:  # the script's "cannot build here" (no podman, not root)
        pytest.skip(f"cannot build the image here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr[-4000:]
    yield target
    shutil.rmtree(target, ignore_errors=True)


def run_as_image_user(rootfs: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """As the image's ENTRYPOINT would: user 65532, the image's PATH, nothing inherited."""
    environment = ["PATH=/opt/gibbous/bin:/usr/bin:/bin", "HOME=/nonexistent"]
    return subprocess.run(
        ["chroot", "--userspec=65532:65532", str(rootfs), "env", "-i", *environment, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_image_runs_gibbous_as_a_non_root_user(rootfs: Path) -> None:
    inspected = subprocess.run(
        [*PODMAN, "image", "inspect", TAG], capture_output=True, text=True, check=True
    )
    (image,) = json.loads(inspected.stdout)
    assert image["Config"]["User"] == "65532:65532"
    assert image["Config"]["Entrypoint"] == ["gibbous"]

    shown = run_as_image_user(rootfs, "gibbous", "--help")
    assert shown.returncode == 0, shown.stderr
    for command in ("webhook", "extender", "autoscaler", "estimate"):
        assert command in shown.stdout
    # The cloud SDKs of the default EXTRAS are in the image.
    imported = run_as_image_user(
        rootfs,
        "python3",
        "-c",
        "import boto3, google.cloud.container_v1, azure.mgmt.containerservice",
    )
    assert imported.returncode == 0, imported.stderr


def test_the_image_estimates_the_readme_example(rootfs: Path) -> None:
    example = REPO / "examples" / "llm-serving-rayservice.yaml"
    shutil.copy(example, rootfs / "tmp" / example.name)
    estimated = run_as_image_user(
        rootfs, "gibbous", "estimate", f"/tmp/{example.name}", "--cloud", "gcp"
    )
    assert estimated.returncode == 0, estimated.stderr
    # P04's GKE figure for this RayService, as the README's first command prints it.
    assert "$3.6494/hr" in estimated.stdout
