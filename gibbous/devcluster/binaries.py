"""Finding kube-apiserver, kube-scheduler, kube-controller-manager and etcd.

In order: `KUBE_APISERVER_BIN`, `KUBE_SCHEDULER_BIN`, `KUBE_CONTROLLER_MANAGER_BIN`,
`ETCD_BIN`; then `KUBEBUILDER_ASSETS` (the envtest convention: a directory holding the
binaries); then the per-user cache that `build-kubernetes.sh` fills from Debian's
source package (v1.20.2), building it on first use; etcd from PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BUILD_VERSION = "1.20.2"


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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gibbous" / f"kubernetes-{BUILD_VERSION}"


def _from_env(name: str, variable: str, assets: Path | None, cached: Path | None) -> Path | None:
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit)
    for directory in (assets, cached):
        if directory and (directory / name).is_file():
            return directory / name
    return None


def find_binaries(*, build: bool = True) -> Binaries:
    """Locate the binaries, building the Debian-source ones into the cache if needed."""
    assets_env = os.environ.get("KUBEBUILDER_ASSETS")
    assets = Path(assets_env) if assets_env else None
    cached = cache_dir() / "bin"
    names = {
        "kube-apiserver": "KUBE_APISERVER_BIN",
        "kube-scheduler": "KUBE_SCHEDULER_BIN",
        "kube-controller-manager": "KUBE_CONTROLLER_MANAGER_BIN",
    }
    found = {name: _from_env(name, variable, assets, cached) for name, variable in names.items()}
    if any(path is None for path in found.values()) and build:
        build_from_source()
        found = {
            name: _from_env(name, variable, assets, cached) for name, variable in names.items()
        }
    etcd_env = os.environ.get("ETCD_BIN")
    etcd = (
        Path(etcd_env)
        if etcd_env
        else (assets / "etcd" if assets and (assets / "etcd").is_file() else None)
    )
    if etcd is None:
        which = shutil.which("etcd")
        etcd = Path(which) if which else None
    resolved = {name: path for name, path in found.items() if path is not None and path.is_file()}
    missing = [name for name in found if name not in resolved]
    if etcd is None or not etcd.is_file():
        missing.append("etcd")
    if missing or etcd is None:
        raise BinariesError(
            f"missing {', '.join(missing)}: set KUBE_APISERVER_BIN/KUBE_SCHEDULER_BIN/"
            "KUBE_CONTROLLER_MANAGER_BIN/ETCD_BIN or KUBEBUILDER_ASSETS, or let Gibbous build them "
            "(Debian: needs root for apt-get)"
        )
    return Binaries(
        resolved["kube-apiserver"],
        resolved["kube-scheduler"],
        resolved["kube-controller-manager"],
        etcd,
    )


def build_from_source() -> Path:
    """Run build-kubernetes.sh (about 8 minutes on 2 cores the first time)."""
    script = resources.files(__package__).joinpath("build-kubernetes.sh")
    with resources.as_file(script) as path:
        result = subprocess.run(
            ["bash", str(path), str(cache_dir())], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise BinariesError(
            f"building Kubernetes from Debian's source failed:\n{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    found = find_binaries()
    print(f"kube-apiserver {'.'.join(map(str, found.version()))}: {found.apiserver}")
    print(f"kube-scheduler: {found.scheduler}")
    print(f"kube-controller-manager: {found.controller_manager}")
    print(f"etcd: {found.etcd}")
