import io
from pathlib import Path

import pytest
import yaml

from gibbous.cli import main
from gibbous.configfile import load_config


def test_config_command_prints_effective_values(tmp_path: Path) -> None:
    path = tmp_path / "gibbous.yaml"
    path.write_text("cloudProvider: gcp\nmanageHighUtilization:\n  enabled: true\n  redCPU: 70\n")
    out = io.StringIO()
    assert main(["config", "--config", str(path), "--set", "scaleUpTimeout=5m"], stdout=out) == 0
    values = yaml.safe_load(out.getvalue())
    assert values["cloudProvider"] == "gcp"
    assert values["manageHighUtilization.redCPU"] == 70
    assert values["scaleUpTimeout"] == "5m"
    assert values["binSelectPodCpuThreshold"] == "2"


def test_environment_sits_between_file_and_set(tmp_path: Path) -> None:
    path = tmp_path / "gibbous.yaml"
    path.write_text("nvidiaGPUTimeSlices: 2\nclusterGPULimit: 8\n")
    config = load_config(
        str(path),
        ["clusterGPULimit=16"],
        {"GIBBOUS_nvidiaGPUTimeSlices": "4", "GIBBOUS_clusterGPULimit": "12"},
    )
    assert config.nvidia_gpu_time_slices == 4
    assert config.cluster_gpu_limit == 16


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("binSelectPodCpuThreshold: [", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("scaleDown:\n  enabld: true\n", "did you mean 'scaleDown.enabled'"),
    ],
)
def test_bad_files_fail_at_start_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    path = tmp_path / "gibbous.yaml"
    path.write_text(content)
    assert main(["config", "--config", str(path)], stdout=io.StringIO()) == 2
    assert fragment in capsys.readouterr().err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", "/nonexistent/gibbous.yaml"], stdout=io.StringIO()) == 2
    assert "cannot read configuration file /nonexistent/gibbous.yaml" in capsys.readouterr().err


def test_no_command_prints_help() -> None:
    out = io.StringIO()
    assert main([], stdout=out) == 2
    assert "estimate" in out.getvalue()
