"""When to decide: a batching window over the pending pods, so a burst is one decision.

A decision is due when new pending pods arrived and either none has arrived for
`scaleUpBatchIdle` (the burst is over) or the first of them arrived `scaleUpBatchMax` ago (a
steady trickle still gets decisions). Between bursts the loop re-decides at most every
`scaleUpBatchMax` while pods stay pending (back-offs expire, launches fail), and at once
when something it counted on failed (`force`). Pure; time is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A step this close to the end of a window counts as at its end: the loop steps every
# `--period` (1 s, the idle window's length), and a step that lands a hair early (float
# rounding of epoch seconds, timer jitter) must not hold the decision a whole step more.
SLACK_S = 0.05


@dataclass(frozen=True)
class Batch:
    seen: frozenset[str] = field(default_factory=frozenset)  # pods already in a decision
    first_new_at: float | None = None
    last_new_at: float | None = None
    last_decision_at: float | None = None


def batch_due(
    batch: Batch,
    pending: frozenset[str],
    *,
    now: float,
    idle_s: float,
    max_s: float,
    force: bool = False,
) -> tuple[Batch, bool]:
    """(the next window, whether to decide now). Call `decided` after deciding."""
    if not pending:
        return Batch(last_decision_at=batch.last_decision_at), False
    new = pending - batch.seen
    first, last = batch.first_new_at, batch.last_new_at
    if new:
        first = now if first is None else first
        last = now
    updated = Batch(batch.seen & pending | new, first, last, batch.last_decision_at)
    if force:
        return updated, True
    if first is not None and last is not None:
        return updated, now - last >= idle_s - SLACK_S or now - first >= max_s - SLACK_S
    due = batch.last_decision_at is None or now - batch.last_decision_at >= max_s - SLACK_S
    return updated, due


def decided(batch: Batch, now: float) -> Batch:
    return Batch(batch.seen, None, None, now)
