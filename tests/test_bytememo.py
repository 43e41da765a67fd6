"""A memo bounded by the bytes its entries weigh, not by their number (issue #32)."""

from __future__ import annotations

import functools

import pytest

from gibbous.bytememo import ENTRY_OVERHEAD_BYTES, ByteBudgetMemo


def weigh(key: str, value: str) -> int:
    return len(key) + len(value)


def test_entries_past_the_budget_leave_least_recently_used_first() -> None:
    entry = 100 + ENTRY_OVERHEAD_BYTES  # key of 50 characters + value of 50
    memo: ByteBudgetMemo[str, str] = ByteBudgetMemo(
        budget=3 * entry, entry_limit=entry, weigh=weigh
    )
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    keys = [letter * 50 for letter in "abcd"]
    for key in keys[:3]:
        memo.get_or_compute(key, functools.partial(compute, key))
    memo.get_or_compute(keys[0], lambda: compute(keys[0]))  # a is used again: b is oldest
    memo.get_or_compute(keys[3], lambda: compute(keys[3]))  # d pushes b out
    assert len(memo) == 3 and memo.total == 3 * entry
    calls.clear()
    for key in (keys[0], keys[2], keys[3]):
        assert memo.get_or_compute(key, functools.partial(compute, key)) == key.upper()
    assert calls == []
    memo.get_or_compute(keys[1], lambda: compute(keys[1]))
    assert calls == [keys[1]]


def test_an_entry_heavier_than_the_limit_is_answered_but_not_kept() -> None:
    memo: ByteBudgetMemo[str, str] = ByteBudgetMemo(budget=10_000, entry_limit=1_000, weigh=weigh)
    assert memo.get_or_compute("k" * 1_000, lambda: "v") == "v"
    assert len(memo) == 0 and memo.total == 0


def test_the_limit_cannot_exceed_the_budget() -> None:
    with pytest.raises(ValueError):
        ByteBudgetMemo(budget=10, entry_limit=11, weigh=weigh)
