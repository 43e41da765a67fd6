"""The batching window: a burst is one decision, a trickle still gets decisions."""

from __future__ import annotations

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
