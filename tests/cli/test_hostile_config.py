"""`gibbous config --check` on hostile configuration files (issue #32, second pass).

Every file here must be refused as a configuration error (exit 2) whose message names
the offending key or limit, never with a traceback, and in bounded time and memory.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from gibbous.cli import main

# Loose bounds: the attack took 30 s and 2.9 GB; a refusal takes milliseconds and kilobytes.
# CPU time, not wall time: a loaded machine stretches the wall clock, not the work done.
_SECONDS = 5.0
_PEAK_BYTES = 64 * 1024 * 1024


def _billion_laughs(list_key: str) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        below = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{below}]")
    lines.append(f"{list_key}: *a9")
    return "\n".join(lines) + "\n"


def _check(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "hostile.yaml"
    path.write_text(content, encoding="utf-8")
    tracemalloc.start()
    started = time.process_time()
    try:
        code = main(["config", "--check", str(path)], stdout=io.StringIO())
    finally:
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < _SECONDS
    assert peak < _PEAK_BYTES
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (_billion_laughs("estimateOnlyNamespaces"), ["100000"]),
        (_billion_laughs("zones"), ["100000"]),
        ("zones: " + "[" * 1000 + "]" * 1000 + "\n", ["64 levels"]),
        ("zones:\n" + "".join("  " * i + "- \n" for i in range(1, 1000)), ["64 levels"]),
        ("z: &r [*r]\nzones: *r\n", ["recursive"]),
        ("zones: [a]\nregion: " + "x" * (1024 * 1024) + "\n", ["1048576 bytes"]),
    ],
    ids=["laughs-namespaces", "laughs-zones", "flow-depth", "block-depth", "recursive", "size"],
)
def test_yaml_bombs_are_configuration_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragments: list[str]
) -> None:
    code, err = _check(tmp_path, content, capsys)
    assert code == 2
    for fragment in fragments:
        assert fragment in err


_FLOAT_KEYS = ["manageHighUtilization.redCPU", "maxClusterCostPerHour", "aws.maxSpotPriceRatio"]
_DURATION_KEYS = ["backoffDuration", "nodeTTL", "orphanGracePeriod", "scaleUpTimeout"]


def _nested(key: str, value: str) -> str:
    head, dot, tail = key.rpartition(".")
    return f"{head}:\n  {tail}: {value}\n" if dot else f"{key}: {value}\n"


@pytest.mark.parametrize("key", _FLOAT_KEYS + _DURATION_KEYS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1" + "0" * 400, "1" + "0" * 5000])
def test_non_finite_and_huge_numbers_name_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    code, err = _check(tmp_path, _nested(key, value), capsys)
    assert code == 2
    assert key.rpartition(".")[2] in err


@pytest.mark.parametrize("key", _DURATION_KEYS)
@pytest.mark.parametrize("value", ['"' + "9" * 400 + 's"', '"1e9s"', '"٣s"', '"99999999999d"'])
def test_duration_text_out_of_bounds_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    code, err = _check(tmp_path, _nested(key, value), capsys)
    assert code == 2
    assert f"{key}:" in err


@pytest.mark.parametrize("key", ["registrationTimeout", "orphanGracePeriod", "backoffDuration"])
@pytest.mark.parametrize("value", ['""', '"  "'])
def test_empty_duration_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    code, err = _check(tmp_path, f"{key}: {value}\n", capsys)
    assert code == 2
    assert f"{key}: empty duration" in err


def test_null_duration_is_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _check(tmp_path, "registrationTimeout:\nbackoffDuration: null\n", capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("estimateOnlyNamespaces: [null]\n", "estimateOnlyNamespaces[0]: expected a string"),
        ("managedNamespaces: [a, 7]\n", "managedNamespaces[1]: expected a string"),
        ("zones: [a, b, [c]]\n", "zones[2]: expected a string"),
        ("region: [null]\n", "region: expected text"),
        ("schedulerName: {a: b}\n", "schedulerName: expected text"),
    ],
)
def test_non_string_items_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    code, err = _check(tmp_path, content, capsys)
    assert code == 2
    assert fragment in err


@pytest.mark.parametrize(
    "key",
    [
        "nvidiaGPUTimeSlices",
        "binPackingNodeGPU",
        "binSelectPodGPUThreshold",
        "clusterGPULimit",
        "maxNodes",
        "scaleDown.maxDrainingNodes",
        "azure.maxPods",
        "gcp.operationLimit",
        "nodeOverhead.maxPods",
        "aws.maxSpotInterruptBucket",
        "manageHighUtilization.greenCPU",
        "scaleDown.maxDrainingPercent",
        "maxClusterCostPerHour",
    ],
)
@pytest.mark.parametrize("value", ['"٣"', '"1_0"', '"²"'])
def test_numbers_are_ascii_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    code, err = _check(tmp_path, _nested(key, value), capsys)
    assert code == 2
    assert f"{key}: invalid" in err


def test_all_problems_of_a_file_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = (
        'nvidiaGPUTimeSlices: "٣"\nbackoffDuration: .nan\nzones: [null]\nregistrationTimeout: ""\n'
    )
    code, err = _check(tmp_path, content, capsys)
    assert code == 2
    for key in ("nvidiaGPUTimeSlices", "backoffDuration", "zones[0]", "registrationTimeout"):
        assert key in err


def test_ascii_values_still_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content = (
        "nvidiaGPUTimeSlices: '3'\nmaxNodes: ' 12 '\nbackoffDuration: 1h30m\nnodeTTL: 7d\n"
        "maxClusterCostPerHour: '2.5'\nmanageHighUtilization:\n  redCPU: 9.5e1\n"
        "zones: &ns [a, b]\nestimateOnlyNamespaces: *ns\n"
    )
    code, err = _check(tmp_path, content, capsys)
    assert code == 0, err


def test_real_process_refuses_a_billion_laughs_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(_billion_laughs("estimateOnlyNamespaces"), encoding="utf-8")
    limit = 1024 * 1024 * 1024

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "gibbous", "config", "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap_memory,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "100000" in done.stderr
