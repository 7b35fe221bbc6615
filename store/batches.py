"""Batches: their rows, items, counts, and clearing finished history."""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
import msgspec

from engine.records import FINAL_EXECUTION_STATUSES, Execution
from store import queries
from store._batch_counts import refresh_batch
from store._thread import read_on_thread
from store.writer import EventWriter

_execution = msgspec.json.Decoder(Execution)
_ACTIVE = ("queued", "running", "paused")


class BatchItem(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    execution_id: str
    blueprint_id: str | None
    workflow_path: str | None


class BatchRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source_type: str
    folder_path: str | None
    concurrency: int
    total: int
    status: str
    completed: int
    failed: int
    running: int
    queued: int
    created_at: str
    ended_at: str | None


class BatchItemStatus(msgspec.Struct, frozen=True, kw_only=True):
    item: BatchItem
    status: str
    current_node_id: str | None


class Cleared(msgspec.Struct, frozen=True, kw_only=True):
    batches: int
    executions: int
    kept_active: int
    execution_ids: list[str]


_COLUMNS = (
    "id, source_type, folder_path, concurrency, total, status, completed, failed, running,"
    " queued, created_at, ended_at"
)


class Batches:
    def __init__(self, writer: EventWriter, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader

    async def create(self, batch: BatchRow, items: list[BatchItem]) -> None:
        await self._writer.write(_create, batch, items)

    async def get(self, batch_id: str) -> tuple[BatchRow, list[BatchItemStatus]] | None:
        return await read_on_thread(self._reader, _get, batch_id)

    async def row(self, batch_id: str) -> BatchRow | None:
        """The batch alone, without its items (one row, however big the batch)."""
        return await read_on_thread(self._reader, _row, batch_id)

    async def page(self, status: str | None, limit: int, offset: int) -> tuple[int, list[BatchRow]]:
        return await read_on_thread(self._reader, _list, status, limit, offset)

    async def active_executions(self, batch_id: str | None) -> list[tuple[str, str, str | None]]:
        """(execution id, status, batch id) of the active executions, of one batch or all."""
        where = " AND batch_id = ?" if batch_id is not None else ""
        args = (batch_id,) if batch_id is not None else ()
        marks = ", ".join(f"'{s}'" for s in _ACTIVE)
        rows = await self._reader.execute_fetchall(
            f"SELECT id, status, batch_id FROM executions WHERE status IN ({marks}){where}"
            " ORDER BY created_at, rowid",
            args,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def end_gid(self, batch_id: str) -> int | None:
        """The log row that recorded the end of the batch's last execution to end (meaningful
        once the batch has ended); None if unknown (logs written before this was kept)."""
        rows = await self._reader.execute_fetchall(
            "SELECT max(end_gid) FROM executions WHERE batch_id = ?", (batch_id,)
        )
        found = next(iter(rows))[0]
        return None if found is None else int(found)

    async def mark_stopped(self, batch_ids: list[str]) -> None:
        if batch_ids:
            await self._writer.write(_mark_stopped, batch_ids)

    async def clear_finished(self) -> Cleared:
        return await self._writer.write(_clear_finished)  # type: ignore[no-any-return]


def _create(conn: sqlite3.Connection, batch: BatchRow, items: list[BatchItem]) -> None:
    conn.execute(
        f"INSERT INTO batches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _row_values(batch),
    )
    conn.executemany(
        "INSERT INTO batch_items (batch_id, position, execution_id, blueprint_id, workflow_path)"
        " VALUES (?, ?, ?, ?, ?)",
        [(batch.id, i.position, i.execution_id, i.blueprint_id, i.workflow_path) for i in items],
    )


def _row_values(batch: BatchRow) -> tuple[Any, ...]:
    return tuple(getattr(batch, field) for field in _COLUMNS.replace(" ", "").split(","))


def _batch(row: tuple[Any, ...]) -> BatchRow:
    return BatchRow(**dict(zip(_COLUMNS.replace(" ", "").split(","), row, strict=True)))


def _row(conn: sqlite3.Connection, batch_id: str) -> BatchRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM batches WHERE id = ?", (batch_id,)).fetchone()
    return None if row is None else _batch(row)


def _get(conn: sqlite3.Connection, batch_id: str) -> tuple[BatchRow, list[BatchItemStatus]] | None:
    batch = _row(conn, batch_id)
    if batch is None:
        return None
    items = conn.execute(
        "SELECT i.position, i.execution_id, i.blueprint_id, i.workflow_path, e.status, e.record"
        " FROM batch_items i LEFT JOIN executions e ON e.id = i.execution_id"
        " WHERE i.batch_id = ? ORDER BY i.position",
        (batch_id,),
    ).fetchall()
    statuses = []
    for position, execution_id, blueprint_id, path, status, record in items:
        item = BatchItem(
            position=position,
            execution_id=execution_id,
            blueprint_id=blueprint_id,
            workflow_path=path,
        )
        current = _execution.decode(record).current_step if record is not None else None
        statuses.append(
            BatchItemStatus(item=item, status=status or "queued", current_node_id=current)
        )
    return batch, statuses


def _list(
    conn: sqlite3.Connection, status: str | None, limit: int, offset: int
) -> tuple[int, list[BatchRow]]:
    where, args = (" WHERE status = ?", (status,)) if status else ("", ())
    total, rows = queries.newest_page(conn, "batches", _COLUMNS, where, args, limit, offset)
    return total, [_batch(row) for row in rows]


def _mark_stopped(conn: sqlite3.Connection, batch_ids: list[str]) -> None:
    conn.executemany("UPDATE batches SET stopped = 1 WHERE id = ?", [(b,) for b in batch_ids])
    for batch_id in batch_ids:
        refresh_batch(conn, batch_id)


def _clear_finished(conn: sqlite3.Connection) -> Cleared:
    """Delete finished executions (with their steps, outputs, logs, commands, webhook
    deliveries and idempotency keys) and the batches whose executions have all finished; keep
    everything active. A key whose execution is gone starts a new one when used again."""
    finals = ", ".join(f"'{s}'" for s in FINAL_EXECUTION_STATUSES)
    kept = conn.execute(
        f"SELECT count(*) FROM executions WHERE status NOT IN ({finals})"
    ).fetchone()[0]
    batch_ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM batches WHERE status != 'running' AND NOT EXISTS (SELECT 1 FROM"
            f" executions e WHERE e.batch_id = batches.id AND e.status NOT IN ({finals}))"
        )
    ]
    # A batch still running keeps its finished executions: without them its counts would take
    # them for never created, and it would never end.
    kept_batches = {row[0] for row in conn.execute("SELECT id FROM batches")} - set(batch_ids)
    ids = [
        execution_id
        for execution_id, batch_id in conn.execute(
            f"SELECT id, batch_id FROM executions WHERE status IN ({finals})"
        )
        if batch_id not in kept_batches
    ]
    tables = (
        "steps",
        "logs",
        "controls",
        "webhook_deliveries",
        "idempotency_keys",
        "finished_statuses",
        "execution_inputs",
    )
    for table in tables:
        conn.executemany(f"DELETE FROM {table} WHERE execution_id = ?", [(i,) for i in ids])
    conn.executemany("DELETE FROM executions WHERE id = ?", [(i,) for i in ids])
    conn.executemany("DELETE FROM batch_items WHERE batch_id = ?", [(b,) for b in batch_ids])
    conn.executemany("DELETE FROM batches WHERE id = ?", [(b,) for b in batch_ids])
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'cleared'")
    return Cleared(
        batches=len(batch_ids), executions=len(ids), kept_active=int(kept), execution_ids=ids
    )
