"""aws.userDataSecret: user data carrying a join token (Luna's RKE2 example) stays in a
Secret that only the autoscaler mounts, never in the ConfigMap all three components read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gibbous.cli import build_parser
from gibbous.core.settings.loader import build_config
from gibbous.devcluster.binaries import current_version
from tests.manifests import openapi
from tests.manifests.test_chart import CHART, IMAGE, LUNA_VALUES, helm, one, template


def _rke2_with_secret(tmp_path: Path) -> Path:
    values = yaml.safe_load((LUNA_VALUES / "p07-rke2.yaml").read_text())
    del values["aws"]["userData"]
    values["aws"]["userDataSecret"] = "rke2-join"
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _pod(objects: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment", suffix)["spec"]["template"]["spec"]
    return spec


def test_the_user_data_secret_is_mounted_in_the_autoscaler_only(tmp_path: Path) -> None:
    version = current_version()
    objects = template(version, (_rke2_with_secret(tmp_path),))
    for obj in objects:
        if not obj["apiVersion"].startswith("cert-manager.io/"):
            assert openapi.problems(version, obj) == [], (obj["kind"], obj["metadata"]["name"])
    mounted = {
        deployment["metadata"]["name"]: [
            volume
            for volume in deployment["spec"]["template"]["spec"]["volumes"]
            if volume.get("secret", {}).get("secretName") == "rke2-join"
        ]
        for deployment in objects
        if deployment["kind"] == "Deployment"
    }
    assert {name for name, volumes in mounted.items() if volumes} == {"gibbous-autoscaler"}
    (volume,) = mounted["gibbous-autoscaler"]
    assert volume["secret"]["defaultMode"] == 0o440
    assert volume["secret"]["items"] == [{"key": "userData", "path": "userData"}]
    pod = _pod(objects, "-autoscaler")
    assert pod["securityContext"]["fsGroup"] == 65532
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    args = build_parser().parse_args(container["args"])
    assert args.aws_user_data_file == f"{mount['mountPath']}/userData"

    # The ConfigMap every component mounts names the Secret and carries no user data.
    text = one(objects, "ConfigMap", "gibbous-config")["data"]["config.yaml"]
    assert "token" not in text and "rke2" not in text.replace("rke2-join", "")
    config = build_config(yaml.safe_load(text))
    assert config.aws.user_data == "" and config.aws.user_data_secret == "rke2-join"


def test_user_data_and_its_secret_together_fail_the_render() -> None:
    result = helm(
        "template",
        "gibbous",
        str(CHART),
        "--set",
        f"image.repository={IMAGE}",
        "--values",
        str(LUNA_VALUES / "p07-rke2.yaml"),
        "--set",
        "aws.userDataSecret=rke2-join",
    )
    assert result.returncode != 0
    assert "aws.userData and aws.userDataSecret are both set" in result.stderr


def test_without_the_secret_nothing_is_mounted_for_it() -> None:
    objects = template(current_version())
    container = _pod(objects, "-autoscaler")["containers"][0]
    assert not any(arg.startswith("--aws-user-data-file") for arg in container["args"])
