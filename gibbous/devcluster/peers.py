"""Finding the peers `bench.race` races Gibbous against: Karpenter's KWOK provider
(`sigs.k8s.io/karpenter/kwok`) and the KWOK controller (`sigs.k8s.io/kwok/cmd/kwok`), with
the files they need at run time (Karpenter's CRDs, KWOK's stage files).

They are built like the control plane (`binaries.py`): from the Go module proxy by
`build-peers.sh`, pinned by the `go.sum` of `peerbuild/karpenter` and `peerbuild/kwok`, into
a per-user cache keyed by their versions, once. Karpenter v1.15.0 needs Go >= 1.26.9, so it
is built with `GOTOOLCHAIN=go1.27.3` (the go command fetches that toolchain from the module
proxy). `KARPENTER_KWOK_BIN` and `KWOK_BIN` replace the built programs.

`python -m gibbous.devcluster.peers` builds them (scripts/test runs it) and prints where.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KARPENTER_TOOLCHAIN = "go1.27.3"


class PeersError(RuntimeError):
    pass


def _required_version(module_dir: str, module: str) -> str:
    go_mod = resources.files(__package__).joinpath("peerbuild", module_dir, "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v[\w.+-]+)", go_mod, re.MULTILINE)
    if match is None:
        raise PeersError(f"peerbuild/{module_dir}/go.mod requires no {module} version")
    return match.group(1)


def versions() -> tuple[str, str]:
    """(Karpenter, KWOK) versions the peer modules pin, e.g. ("v1.15.0", "v0.8.0")."""
    return (
        _required_version("karpenter", "sigs.k8s.io/karpenter"),
        _required_version("kwok", "sigs.k8s.io/kwok"),
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    karpenter, kwok = versions()
    return Path(base) / "gibbous" / f"peers-karpenter-{karpenter}-kwok-{kwok}"


@dataclass(frozen=True)
class Peers:
    karpenter: Path  # the sigs.k8s.io/karpenter/kwok program
    kwok: Path  # the sigs.k8s.io/kwok/cmd/kwok program
    karpenter_crds: Path  # kwok/charts/crds and kwok/apis/crds of the Karpenter module
    kwok_stages: Path  # node/fast, node/heartbeat and pod/fast stages of the KWOK module


def find_peers(*, build: bool = True) -> Peers:
    """The peers, built into the cache first if needed and `build` allows."""
    cache = cache_dir()

    def look() -> Peers:
        return Peers(
            Path(os.environ.get("KARPENTER_KWOK_BIN") or cache / "bin" / "karpenter-kwok"),
            Path(os.environ.get("KWOK_BIN") or cache / "bin" / "kwok"),
            cache / "karpenter-crds",
            cache / "kwok-stages",
        )

    found = look()
    if build and not _complete(found):
        build_peers()
        found = look()
    if not _complete(found):
        missing = [str(p) for p in vars(found).values() if not Path(p).exists()]
        raise PeersError(
            f"missing {', '.join(missing)}: run `python -m gibbous.devcluster.peers` "
            "(needs Go and the Go module proxy)"
        )
    return found


def _complete(peers: Peers) -> bool:
    return all(Path(path).exists() for path in vars(peers).values())


def build_peers() -> Path:
    """Build both peers into the cache (32 minutes on 2 busy cores the first time)."""
    if shutil.which("go") is None:
        karpenter, kwok = versions()
        raise PeersError(
            f"building Karpenter {karpenter} and KWOK {kwok} needs the Go toolchain (`go`) on "
            f"PATH: any Go >= 1.21 will do, it fetches {KARPENTER_TOOLCHAIN} for Karpenter "
            "through GOTOOLCHAIN from the Go module proxy; or set KARPENTER_KWOK_BIN and KWOK_BIN"
        )
    package = resources.files(__package__)
    with resources.as_file(package) as directory:
        result = subprocess.run(
            ["bash", str(directory / "build-peers.sh"), str(cache_dir())],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise PeersError(f"building the race's peers failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    peers = find_peers()
    karpenter_version, kwok_version = versions()
    print(f"Karpenter {karpenter_version} (KWOK provider): {peers.karpenter}")
    print(f"KWOK {kwok_version}: {peers.kwok}")
    print(f"  CRDs: {peers.karpenter_crds}")
    print(f"  stages: {peers.kwok_stages}")
