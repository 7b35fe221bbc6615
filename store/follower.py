"""Following the log: new rows, in order, to whoever listens, however they were written.

One loop per server reads the rows after the last one it saw: at once when this server commits,
and every `poll_seconds` for what other servers sharing the file wrote. It hands the rows to the
subscriptions whose filter wants them, and tells the status cache which executions changed, so
a cached status never outlives a change made by another server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import aiosqlite
import msgspec

from store import queries

log = logging.getLogger("blueprint.store")

PAGE = 1000
_ALL_AFTER = "SELECT gid, execution_id, entry FROM logs WHERE gid > ? ORDER BY gid LIMIT ?"
_ONE_AFTER = (
    "SELECT gid, execution_id, entry FROM logs WHERE execution_id = ? AND gid > ?"
    " ORDER BY seq LIMIT ?"
)


class LogRow(msgspec.Struct, frozen=True):
    gid: int
    execution_id: str
    entry: bytes


class Subscription:
    """The rows one listener wants, queued until it takes them. A listener that falls more
    than `capacity` rows behind is cut off (it can resume from its last event id)."""

    def __init__(self, wants: Callable[[str], bool] | None, capacity: int) -> None:
        self.wants = wants
        self._rows: asyncio.Queue[LogRow | None] = asyncio.Queue(capacity)
        self.overflowed = False

    def offer(self, row: LogRow) -> None:
        if self.overflowed:
            return
        try:
            self._rows.put_nowait(row)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self._rows.get_nowait()
            self._rows.put_nowait(None)

    async def next(self) -> list[LogRow]:
        """At least one row (waiting for it), and whatever else is queued."""
        first = await self._rows.get()
        rows = [first]
        while not self._rows.empty():
            rows.append(self._rows.get_nowait())
        if any(row is None for row in rows):
            raise SubscriberTooSlow
        return rows  # type: ignore[return-value]


class SubscriberTooSlow(Exception):
    pass


class LogFollower:
    def __init__(
        self,
        db: aiosqlite.Connection,
        changed: Callable[[Iterable[str]], None],
        cleared: Callable[[], None],
        poll_seconds: float = 0.25,
    ) -> None:
        self._db = db
        self._changed = changed
        self._cleared = cleared
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._subscriptions: set[Subscription] = set()
        self._position = 0
        self._generation: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._own: list[tuple[int, int]] = []  #: log number ranges this server wrote

    @property
    def position(self) -> int:
        """The global sequence of the last row seen."""
        return self._position

    async def start(self) -> None:
        self._position = await self.last_gid()
        self._generation = await self._clear_generation()
        self._task = asyncio.ensure_future(self._follow_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self, gids: tuple[int, int] | None = None) -> None:
        """This server committed (log numbers `gids`): look now rather than at the next poll.
        Its own rows need no cache invalidation: the writer did that at commit."""
        if gids is not None:
            self._own.append(gids)
        self._wake.set()

    def subscribe(
        self, wants: Callable[[str], bool] | None = None, capacity: int = 10_000
    ) -> Subscription:
        subscription = Subscription(wants, capacity)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def last_gid(self) -> int:
        rows = await self._db.execute_fetchall(queries.LAST_GID)
        return int(next(iter(rows))[0])

    async def rows_after(
        self, gid: int, execution_id: str | None = None, limit: int = PAGE
    ) -> list[LogRow]:
        """Rows after `gid`, of one execution or all, oldest first."""
        if execution_id is None:
            rows = await self._db.execute_fetchall(_ALL_AFTER, (gid, limit))
        else:
            rows = await self._db.execute_fetchall(_ONE_AFTER, (execution_id, gid, limit))
        return [LogRow(row[0], row[1], row[2]) for row in rows]

    async def _follow_forever(self) -> None:
        while True:
            polled = False
            try:
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                polled = True
            self._wake.clear()
            if not polled and self._skipped_own():
                continue
            try:
                await self._catch_up()
            except Exception:
                log.exception("following the log failed; trying again")

    def _skipped_own(self) -> bool:
        """With nobody subscribed, rows this server wrote need no reading: it invalidated
        their executions' statuses when it committed them. If its own rows are all that came
        since the last look, move past them without a query. Reading them cost the engine
        the reader thread's turns at the GIL after every commit; other servers' rows, and a
        history cleared elsewhere, are found at the next poll as before."""
        if self._subscriptions or not self._own:
            return False
        moved = True
        while moved:
            moved = False
            for first, last in self._own:
                if first <= self._position + 1 <= last:
                    self._position = last
                    moved = True
        self._own = [(first, last) for first, last in self._own if last > self._position]
        return not self._own

    async def _catch_up(self) -> None:
        generation = await self._clear_generation()
        if generation != self._generation:
            self._generation = generation
            self._cleared()  # history was deleted (batch.clearAll), perhaps by another server
        while True:
            rows = await self.rows_after(self._position)
            if not rows:
                return
            self._position = rows[-1].gid
            self._changed({row.execution_id for row in rows if not self._is_own(row.gid)})
            self._own = [(first, last) for first, last in self._own if last > self._position]
            for subscription in list(self._subscriptions):
                for row in rows:
                    if subscription.wants is None or subscription.wants(row.execution_id):
                        subscription.offer(row)
            if len(rows) < PAGE:
                return

    def _is_own(self, gid: int) -> bool:
        return any(first <= gid <= last for first, last in self._own)

    async def _clear_generation(self) -> int:
        rows = await self._db.execute_fetchall("SELECT value FROM meta WHERE key = 'cleared'")
        found = next(iter(rows), None)
        return 0 if found is None else int(found[0])
