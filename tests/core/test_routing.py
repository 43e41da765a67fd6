"""The Gibbous scheduler's liveness from its leader-election Lease, on a fake clock."""

from __future__ import annotations

import pytest

from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.routing import scheduler_liveness, waits_on_scheduler
from tests.factories import make_pod

NOW = epoch_seconds("2026-11-30T12:00:00Z") or 0.0


def lease(renewed: str | None, duration: object = 15) -> dict[str, object]:
    spec: dict[str, object] = {"holderIdentity": "scheduler-0", "leaseDurationSeconds": duration}
    if renewed is not None:
        spec["renewTime"] = renewed
    return {"metadata": {"name": "gibbous-scheduler"}, "spec": spec}


@pytest.mark.parametrize(
    ("record", "alive"),
    [
        (lease("2026-11-30T11:59:58.123456Z"), True),  # renewed 2 s ago
        (lease("2026-11-30T11:59:36.000000Z"), True),  # 24 s: within 15 s + 10 s margin
        (lease("2026-11-30T11:59:30.000000Z"), False),  # 30 s: stale
        (lease("2026-11-30T12:00:04.000000Z"), True),  # 4 s in the future: clock skew
        (lease("2026-11-30T11:58:00Z", duration=120), True),  # a longer lease duration
        (lease(None), False),  # never renewed
        (None, False),  # missing
        (lease("garbage"), False),
    ],
)
def test_liveness(record: dict[str, object] | None, alive: bool) -> None:
    assert scheduler_liveness(record, NOW).alive is alive


def test_a_pod_waits_on_a_scheduler_only_when_none_looked_at_it() -> None:
    pod = make_pod("orphan")
    pod["metadata"]["creationTimestamp"] = "2026-11-30T11:58:00Z"
    pod["spec"]["schedulerName"] = "gibbous-scheduler"
    assert waits_on_scheduler(pod, "gibbous-scheduler", NOW, patience_s=60)
    assert not waits_on_scheduler(pod, "gibbous-scheduler", NOW, patience_s=300)
    assert not waits_on_scheduler(pod, "default-scheduler", NOW, patience_s=60)
    tried = {**pod, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    assert not waits_on_scheduler(tried, "gibbous-scheduler", NOW, patience_s=60)
    gated = {**pod, "spec": {**pod["spec"], "schedulingGates": [{"name": "x"}]}}
    assert not waits_on_scheduler(gated, "gibbous-scheduler", NOW, patience_s=60)
