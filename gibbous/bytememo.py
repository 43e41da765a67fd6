"""A memo bounded by the bytes of what it holds, for servers whose callers choose the keys.

A memo bounded by its number of entries holds as much as callers make each entry weigh: a
caller who varies one field of the key (a 1 MiB namespace name, say) grows it by a
thousand entries of their size. Here every entry is weighed (its key and its value, by a
measure the owner gives), an entry heavier than `entry_limit` is not kept at all, and the
least recently used entries leave once the total passes `budget`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What an entry costs besides its payload: the OrderedDict slot and link, the key tuple,
# the weight kept beside the value, object headers. Measured as ~200-300 bytes on CPython
# 3.11; counted so a flood of tiny distinct keys is bounded too.
ENTRY_OVERHEAD_BYTES = 256


class ByteBudgetMemo(Generic[K, V]):
    """`get_or_compute(key, compute)`: the memoised value, or `compute()` (kept when it
    fits). Safe to share between threads: the bookkeeping is under a lock, `compute` is not."""

    def __init__(
        self,
        *,
        budget: int,
        entry_limit: int,
        weigh: Callable[[K, V], int],
    ) -> None:
        if entry_limit > budget:
            raise ValueError("an entry may not weigh more than the whole budget")
        self.budget = budget
        self.entry_limit = entry_limit
        self.weigh = weigh
        self.entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.total = 0
        self.lock = threading.Lock()

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found[0]
        value = compute()
        weight = self.weigh(key, value) + ENTRY_OVERHEAD_BYTES
        if weight > self.entry_limit:
            return value
        with self.lock:
            previous = self.entries.pop(key, None)
            if previous is not None:
                self.total -= previous[1]
            self.entries[key] = (value, weight)
            self.total += weight
            while self.total > self.budget:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.total -= dropped
        return value

    def __len__(self) -> int:
        return len(self.entries)
