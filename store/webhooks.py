"""The engine's DeliveryLog: webhook deliveries kept in the log until delivered or given up."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite
import msgspec

from engine.clock import now_iso, now_ms
from engine.ports import Delivery
from engine.records import LogEntry, LogLevel
from store import queries
from store.finished import rebuild_stored
from store.writer import EventWriter

_encode = msgspec.json.Encoder().encode


class Deliveries:
    def __init__(
        self,
        writer: EventWriter,
        reader: aiosqlite.Connection,
        changed: Callable[[Iterable[str]], None],
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._changed = changed  #: told which executions a write changed (the status cache)

    async def due(self, owner: str | None = None, limit: int = 100) -> list[Delivery]:
        rows = await self._reader.execute_fetchall(
            "SELECT d.id, d.execution_id, d.event, d.url, d.secret, d.body, d.attempts"
            " FROM webhook_deliveries d JOIN executions e ON e.id = d.execution_id"
            " WHERE d.status = 'pending' AND d.next_at <= ?1 AND (?2 IS NULL OR e.owner = ?2)"
            " ORDER BY d.next_at LIMIT ?3",
            (now_ms(), owner, limit),
        )
        return [
            Delivery(
                id=r[0],
                execution_id=r[1],
                event=r[2],
                url=r[3],
                secret=r[4],
                body=r[5],
                attempts=r[6],
            )
            for r in rows
        ]

    async def attempted(
        self, delivery_id: int, attempts: int, status: str, error: str | None, next_at: int
    ) -> None:
        finished = None if status == "pending" else now_iso()
        await self._writer.write(
            _attempted, delivery_id, attempts, status, error, next_at, finished
        )

    async def append_log(
        self, execution_id: str, level: LogLevel, message: str, data: Any = None
    ) -> None:
        """A log line for an execution no engine holds any more (it has finished)."""
        await self._writer.write(_append_log, execution_id, level, message, data)
        self._changed([execution_id])


def _attempted(
    conn: sqlite3.Connection,
    delivery_id: int,
    attempts: int,
    status: str,
    error: str | None,
    next_at: int,
    finished: str | None,
) -> None:
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = ?, status = ?, last_error = ?, next_at = ?,"
        " finished_at = ? WHERE id = ?",
        (attempts, status, error, next_at, finished, delivery_id),
    )


def _append_log(
    conn: sqlite3.Connection, execution_id: str, level: LogLevel, message: str, data: Any
) -> None:
    # The writer holds the write lock: the numbers taken here cannot be taken twice.
    seq = conn.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM logs WHERE execution_id = ?", (execution_id,)
    ).fetchone()[0]
    gid = queries.take_gids(conn, 1) + 1
    entry = LogEntry(
        seq=seq, timestamp=now_iso(), level=level, node_id=None, message=message, data=data
    )
    conn.execute(queries.INSERT_LOG, (execution_id, seq, gid, level.rank, None, _encode(entry)))
    rebuild_stored(conn, [execution_id])
