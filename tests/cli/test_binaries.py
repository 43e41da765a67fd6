"""Which control-plane binaries each release uses: overrides, caches and builds."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gibbous.devcluster import binaries
from gibbous.devcluster.binaries import BinariesError, cache_dir, current_version, find_binaries

NAMES = ("kube-apiserver", "kube-scheduler", "kube-controller-manager", "etcd")
OVERRIDES = (
    "KUBE_APISERVER_BIN",
    "KUBE_SCHEDULER_BIN",
    "KUBE_CONTROLLER_MANAGER_BIN",
    "ETCD_BIN",
    "KUBEBUILDER_ASSETS",
    "KUBE_OLD_ASSETS",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in OVERRIDES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-etcd-here"))


def fill(directory: Path, names: tuple[str, ...] = NAMES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_the_current_release_is_what_kubebuild_pins() -> None:
    go_mod = (Path(binaries.__file__).parent / "kubebuild" / "go.mod").read_text()
    assert re.match(r"\d+\.\d+\.\d+$", current_version())
    assert f"k8s.io/kubernetes v{current_version()}" in go_mod
    minor = current_version().split(".")[1]
    # Every staging module is pinned to the matching v0 release.
    pins = re.findall(r"(k8s\.io/[a-z-]+) => \1 v0\.(\d+)\.", go_mod)
    assert len(pins) > 20 and {m for _, m in pins} == {minor}
    assert cache_dir().name == f"kubernetes-{current_version()}"
    assert cache_dir("1.20").name == "kubernetes-1.20.2"


def test_the_current_release_is_found_in_its_cache_with_its_own_etcd() -> None:
    directory = fill(cache_dir() / "bin")
    found = find_binaries(build=False)
    assert found.apiserver == directory / "kube-apiserver"
    assert found.etcd == directory / "etcd"


def test_overrides_name_the_current_release_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assets = fill(tmp_path / "assets")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert find_binaries(build=False).scheduler == assets / "kube-scheduler"
    explicit = fill(tmp_path / "explicit", ("kube-apiserver",))
    monkeypatch.setenv("KUBE_APISERVER_BIN", str(explicit / "kube-apiserver"))
    assert find_binaries(build=False).apiserver == explicit / "kube-apiserver"
    # The old release ignores them: its own cache or KUBE_OLD_ASSETS.
    with pytest.raises(BinariesError, match="KUBE_OLD_ASSETS"):
        find_binaries(build=False, release="1.20")
    old = fill(tmp_path / "old")
    monkeypatch.setenv("KUBE_OLD_ASSETS", str(old))
    assert find_binaries(build=False, release="1.20").apiserver == old / "kube-apiserver"


def test_a_missing_release_says_how_to_get_it() -> None:
    with pytest.raises(BinariesError) as raised:
        find_binaries(build=False)
    assert "Go module proxy" in str(raised.value) and "KUBEBUILDER_ASSETS" in str(raised.value)
    with pytest.raises(BinariesError, match="unknown Kubernetes release"):
        find_binaries(build=False, release="1.19")


def tools_only(directory: Path, go_version: str | None) -> str:
    """A PATH with the shell tools the build script uses and, if given, a `go` of that
    version (which builds nothing)."""
    directory.mkdir()
    for tool in ("bash", "awk", "sed", "sort", "head", "dirname", "mktemp", "cp", "rm", "mkdir"):
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
        assert found is not None
        (directory / tool).symlink_to(found)
    if go_version is not None:
        (directory / "go").write_text(f"#!/bin/sh\necho go{go_version}\n")
        (directory / "go").chmod(0o755)
    return str(directory)


@pytest.mark.parametrize(
    ("go_version", "message"),
    [(None, "needs Go >= 1.26"), ("1.19.8", "Go 1.19.8 on PATH is older than the 1.26")],
)
def test_a_build_without_a_recent_go_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, go_version: str | None, message: str
) -> None:
    monkeypatch.setenv("PATH", tools_only(tmp_path / "bin", go_version))
    with pytest.raises(BinariesError, match=message):
        find_binaries(build=True)
