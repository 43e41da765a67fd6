"""What every cloud's live catalog shares (`CatalogFeed`): the kept catalog at a restart,
the built-in or kept data with a warning and a metric when the APIs fail, the refresh off
the loop's thread, the retry after a failure. Each cloud's own test module checks its APIs
and that its SDK's refusals count as failures; the rules themselves are checked here once,
on a cloud whose APIs are a list in the test."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from gibbous.autoscaler.cloud.catalogfeed import CatalogFeed, builtin_date
from gibbous.core.choice.catalog import InstanceType

REGION = "eu-west-1"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600.0


class Refused(Exception):
    """What the listed cloud's SDK raises when its APIs say no."""


def row(name: str, price: float, date: str = "2025-03-02") -> InstanceType:
    return InstanceType(
        cloud="aws",
        region=REGION,
        name=name,
        family=name.partition(".")[0],
        vcpu=2,
        memory_bytes=8 << 30,
        gpu_count=0,
        gpu_sku="",
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=price,
        spot_price=None,
        price_date=date,
    )


BUILTIN = [row("m5.large", 0.096)]


@dataclass(eq=False, kw_only=True)
class ListedFeed(CatalogFeed):
    """A cloud whose APIs answer `answer`, or raise `error`; counts its calls."""

    cloud: ClassVar[str] = "aws"
    api_names: ClassVar[str] = "the listed APIs"
    api_errors: ClassVar[tuple[type[Exception], ...]] = (Refused,)
    log: ClassVar[logging.Logger] = logging.getLogger("tests.catalogfeed")

    answer: list[InstanceType] = field(
        default_factory=lambda: [row("m7i.large", 0.1008), row("c7i.large", 0.0893)]
    )
    error: Exception | None = None
    calls: int = 0

    def fetch_types(self, now: float) -> list[InstanceType]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def feed(tmp_path: Path | None, clock: Clock, error: Exception | None = None) -> ListedFeed:
    return ListedFeed(
        region=REGION,
        builtin=BUILTIN,
        clock=clock,
        cache_dir=None if tmp_path is None else str(tmp_path),
        error=error,
    )


def gauges(source: CatalogFeed) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(source)
    return {
        (sample.name, sample.labels["source"]): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_the_first_start_asks_the_apis_and_keeps_the_answer_with_its_date(
    tmp_path: Path,
) -> None:
    live = feed(tmp_path, Clock())
    live.start()
    assert (live.source, live.calls) == ("api", 1)
    assert [t.name for t in live.current()[1]] == ["m7i.large", "c7i.large"]
    kept = json.loads((tmp_path / "aws-eu-west-1.json").read_text())
    assert (kept["fetchedAt"], kept["region"]) == (START, REGION)
    assert sorted(r["name"] for r in kept["types"]) == ["c7i.large", "m7i.large"]
    assert gauges(live)[("gibbous_catalog_age_seconds", "api")] == 0.0
    assert gauges(live)[("gibbous_catalog_stale_seconds", "api")] == 0.0


def test_a_restart_within_the_refresh_period_uses_the_kept_catalog_without_asking(
    tmp_path: Path,
) -> None:
    clock = Clock()
    feed(tmp_path, clock).start()
    clock.now += HOUR
    restarted = feed(tmp_path, clock, Refused("would have said no"))
    restarted.start()
    assert (restarted.source, restarted.calls) == ("kept", 0)
    assert {t.name: t.on_demand_price for t in restarted.types} == {
        "m7i.large": 0.1008,
        "c7i.large": 0.0893,
    }
    assert gauges(restarted)[("gibbous_catalog_age_seconds", "kept")] == HOUR


def test_refused_apis_leave_the_built_in_data_with_a_warning_and_both_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    live = feed(None, clock, Refused("AccessDenied"))
    with caplog.at_level(logging.WARNING, "tests.catalogfeed"):
        live.start()
    assert live.source == "built-in"
    assert [t.name for t in live.current()[1]] == ["m5.large"]
    assert "not refreshed from the listed APIs (AccessDenied)" in caplog.text
    assert "keeping the built-in catalog" in caplog.text
    clock.now += 120
    found = gauges(live)
    assert found[("gibbous_catalog_stale_seconds", "built-in")] == 120.0
    # The built-in prices' date, 2025-03-02T00:00Z, is 684 days and 8 hours before START.
    assert found[("gibbous_catalog_age_seconds", "built-in")] == (684 * 24 + 8) * HOUR + 120


def test_an_old_kept_catalog_stays_when_the_apis_cannot_be_reached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    feed(tmp_path, clock).start()
    clock.now += 7 * HOUR  # past the 6-hour refresh
    restarted = feed(tmp_path, clock, OSError("[Errno 101] Network is unreachable"))
    with caplog.at_level(logging.WARNING, "tests.catalogfeed"):
        restarted.start()
    assert (restarted.source, restarted.calls) == ("kept", 1)
    assert len(restarted.types) == 2
    assert restarted.stale_since == clock.now
    assert "keeping the kept catalog (age 7.0 h)" in caplog.text


def test_the_refresh_runs_beside_the_loop_when_due_and_a_failure_waits_for_the_retry(
    tmp_path: Path,
) -> None:
    clock = Clock()
    live = feed(tmp_path, clock)
    live.start()
    version, _ = live.current()
    clock.now += 6 * HOUR - 1
    live.current()
    live.wait(10)
    assert live.calls == 1  # not due yet
    clock.now += 1
    assert live.current()[0] == version  # the answer at once, the refresh beside it
    live.wait(10)
    assert (live.calls, live.current()[0]) == (2, version + 1)

    live.error = Refused("Throttling")
    clock.now += 6 * HOUR
    live.current()
    live.wait(10)
    assert (live.calls, live.stale_since) == (3, clock.now)
    clock.now += 599  # the retry is 10 minutes after a failure, not the 6-hour period
    live.current()
    live.wait(10)
    assert live.calls == 3
    live.error = None
    clock.now += 1
    live.current()
    live.wait(10)
    assert (live.calls, live.stale_since, live.source) == (4, None, "api")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"fetchedAt": START, "region": "us-east-1", "types": []}),
    ],
    ids=["not-json", "another-region"],
)
def test_an_unreadable_kept_catalog_is_not_used_and_the_apis_are_asked(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "aws-eu-west-1.json").write_text(content)
    live = feed(tmp_path, Clock())
    with caplog.at_level(logging.WARNING, "tests.catalogfeed"):
        live.start()
    assert (live.source, live.calls) == ("api", 1)
    assert "kept AWS catalog" in caplog.text and "not used" in caplog.text


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    live = feed(blocker / "cache", Clock())  # a directory under a file cannot be made
    with caplog.at_level(logging.WARNING, "tests.catalogfeed"):
        live.start()
    assert live.source == "api"
    assert "catalog not kept in" in caplog.text


def test_the_built_in_date_is_the_newest_full_date_else_the_first_day_of_the_year() -> None:
    def epoch(day: str) -> float:
        # Days since 1970-01-01 by hand: 2025-01-01 is 20,089 days after it.
        offsets = {"2025-01-01": 20_089, "2025-03-02": 20_089 + 31 + 28 + 1}
        return offsets[day] * 86_400.0

    assert builtin_date([row("a", 1, "2025"), row("b", 1, "2025-03-02")]) == epoch("2025-03-02")
    assert builtin_date([row("a", 1, "2025")]) == epoch("2025-01-01")
    assert builtin_date([row("a", 1, "")]) is None
    assert builtin_date([row("a", 1, "March 2025")]) is None
