"""Opening the SQLite file: migrations, the reader connection, and the writer process.

The pragmas every connection takes, and what the durability settings mean: store/pragmas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import aiosqlite

from store import migrations
from store._thread import run_on_thread
from store.batches import Batches
from store.blueprints import Blueprints
from store.controls import Controls
from store.errors import StoreError
from store.follower import LogFollower
from store.groups import Committed
from store.idempotency import IdempotencyKeys
from store.keys import KeyRing
from store.owners import Owners
from store.pragmas import Durability, configure, connect
from store.reads import ExecutionReads, StoredStatuses
from store.resume import LogResumeSource
from store.status_cache import StatusCache
from store.webhooks import Deliveries
from store.writer import EventWriter
from store.writer_link import WriterProcess

log = logging.getLogger("blueprint.store")


KEY_USES_SECONDS = 10.0  #: how often `keys list` learns when keys were last used


class Store:
    """The execution log: `writer` is the engine's sink, `executions` and `blueprints` read it."""

    def __init__(
        self,
        path: str,
        writer_process: WriterProcess,
        reader_db: aiosqlite.Connection,
        cache: StatusCache,
        stored: StoredStatuses,
    ) -> None:
        self.path = path
        self._stored = stored
        self._reader_db = reader_db
        self.cache = cache
        self.follower = LogFollower(reader_db, changed=self._changed, cleared=cache.clear)
        self.writer = EventWriter(writer_process, on_commit=self._committed)
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
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file:"):
            raise StoreError(
                f"the execution log needs a file path, not {path!r}: the writer process and "
                "the server's reader must open the same file"
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_check_version, path)
        # Python takes a while to start: the writer process does it while the file migrates.
        writer_process = WriterProcess(path, durability)
        starting = asyncio.ensure_future(writer_process.start())
        reader_db = None
        try:
            await asyncio.to_thread(_migrate, path, durability)
            reader_db = await _connect(path, durability)
            await reader_db.create_function("casefold", 1, str.casefold, deterministic=True)
            cache, stored = StatusCache(cache_bytes), StoredStatuses(path)
            store = cls(path, writer_process, reader_db, cache, stored)
            try:
                await store.writer.start()
            except BaseException:
                stored.close()
                raise
        except BaseException:
            if not starting.done():
                starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            await writer_process.close()
            if reader_db is not None:
                await reader_db.close()
            raise
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
        self._stored.refresh()
        self.cache.invalidate(execution_ids)

    async def ping(self) -> bool:
        try:
            await self._reader_db.execute_fetchall("SELECT 1")
        except (sqlite3.Error, ValueError):
            return False
        return True

    async def close(self) -> None:
        """Write everything queued, then stop the writer process and close the reader."""
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
            self._stored.close()
            await self._reader_db.close()


async def _connect(path: str, durability: Durability) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await run_on_thread(db, configure, durability)
    except BaseException:
        await db.close()
        raise
    return db


def _check_version(path: str) -> None:
    """Before any pragma, and before the writer process opens it: a file from a newer server
    is refused untouched."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrations.check_version(conn, path)
    finally:
        conn.close()


def _migrate(path: str, durability: Durability) -> None:
    conn = connect(path, durability)
    try:
        migrations.migrate(conn, path)
    finally:
        conn.close()
