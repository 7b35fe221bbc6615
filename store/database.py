"""Opening the SQLite file: two connections (one writer, one reader), pragmas and migrations.

WAL lets the reader see the last commit while the writer works. `synchronous=NORMAL` (the
default durability) survives a crash of the server process, which is what SIGKILL does, but
the newest commits can be lost if the machine itself loses power; `synchronous=FULL`
(`--durability strict`) survives that too, at the cost of an fsync per commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

import aiosqlite

from store import migrations
from store._thread import run_on_thread
from store.batches import Batches
from store.blueprints import Blueprints
from store.controls import Controls
from store.follower import LogFollower
from store.idempotency import IdempotencyKeys
from store.keys import KeyRing
from store.owners import Owners
from store.reads import MMAP_PRAGMA, ExecutionReads, StoredStatuses
from store.resume import LogResumeSource
from store.status_cache import StatusCache
from store.webhooks import Deliveries
from store.writer import Committed, EventWriter

log = logging.getLogger("blueprint.store")


class Durability(StrEnum):
    NORMAL = "normal"  #: synchronous=NORMAL: survives a process crash
    STRICT = "strict"  #: synchronous=FULL: survives power loss too


KEY_USES_SECONDS = 10.0  #: how often `keys list` learns when keys were last used

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
    MMAP_PRAGMA,
)


class Store:
    """The execution log: `writer` is the engine's sink, `executions` and `blueprints` read it."""

    def __init__(
        self,
        path: str,
        writer_db: aiosqlite.Connection,
        reader_db: aiosqlite.Connection,
        cache: StatusCache,
        stored: StoredStatuses | None = None,
    ) -> None:
        self.path = path
        self._stored = stored
        self._writer_db = writer_db
        self._reader_db = reader_db
        self.cache = cache
        self.follower = LogFollower(reader_db, changed=self._changed, cleared=cache.clear)
        self.writer = EventWriter(writer_db, on_commit=self._committed)
        self.executions = ExecutionReads(reader_db, cache, stored)
        self.blueprints = Blueprints(self.writer, reader_db)
        self.resume_source = LogResumeSource(reader_db)
        self.controls = Controls(self.writer, reader_db)
        self.idempotency = IdempotencyKeys(self.writer)
        self.batches = Batches(self.writer, reader_db)
        self.deliveries = Deliveries(self.writer, reader_db, cache.invalidate)
        self.owners = Owners(self.writer, path)
        self.keys = KeyRing(path, self.writer)
        self._key_uses_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        durability: Durability = Durability.NORMAL,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> Store:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer_db = await aiosqlite.connect(path, isolation_level=None)
        try:
            # Before any pragma: a file from a newer server is refused untouched.
            await run_on_thread(writer_db, migrations.check_version, os.fspath(path))
            await _configure(writer_db, durability)
            await run_on_thread(writer_db, migrations.migrate, os.fspath(path))
            reader_db = await _connect(path, durability)
        except BaseException:
            await writer_db.close()
            raise
        await reader_db.create_function("casefold", 1, str.casefold, deterministic=True)
        # A second ":memory:" connection would be another, empty, database.
        stored = StoredStatuses(os.fspath(path)) if path != ":memory:" else None
        store = cls(os.fspath(path), writer_db, reader_db, StatusCache(cache_bytes), stored)
        store.writer.start()
        await store.follower.start()
        store.keys.load()
        store._key_uses_task = asyncio.ensure_future(store._write_key_uses_forever())
        return store

    async def _write_key_uses_forever(self) -> None:
        while True:
            await asyncio.sleep(KEY_USES_SECONDS)
            try:
                await self.keys.write_uses()
            except Exception:
                log.exception("recording when API keys were last used failed")

    def _committed(self, committed: Committed) -> None:
        self._changed(committed.executions)
        self.follower.notify(committed.gids)

    def _changed(self, execution_ids: Iterable[str]) -> None:
        """These executions were written to, here or by another server sharing the file."""
        if self._stored is not None:
            self._stored.refresh()
        self.cache.invalidate(execution_ids)

    async def ping(self) -> bool:
        try:
            await self._reader_db.execute_fetchall("SELECT 1")
        except (sqlite3.Error, ValueError):
            return False
        return True

    async def close(self) -> None:
        """Write everything queued, then close both connections."""
        try:
            if self._key_uses_task is not None:
                self._key_uses_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._key_uses_task
                with contextlib.suppress(Exception):
                    await self.keys.write_uses()
            await self.follower.close()
            await self.writer.close()
        finally:
            if self._stored is not None:
                self._stored.close()
            await self._reader_db.close()
            await self._writer_db.close()


async def _connect(path: str, durability: Durability) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await _configure(db, durability)
    except BaseException:
        await db.close()
        raise
    return db


async def _configure(db: aiosqlite.Connection, durability: Durability) -> None:
    for pragma in _PRAGMAS:
        await db.execute(pragma)
    synchronous = "FULL" if durability is Durability.STRICT else "NORMAL"
    await db.execute(f"PRAGMA synchronous = {synchronous}")
