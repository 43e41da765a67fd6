"""The batching window: a burst is one decision, a trickle still gets decisions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gibbous.core.planning.batching import Batch, batch_due, decided


def step(batch: Batch, pods: set[str], now: float, force: bool = False) -> tuple[Batch, bool]:
    return batch_due(batch, frozenset(pods), now=now, idle_s=1.0, max_s=10.0, force=force)


def test_a_burst_waits_for_one_idle_second() -> None:
    batch, due = step(Batch(), {"a"}, 0.0)
    assert not due
    batch, due = step(batch, {"a", "b"}, 0.5)
    assert not due
    batch, due = step(batch, {"a", "b"}, 1.4)
    assert not due
    batch, due = step(batch, {"a", "b"}, 1.5)
    assert due
    batch = decided(batch, 1.5)
    batch, due = step(batch, {"a", "b"}, 2.0)
    assert not due  # nothing new, last decision 0.5s ago


def test_a_trickle_is_decided_at_the_max_window() -> None:
    batch, due = Batch(), False
    t = 0.0
    pods: set[str] = set()
    while not due:
        pods.add(f"p{t}")
        batch, due = step(batch, pods, t)
        t += 0.5
    assert t - 0.5 == 10.0


def test_pending_pods_are_reconsidered_every_max_window_and_at_once_when_forced() -> None:
    batch, _ = step(Batch(), {"a"}, 0.0)
    batch, due = step(batch, {"a"}, 1.0)
    assert due
    batch = decided(batch, 1.0)
    assert not step(batch, {"a"}, 5.0)[1]
    assert step(batch, {"a"}, 5.0, force=True)[1]
    assert step(batch, {"a"}, 11.0)[1]


def test_no_pending_pods_resets_the_window() -> None:
    batch, _ = step(Batch(), {"a"}, 0.0)
    batch, due = step(batch, set(), 0.5)
    assert not due and batch.seen == frozenset() and batch.first_new_at is None


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(1, 30), min_size=1, max_size=30))
def test_decisions_follow_karpenters_batcher_at_each_step(gaps: list[int]) -> None:
    # Karpenter's batcher (pkg/controllers/provisioning/batcher.go): the window opens with
    # the first new pod, each new pod restarts the 1 s idle timer, and it ends when the idle
    # timer or the 10 s maximum runs out. Pods arrive `gap` tenths of a second apart and
    # the loop steps every 0.1 s: a decision is due exactly at the first step at which one
    # of the two has run out, never before.
    arrivals, t = [], 0
    for gap in gaps:
        t += gap
        arrivals.append(t)  # in tenths of a second
    batch, pods = Batch(), set[str]()
    first = last = None
    for tenth in range(arrivals[-1] + 120):
        arriving = [a for a in arrivals if a == tenth]
        for a in arriving:
            pods.add(f"p{a}")
        if arriving:
            first = tenth if first is None else first
            last = tenth
        batch, due = step(batch, pods, tenth / 10)
        if first is not None and last is not None:
            assert due == (tenth - last >= 10 or tenth - first >= 100)
        if due:
            batch = decided(batch, tenth / 10)
            first = last = None


def test_a_step_one_idle_second_later_decides_whatever_the_float_rounding() -> None:
    # 1.4 - 0.4 is 0.9999999999999999 in binary floating point; the pod seen at 0.4 is
    # decided at the step one idle second later, not a step after it.
    batch, due = step(Batch(), {"a"}, 0.4)
    assert not due
    batch, due = step(batch, {"a"}, 1.4)
    assert due
