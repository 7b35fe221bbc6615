"""Opening the file: the reader and the writer process, their pragmas, durability levels,
ping and close."""

from __future__ import annotations

import os
import time

import pytest

from store import Durability, SQLiteTooOld, Store, database
from store._thread import run_on_thread
from store.writer_link import WriterProcess
from tests.store._events import read, writer_pragma

SYNCHRONOUS_NORMAL, SYNCHRONOUS_FULL = 1, 2


async def pragma(db, name: str):
    return await run_on_thread(db, lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])


async def test_the_file_is_in_wal_mode(store, path):
    assert read(path, "PRAGMA journal_mode") == [("wal",)]


async def test_both_connections_wait_for_locks_and_enforce_foreign_keys(store):
    for name, expected in [("busy_timeout", 5000), ("foreign_keys", 1), ("journal_mode", "wal")]:
        assert await writer_pragma(store, name) == expected
        assert await pragma(store._reader_db, name) == expected


@pytest.mark.parametrize(
    ("durability", "expected"),
    [(Durability.NORMAL, SYNCHRONOUS_NORMAL), (Durability.STRICT, SYNCHRONOUS_FULL)],
)
async def test_durability_chooses_synchronous_on_both_connections(path, durability, expected):
    store = await Store.open(path, durability)
    try:
        assert await writer_pragma(store, "synchronous") == expected
        assert await pragma(store._reader_db, "synchronous") == expected
    finally:
        await store.close()


async def test_the_default_durability_is_normal(store):
    assert await writer_pragma(store, "synchronous") == SYNCHRONOUS_NORMAL


async def test_open_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "blueprint.db"
    store = await Store.open(str(path))
    await store.close()
    assert path.exists()


async def test_ping_answers_while_open_and_fails_after_close(path):
    store = await Store.open(path)
    assert await store.ping() is True
    await store.close()
    assert await store.ping() is False


async def test_the_cache_gets_the_size_asked_for(path):
    store = await Store.open(path, cache_bytes=1234)
    try:
        assert store.cache._max_bytes == 1234
    finally:
        await store.close()


@pytest.mark.parametrize("fails_after_s", [0.0, 0.5])
async def test_a_failed_open_leaves_no_writer_process_behind(path, monkeypatch, fails_after_s):
    """The writer process starts while the file migrates: a migration that fails, at once or
    once the process is up, raises its own error and takes the process down with it."""
    started = []
    real_start = WriterProcess.start

    async def start(self):
        started.append(self)
        await real_start(self)

    def broken_migrate(path, durability):
        time.sleep(fails_after_s)
        raise SQLiteTooOld("this SQLite cannot run the migrations")

    monkeypatch.setattr(WriterProcess, "start", start)
    monkeypatch.setattr(database, "_migrate", broken_migrate)
    with pytest.raises(SQLiteTooOld):
        await Store.open(path)
    (writer,) = started
    if fails_after_s:
        assert writer.pid is not None  # it was spawned while the file migrated
    if writer.pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(writer.pid, 0)
