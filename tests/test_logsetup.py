"""The servers' logs in files for a collector sidecar (P18), rotated, as text or JSON."""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from gibbous.core.errors import ConfigError
from gibbous.core.settings.loader import build_config
from gibbous.core.settings.options.logs import LoggingConfig
from gibbous.logsetup import configure_logging
from gibbous.serving import Listen, server_config


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_lines_land_in_the_components_file_and_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "logs"  # made when missing: an emptyDir mount exists, a path may not
    configure_logging("info", LoggingConfig(directory=str(directory)), "autoscaler")
    logging.getLogger("gibbous.test").info("launched %s", "i-0abc")
    logging.getLogger("gibbous.test").debug("not at info")
    _flush()
    written = (directory / "gibbous-autoscaler.log").read_text()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO gibbous.test: launched i-0abc\n", written
    )
    assert "launched i-0abc" in capsys.readouterr().err


def test_without_a_directory_no_file_is_written(tmp_path: Path) -> None:
    configure_logging("info", LoggingConfig(), "webhook")
    logging.getLogger("gibbous.test").info("hello")
    assert [type(h) for h in logging.getLogger().handlers] == [logging.StreamHandler]


def test_the_file_rotates_at_the_size_bound_keeping_max_files(tmp_path: Path) -> None:
    # Each text line: 23 (asctime) + " INFO t: " (9) + 200 + newline = 233 bytes. With a
    # 1000-byte bound a file takes 4 lines (932); the 5th would make 1165, so it rotates.
    settings = LoggingConfig(directory=str(tmp_path), max_file_bytes=1000, max_files=1)
    configure_logging("info", settings, "extender")
    for number in range(1, 11):
        logging.getLogger("t").info(f"line-{number:02d}".ljust(200, "x"))
    _flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gibbous-extender.log",
        "gibbous-extender.log.1",
    ]
    # lines 1-4 rotated to .1 and then dropped (one backup kept); 5-8 in .1; 9-10 current
    backup = (tmp_path / "gibbous-extender.log.1").read_text().splitlines()
    current = (tmp_path / "gibbous-extender.log").read_text().splitlines()
    assert [line.split(": ")[1][:7] for line in backup] == [f"line-0{n}" for n in (5, 6, 7, 8)]
    assert [line.split(": ")[1][:7] for line in current] == ["line-09", "line-10"]
    assert (tmp_path / "gibbous-extender.log.1").stat().st_size == 4 * 233


def test_json_lines_carry_the_documented_fields(tmp_path: Path) -> None:
    configure_logging("info", LoggingConfig(directory=str(tmp_path), format="json"), "webhook")
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    log = logging.getLogger("gibbous.webhook.test")
    log.warning("pod %s: %s", "default/web-1", "no toleration", extra={"node": "n1", "count": 3})
    try:
        raise ValueError("bad quantity")
    except ValueError:
        log.exception("could not read")
    after = datetime.datetime.now(datetime.UTC)
    _flush()
    first, second = [
        json.loads(line) for line in (tmp_path / "gibbous-webhook.log").read_text().splitlines()
    ]
    assert set(first) == {"time", "level", "logger", "message", "node", "count"}
    assert first["level"] == "WARNING"
    assert first["logger"] == "gibbous.webhook.test"
    assert first["message"] == "pod default/web-1: no toleration"
    assert (first["node"], first["count"]) == ("n1", 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    stamp = datetime.datetime.fromisoformat(first["time"])
    assert before <= stamp <= after
    assert second["level"] == "ERROR"
    assert "ValueError: bad quantity" in second["exception"]


def test_json_writes_an_extra_json_cannot_hold_as_text(tmp_path: Path) -> None:
    configure_logging("info", LoggingConfig(directory=str(tmp_path), format="json"), "webhook")
    logging.getLogger("t").info("x", extra={"where": Path("/etc/gibbous")})
    _flush()
    line = json.loads((tmp_path / "gibbous-webhook.log").read_text())
    assert line["where"] == "/etc/gibbous"


def test_uvicorns_lines_reach_the_file(tmp_path: Path) -> None:
    configure_logging("info", LoggingConfig(directory=str(tmp_path)), "autoscaler")
    server_config(Starlette(), Listen("127.0.0.1", 0), log_level="info")
    logging.getLogger("uvicorn.error").info("Uvicorn running")
    _flush()
    assert (
        "INFO uvicorn.error: Uvicorn running" in (tmp_path / "gibbous-autoscaler.log").read_text()
    )


def test_an_unwritable_directory_is_a_configuration_error(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    with pytest.raises(ConfigError, match=r"logging\.directory"):
        configure_logging("info", LoggingConfig(directory=str(occupied)), "autoscaler")


def test_the_options_read_from_a_values_file() -> None:
    config = build_config(
        {"logging": {"directory": "/logs", "format": "JSON", "maxFileSize": "5Mi", "maxFiles": 3}}
    )
    assert config.logging == LoggingConfig("/logs", "json", 5 * 2**20, 3)
    with pytest.raises(ConfigError, match=r"logging\.maxFileSize must be at least 64Ki"):
        build_config({"logging": {"maxFileSize": "1Ki"}})
    with pytest.raises(ConfigError, match=r"logging\.format"):
        build_config({"logging": {"format": "logfmt"}})
