"""After a burst of large extender requests, their memory is handed back once, when no
large request has followed for a while (bench.hostile measured 115-200 MB kept after a
node-list flood before this)."""

from __future__ import annotations

import asyncio

import pytest

from gibbous.extender import app


def test_memory_is_released_once_after_a_burst_and_not_while_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases: list[int] = []
    large = app.LargeRequests(2, idle_s=0.05)
    monkeypatch.setattr(app, "release_memory", lambda: releases.append(large.in_flight))

    async def burst() -> None:
        assert large.take() and large.take()
        assert not large.take()  # both workers taken: a third caller gets a 503
        large.release()
        await asyncio.sleep(0.1)
        assert releases == []  # one still in flight
        large.release()
        assert large.take()  # another large request within idle_s
        await asyncio.sleep(0.02)
        large.release()
        await asyncio.sleep(0.2)

    asyncio.run(burst())
    large.pool.shutdown(wait=True)
    assert releases == [0]  # once, for the burst that really ended


def test_release_memory_runs_where_the_c_library_has_no_malloc_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "_TRIM", None)
    app.release_memory()  # a full collection only; no error
