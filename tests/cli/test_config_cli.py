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


LUNA_P07 = Path(__file__).resolve().parents[1] / "fixtures" / "luna-values" / "p07-rke2.yaml"


def test_a_luna_values_file_is_read_as_it_is() -> None:
    # P07's Helm values: chart-only keys set aside, `clusterID:` (null) left at its default.
    config = load_config(str(LUNA_P07))
    assert config.cloud == "aws" and config.cluster_id == "gibbous"
    assert config.aws.node_instance_profile == "node-instance-profile"
    assert config.aws.subnets == ("subnet-1234567890",)
    assert config.managed_labels == (("elotl-luna", "true"),)


def test_check_says_what_a_values_file_sets_and_what_is_not_applicable() -> None:
    out = io.StringIO()
    assert main(["config", "--check", str(LUNA_P07)], stdout=out) == 0
    report = out.getvalue()
    assert "a valid Gibbous configuration" in report
    assert 'aws.nodeInstanceProfile: "node-instance-profile"' in report
    assert "imagePullSecretName" in report.split("not applicable")[1]
    assert "manager" in report.split("not applicable")[1]
    assert "clusterID" not in report  # null: not set


def test_check_refuses_unknown_keys_with_the_nearest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("aws:\n  useSpotAdvisr: true\nimagePullSecretName: dockerhub\nloglevel: 2\n")
    assert main(["config", "--check", str(path)]) == 2
    error = capsys.readouterr().err
    assert "did you mean 'aws.useSpotAdvisor'" in error
    assert "'loglevel'" in error  # a Luna chart key Gibbous has no use for is named


def test_check_notes_that_live_aws_spot_prices_override_the_ratio(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("cloudProvider: aws\nspotPriceRatioEstimate: 0.4\n")
    out = io.StringIO()
    assert main(["config", "--check", str(path)], stdout=out) == 0
    (note,) = [line for line in out.getvalue().splitlines() if line.startswith("note:")]
    assert "spotPriceRatioEstimate (0.4) is overridden on AWS" in note
    assert "live spot prices" in note
    path.write_text("cloudProvider: gcp\nspotPriceRatioEstimate: 0.4\n")
    out = io.StringIO()
    assert main(["config", "--check", str(path)], stdout=out) == 0
    assert "note:" not in out.getvalue()


def test_check_notes_that_scale_down_reads_usage_with_hot_node_mitigation(tmp_path: Path) -> None:
    # P15's settings: a Luna user expects no node in use to go; Gibbous says it reads use.
    path = tmp_path / "values.yaml"
    path.write_text(
        "cloudProvider: gcp\nmanageHighUtilization:\n  enabled: true\n"
        "scaleDown:\n  binPackNodeUtilizationThreshold: 0.0\n"
    )
    out = io.StringIO()
    assert main(["config", "--check", str(path)], stdout=out) == 0
    (note,) = [line for line in out.getvalue().splitlines() if line.startswith("note:")]
    assert "under 0.5 of its capacity" in note and "10 points below redCPU" in note
    assert "scaleDown.binPackNodeUsageThreshold: 0.0" in note
    path.write_text(
        "cloudProvider: gcp\nmanageHighUtilization:\n  enabled: true\n"
        "scaleDown:\n  binPackNodeUsageThreshold: 0.0\n"
    )
    out = io.StringIO()
    assert main(["config", "--check", str(path)], stdout=out) == 0
    assert "note:" not in out.getvalue()
