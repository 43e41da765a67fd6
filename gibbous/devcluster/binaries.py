"""Finding kube-apiserver, kube-scheduler, kube-controller-manager and etcd.

Two releases are known:

* `current` (the default): the release `kubebuild/go.mod` pins, built from the Go module
  proxy by `build-kubernetes-modules.sh` with its own etcd. `KUBE_APISERVER_BIN`,
  `KUBE_SCHEDULER_BIN`, `KUBE_CONTROLLER_MANAGER_BIN`, `ETCD_BIN`, then `KUBEBUILDER_ASSETS`
  (the envtest convention: a directory holding the binaries) replace it, so users with
  another release run the same suite.
* `1.20`: v1.20.2, the old-version target (no scheduling gates, policy/v1beta1 eviction,
  v1beta1 scheduler configuration), built from Debian's source package by
  `build-kubernetes.sh`, etcd from Debian; `KUBE_OLD_ASSETS` (a directory) replaces it.

Each is built into a per-user cache on first use and reused after.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

OLD_VERSION = "1.20.2"
RELEASES = ("current", "1.20")


def current_version() -> str:
    """The k8s.io/kubernetes version kubebuild/go.mod requires, e.g. `1.37.2`."""
    go_mod = resources.files(__package__).joinpath("kubebuild", "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes v(\d+\.\d+\.\d+)", go_mod, re.MULTILINE)
    if match is None:
        raise BinariesError("kubebuild/go.mod requires no k8s.io/kubernetes version")
    return match.group(1)


class BinariesError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    apiserver: Path
    scheduler: Path
    controller_manager: Path
    etcd: Path

    def version(self) -> tuple[int, int]:
        """kube-apiserver's (major, minor)."""
        output = subprocess.run(
            [str(self.apiserver), "--version"], capture_output=True, text=True, check=False
        ).stdout
        match = re.search(r"v(\d+)\.(\d+)", output)
        if not match:
            raise BinariesError(f"cannot read the version of {self.apiserver}: {output.strip()!r}")
        return int(match.group(1)), int(match.group(2))


def cache_dir(release: str = "current") -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    version = current_version() if release == "current" else OLD_VERSION
    return Path(base) / "gibbous" / f"kubernetes-{version}"


def _etcd_in(directory: Path | None) -> Path | None:
    return directory / "etcd" if directory and (directory / "etcd").is_file() else None


def _from_env(name: str, variable: str, assets: Path | None, cached: Path | None) -> Path | None:
    explicit = os.environ.get(variable) if variable else None
    if explicit:
        return Path(explicit)
    for directory in (assets, cached):
        if directory and (directory / name).is_file():
            return directory / name
    return None


def find_binaries(*, build: bool = True, release: str = "current") -> Binaries:
    """Locate the binaries of `release` (`current` or `1.20`), building them into the cache
    if needed and `build` allows."""
    if release not in RELEASES:
        raise BinariesError(
            f"unknown Kubernetes release {release!r} (known: {', '.join(RELEASES)})"
        )
    current = release == "current"
    assets_env = os.environ.get("KUBEBUILDER_ASSETS" if current else "KUBE_OLD_ASSETS")
    assets = Path(assets_env) if assets_env else None
    cached = cache_dir(release) / "bin"
    names = {
        "kube-apiserver": "KUBE_APISERVER_BIN",
        "kube-scheduler": "KUBE_SCHEDULER_BIN",
        "kube-controller-manager": "KUBE_CONTROLLER_MANAGER_BIN",
    }
    if not current:  # the KUBE_*_BIN overrides name the current release's binaries
        names = dict.fromkeys(names, "")

    def look() -> dict[str, Path | None]:
        return {name: _from_env(name, variable, assets, cached) for name, variable in names.items()}

    found = look()
    etcd_env = os.environ.get("ETCD_BIN") if current else None
    if build and (
        any(path is None for path in found.values())
        or (current and not etcd_env and not _etcd_in(assets) and not _etcd_in(cached))
    ):
        build_release(release)
        found = look()
    etcd = Path(etcd_env) if etcd_env else (_etcd_in(assets) or _etcd_in(cached))
    if etcd is None and not current:
        which = shutil.which("etcd")
        etcd = Path(which) if which else None
    resolved = {name: path for name, path in found.items() if path is not None and path.is_file()}
    missing = [name for name in found if name not in resolved]
    if etcd is None or not etcd.is_file():
        missing.append("etcd")
    if missing or etcd is None:
        how = (
            "set KUBE_APISERVER_BIN/KUBE_SCHEDULER_BIN/KUBE_CONTROLLER_MANAGER_BIN/ETCD_BIN or "
            "KUBEBUILDER_ASSETS, or let Gibbous build them (needs Go and the Go module proxy)"
            if current
            else "set KUBE_OLD_ASSETS, or let Gibbous build them from Debian's source "
            "(needs root for apt-get)"
        )
        raise BinariesError(f"missing {', '.join(missing)} of Kubernetes {release}: {how}")
    return Binaries(
        resolved["kube-apiserver"],
        resolved["kube-scheduler"],
        resolved["kube-controller-manager"],
        etcd,
    )


def build_release(release: str) -> Path:
    """Build `release` into its cache: the current one from the Go module proxy (about
    8 minutes on 2 cores the first time), v1.20 from Debian's source (about 6)."""
    script_name, source = (
        ("build-kubernetes-modules.sh", "the Go module proxy")
        if release == "current"
        else ("build-kubernetes.sh", "Debian's source")
    )
    package = resources.files(__package__)
    with resources.as_file(package) as directory:
        result = subprocess.run(
            ["bash", str(directory / script_name), str(cache_dir(release))],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise BinariesError(
            f"building Kubernetes {release} from {source} failed:\n{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    for name in RELEASES:
        found = find_binaries(release=name)
        print(f"{name}: kube-apiserver {'.'.join(map(str, found.version()))}: {found.apiserver}")
        print(f"  kube-scheduler: {found.scheduler}")
        print(f"  kube-controller-manager: {found.controller_manager}")
        print(f"  etcd: {found.etcd}")
