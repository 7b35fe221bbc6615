"""Finished statuses served from memory, and never stale: through a real store, and alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from store._thread import run_on_thread
from store.status_cache import StatusCache
from tests.store._events import created, exec_id, execution, log, trace, untrace, updated


@pytest.fixture
async def finished(store) -> str:
    record = execution(exec_id(1), "completed", end_time="2024-12-01T10:00:01.000Z")
    store.writer.emit(created(record))
    store.writer.emit(log(record.id, 1))
    await store.writer.idle()  # its status stored too: no commit left to come
    # Read once already, as by an earlier poll: a stored status takes room in memory from its
    # second read on (test_finished.py).
    await store.executions.status(record.id, 100)
    assert len(store.cache) == 0
    return record.id


async def test_a_finished_status_is_read_once_then_served_from_memory(store, finished):
    first = await store.executions.status(finished, 100)
    assert len(store.cache) == 1
    statements = await trace(store, reader=True)
    second = await store.executions.status(finished, 100)
    await untrace(store, reader=True)
    assert second is first
    # The follower polls the reader every 0.25 s for other servers' rows; no read of this
    # execution ran.
    assert [s for s in statements if finished in s] == []


async def test_each_logs_limit_and_include_is_its_own_entry(store, finished):
    await store.executions.status(finished, 100)
    await store.executions.status(finished, 5)
    await store.executions.status(finished, 100, ["outputs"])
    await store.executions.status(finished, 100, ("outputs", "outputs"))
    assert len(store.cache) == 3


async def test_a_running_status_is_never_cached(store):
    record = execution(exec_id(1), "running")
    store.writer.emit(created(record))
    await store.writer.flush()
    first = await store.executions.status(record.id, 100)
    second = await store.executions.status(record.id, 100)
    assert second == first and second is not first
    assert len(store.cache) == 0


async def test_an_unknown_execution_is_not_cached(store):
    assert await store.executions.status(exec_id(404), 100) is None
    assert len(store.cache) == 0


async def test_a_write_to_the_execution_drops_its_entries(store, finished):
    await store.executions.status(finished, 100)
    await store.executions.status(finished, 5)
    store.writer.emit(log(finished, 2, message="webhook delivered"))
    await store.writer.flush()
    assert len(store.cache) == 0
    status = await store.executions.status(finished, 100)
    assert b"webhook delivered" in status


async def test_a_write_to_another_execution_keeps_the_entry(store, finished):
    other = execution(exec_id(2))
    cached = await store.executions.status(finished, 100)
    store.writer.emit(created(other))
    store.writer.emit(updated(other, progress=50))
    await store.writer.flush()
    assert await store.executions.status(finished, 100) is cached


async def test_a_read_that_started_before_an_invalidation_is_not_cached(store, finished):
    entered, gate = threading.Event(), threading.Event()

    def hold(conn) -> None:
        entered.set()
        gate.wait(10)

    held = asyncio.ensure_future(run_on_thread(store._reader_db, hold))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    # Not the default 100 lines, whose stored status is read without the reader's thread.
    reading = asyncio.ensure_future(store.executions.status(finished, 50))
    await asyncio.sleep(0)  # the read has started, and waits behind the held reader
    store.writer.emit(log(finished, 2, message="late"))
    await store.writer.flush()  # commits, then invalidates
    gate.set()
    await held

    assert b"late" in await reading
    assert len(store.cache) == 0
    await store.executions.status(finished, 50)
    assert len(store.cache) == 1


# The cache alone


def test_put_then_get_by_execution_and_variant():
    cache = StatusCache()
    cache.put("e1", (100, ()), b"body", time.monotonic())
    assert cache.get("e1", (100, ())) == b"body"
    assert cache.get("e1", (5, ())) is None
    assert cache.get("e2", (100, ())) is None


def test_a_put_from_a_read_started_before_the_invalidation_is_ignored():
    cache = StatusCache()
    started = time.monotonic()
    cache.invalidate(["e1"])
    cache.put("e1", "v", b"stale", started)
    assert cache.get("e1", "v") is None
    cache.put("e1", "v", b"fresh", time.monotonic())
    assert cache.get("e1", "v") == b"fresh"


def test_invalidation_drops_every_variant_of_that_execution_only():
    cache = StatusCache()
    now = time.monotonic()
    for key in [("e1", 1), ("e1", 2), ("e2", 1)]:
        cache.put(*key, b"x", now)
    cache.invalidate(["e1"])
    assert len(cache) == 1
    assert cache.get("e2", 1) == b"x"


def test_the_least_recently_used_entries_go_first_past_the_size():
    cache = StatusCache(max_bytes=80)
    now = time.monotonic()
    for name in ("a", "b", "c", "d"):
        cache.put(name, 0, b"0123456789", now)
    cache.get("a", 0)  # now the most recently used
    for name in ("e", "f", "g", "h", "i"):
        cache.put(name, 0, b"0123456789", now)
    assert cache.get("a", 0) is not None
    assert cache.get("b", 0) is None
    assert len(cache) == 8


def test_a_body_over_an_eighth_of_the_size_is_not_kept():
    cache = StatusCache(max_bytes=80)
    cache.put("e1", 0, b"x" * 11, time.monotonic())
    assert len(cache) == 0


def test_a_slow_read_is_not_kept():
    cache = StatusCache()
    cache.put("e1", 0, b"x", time.monotonic() - 60)
    assert len(cache) == 0
