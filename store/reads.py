"""Reads of the execution log, each one round trip to the reader connection's thread.

Records are stored as the JSON clients receive, so a status is assembled by joining stored
bytes; nothing is decoded on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import aiosqlite
import msgspec

from engine.model import Blueprint, RunOptions
from engine.records import (
    ACTIVE_EXECUTION_STATUSES,
    FINAL_EXECUTION_STATUSES,
    Execution,
    LogLevel,
    Step,
)
from store import queries
from store._thread import read_on_thread
from store.outputs import StoredOutputs
from store.pragmas import MMAP_PRAGMA
from store.status_cache import StatusCache

_STEP_RECORDS = msgspec.json.Decoder(list[Step])
_decode_execution = msgspec.json.Decoder(Execution).decode
_decode_step = msgspec.json.Decoder(Step).decode
_decode_any = msgspec.json.Decoder().decode
_decode_blueprint = msgspec.json.Decoder(Blueprint).decode
_decode_options = msgspec.json.Decoder(RunOptions).decode
_encode = msgspec.json.Encoder().encode

INCLUDE_OPTIONS = ("artifacts", "metrics", "outputs")
#: The contract's default logsLimit: the variant nearly every read asks for, stored whole for
#: finished executions (store.finished).
SNAPSHOT_LOGS_LIMIT = 100
_SNAPSHOT_VARIANT: tuple[int, tuple[str, ...]] = (SNAPSHOT_LOGS_LIMIT, ())
_CACHE_PRAGMA = "PRAGMA cache_size = -65536"  #: 64 MiB, for pages past the mapped part
#: How many executions read once are remembered: a second read among the next several thousand
#: admits a status to memory. A poll comes back within that many reads; uniform reads over a
#: large log rarely do, so they do not churn the cache. (N=100,000 in `make bench`: with a
#: window of 65,536 a third of reads stored a status and evicted another, and cache on was
#: 20% slower than cache off.)
_READ_ONCE_LIMIT = 8192
_ROWIDS_LIMIT = 131_072  #: about 20 MB of locations; cleared when full


class StoredStatuses:
    """Finished executions' stored statuses (store.finished), read on the event loop's own
    thread: one indexed lookup on memory-mapped pages costs a few microseconds, less than the
    round trip to the reader's thread it saves, and lets a request be answered without a task.

    Reads share one read transaction, so most cost no system call (each new one takes file
    locks). It ends at every commit this server makes, whenever the follower sees rows of
    another server's, and after `max_age` at most; until then a row rebuilt meanwhile could be
    missed, which those ends rule out for this server and bound for others, as for the memory
    cache. A row not yet stored just sends the read the long way, as does any trouble (a file
    being recovered, say)."""

    def __init__(self, path: str, max_age: float = 1.0) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        pragmas = ("PRAGMA query_only = 1", "PRAGMA busy_timeout = 0", _CACHE_PRAGMA, MMAP_PRAGMA)
        for pragma in pragmas:
            self._conn.execute(pragma)
        self._max_age = max_age
        self._began = 0.0  #: when the read transaction began; 0 when there is none
        #: Where each execution's row was last found. Looking a row up by rowid skips the
        #: descent through the id index: about a fifth of a read's cost when the statuses far
        #: outgrow the CPU's caches (N=100,000 in `make bench`). A row rebuilt since, or
        #: deleted, fails the id check and is looked up by id again.
        self._rowids: dict[str, int] = {}

    def get(self, execution_id: str) -> bytes | None:
        conn = self._conn
        try:
            if self._began and time.monotonic() - self._began > self._max_age:
                self.refresh()
            if not self._began:
                conn.execute("BEGIN")
                self._began = time.monotonic()
            rowid = self._rowids.get(execution_id)
            if rowid is not None:
                row = conn.execute(queries.FINISHED_STATUS_AT, (rowid,)).fetchone()
                if row is not None and row[0] == execution_id:
                    return row[1]  # type: ignore[no-any-return]
            row = conn.execute(queries.LOCATE_FINISHED_STATUS, (execution_id,)).fetchone()
        except sqlite3.Error:
            self.refresh()
            return None
        if row is None:
            return None
        if len(self._rowids) >= _ROWIDS_LIMIT:
            self._rowids.clear()
        self._rowids[execution_id] = row[0]
        return row[1]  # type: ignore[no-any-return]

    def refresh(self) -> None:
        """The next read sees everything committed by then."""
        if self._began:
            self._began = 0.0
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class ExecutionReads:
    def __init__(
        self, db: aiosqlite.Connection, cache: StatusCache, stored: StoredStatuses | None = None
    ) -> None:
        self._db = db
        self._cache = cache
        self._stored = stored
        self._batch = _StatusBatch(db)
        #: Executions whose stored status was read once and not kept in memory (yet).
        self._read_once: dict[str, None] = {}

    def cached_status(
        self, execution_id: str, logs_limit: int, include: Iterable[str] = ()
    ) -> bytes | None:
        """The status without waiting, if it can be had so: a finished execution's, from
        memory or, for the default variant, from its stored row."""
        return self._without_waiting(execution_id, _variant(logs_limit, include))

    def _without_waiting(
        self, execution_id: str, variant: tuple[int, tuple[str, ...]]
    ) -> bytes | None:
        body = self._cache.get(execution_id, variant)
        if body is None and self._stored is not None and variant == _SNAPSHOT_VARIANT:
            started = time.monotonic()
            body = self._stored.get(execution_id)
            if body is not None and self._read_again(execution_id):
                self._cache.put(execution_id, variant, body, started)
        return body

    def _read_again(self, execution_id: str) -> bool:
        """Whether this stored status was read recently: only those take room in memory."""
        if execution_id in self._read_once:
            del self._read_once[execution_id]
            return True
        if len(self._read_once) >= _READ_ONCE_LIMIT:
            self._read_once.clear()
        self._read_once[execution_id] = None
        return False

    async def status(
        self, execution_id: str, logs_limit: int, include: Iterable[str] = ()
    ) -> bytes | None:
        """The execution status as JSON bytes, or None for an unknown id."""
        variant = _variant(logs_limit, include)
        cached = self._without_waiting(execution_id, variant)
        if cached is not None:
            return cached
        started = time.monotonic()
        found = await self._batch.read(execution_id, logs_limit, variant[1])
        if found is None:
            return None
        body, final = found
        if final:
            self._cache.put(execution_id, variant, body, started)
        return body

    async def exists(self, execution_id: str) -> bool:
        rows = await self._db.execute_fetchall(queries.EXECUTION_EXISTS, (execution_id,))
        return bool(rows)

    async def logs_after(
        self, execution_id: str, after_seq: int, limit: int, level: LogLevel, node_id: str | None
    ) -> list[tuple[int, bytes]]:
        """Up to `limit` entries with seq > after_seq, as (seq, JSON)."""
        rows = await self._db.execute_fetchall(
            queries.LOGS_AFTER, (execution_id, after_seq, level.rank, node_id, limit)
        )
        return [(row[0], row[1]) for row in rows]

    async def most_recent(self, statuses: Iterable[str]) -> str | None:
        """The id of the most recently started execution in one of these states."""
        wanted = tuple(statuses)
        marks = ", ".join("?" * len(wanted))
        rows = await self._db.execute_fetchall(
            f"SELECT id FROM executions WHERE status IN ({marks})"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            wanted,
        )
        found = next(iter(rows), None)
        return None if found is None else str(found[0])

    async def end_gid(self, execution_id: str) -> int | None:
        """The log row that recorded the execution's end (None: not ended, or not known)."""
        rows = await self._db.execute_fetchall(
            "SELECT end_gid FROM executions WHERE id = ?", (execution_id,)
        )
        found = next(iter(rows), None)
        return None if found is None or found[0] is None else int(found[0])

    async def active_count(self, started_by: str) -> int:
        """Queued, running and paused executions that `started_by` asked for."""
        rows = await self._db.execute_fetchall(
            "SELECT count(*) FROM executions WHERE started_by = ?"
            " AND status IN ('queued', 'running', 'paused')",
            (started_by,),
        )
        return int(next(iter(rows))[0])

    async def status_of(self, execution_id: str) -> str | None:
        rows = await self._db.execute_fetchall(
            "SELECT status FROM executions WHERE id = ?", (execution_id,)
        )
        found = next(iter(rows), None)
        return None if found is None else str(found[0])

    async def record(self, execution_id: str) -> Execution | None:
        rows = await self._db.execute_fetchall(queries.EXECUTION_RECORD, (execution_id,))
        found = next(iter(rows), None)
        return None if found is None else _decode_execution(found[0])

    async def retry_source(self, execution_id: str) -> RetrySource | None:
        """What a retry of this execution starts from, or None if it is unknown."""
        return await read_on_thread(self._db, _retry_source, execution_id)

    async def active(self) -> list[Execution]:
        rows = await self._db.execute_fetchall(queries.ACTIVE_RECORDS)
        return [_decode_execution(row[0]) for row in rows]

    async def count_active(self) -> dict[str, int]:
        rows = await self._db.execute_fetchall(queries.COUNT_ACTIVE)
        counts = {status.value: 0 for status in ACTIVE_EXECUTION_STATUSES}
        counts.update({row[0]: row[1] for row in rows})
        return counts

    async def list(
        self,
        *,
        status: str | None,
        blueprint_id: str | None,
        batch_id: str | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[Execution]]:
        where, args = _filters(status=status, blueprint_id=blueprint_id, batch_id=batch_id)
        return await read_on_thread(self._db, _list_executions, where, args, limit, offset)


class RetrySource(msgspec.Struct, frozen=True, kw_only=True):
    execution: Execution
    blueprint: Blueprint
    input: Any
    options: RunOptions
    #: node id -> (output, artifacts) of each step that succeeded
    succeeded: dict[str, tuple[Any, tuple[dict[str, Any], ...]]]


def _retry_source(conn: sqlite3.Connection, execution_id: str) -> RetrySource | None:
    row = conn.execute(queries.RETRY_SOURCE, (execution_id,)).fetchone()
    if row is None:
        return None
    succeeded = conn.execute(queries.SUCCEEDED_ARTIFACTS, (execution_id,)).fetchall()
    stored = StoredOutputs(conn.execute(queries.OUTPUT_ROWS, (execution_id,)))
    return RetrySource(
        execution=_decode_execution(row[0]),
        blueprint=_decode_blueprint(row[1]),
        input=_decode_any(row[2]),
        options=_decode_options(row[3]),
        succeeded={
            node_id: (stored.decoded(index), tuple(_decode_any(artifacts)))
            for node_id, index, artifacts in succeeded
        },
    )


_Wanted = tuple[str, int, tuple[str, ...]]
_Found = tuple[bytes, bool] | None


class _StatusBatch:
    """Status reads, grouped as the writer groups commits: while one group is on the reader's
    thread, new reads wait, and the next round trip takes them all. Under load the cost of
    reaching the thread (much higher when it runs on the other core) is shared by many reads."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._waiting: list[tuple[_Wanted, asyncio.Future[_Found]]] = []
        self._in_flight: asyncio.Future[list[_Found]] | None = None

    async def read(self, execution_id: str, logs_limit: int, include: tuple[str, ...]) -> _Found:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(((execution_id, logs_limit, include), future))
        if self._in_flight is None:
            self._send()
        return await future

    def _send(self) -> None:
        group, self._waiting = self._waiting, []
        wanted = [item for item, _ in group]
        self._in_flight = asyncio.ensure_future(read_on_thread(self._db, read_statuses, wanted))
        self._in_flight.add_done_callback(lambda done: self._settle(group, done))

    def _settle(
        self,
        group: list[tuple[_Wanted, asyncio.Future[_Found]]],
        done: asyncio.Future[list[_Found]],
    ) -> None:
        self._in_flight = None
        error = done.exception()
        for index, (_, future) in enumerate(group):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[index])
        if self._waiting:
            self._send()


def read_statuses(conn: sqlite3.Connection, wanted: list[_Wanted]) -> list[_Found]:
    """Several statuses in one round trip and one snapshot."""
    return [read_status(conn, *item) for item in wanted]


def _variant(logs_limit: int, include: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    return (logs_limit, tuple(sorted(set(include))) if include else ())


def read_status(
    conn: sqlite3.Connection,
    execution_id: str,
    logs_limit: int,
    include: tuple[str, ...],
    *,
    stored: bool = True,
) -> tuple[bytes, bool] | None:
    """On the reader's thread: the status JSON, and whether the execution has finished.
    `stored`: take a finished execution's stored status when it is the variant asked for."""
    if stored and logs_limit == SNAPSHOT_LOGS_LIMIT and not include:
        found = conn.execute(queries.FINISHED_STATUS, (execution_id,)).fetchone()
        if found is not None:
            return found[0], True
    row = conn.execute(
        "SELECT status, record FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    if row is None:
        return None
    status, record = row
    steps = conn.execute(queries.STEP_RECORDS, (execution_id,)).fetchall()
    logs = (
        conn.execute(queries.NEWEST_LOGS, (execution_id, logs_limit)).fetchall()
        if logs_limit
        else []
    )
    total_logs = logs[0][0] if logs else _last_seq(conn, execution_id)
    finals = conn.execute(queries.FINAL_OUTPUTS, (execution_id,)).fetchall()
    if any(links is not None for *_, links in finals):
        linked = StoredOutputs(conn.execute(queries.OUTPUT_ROWS, (execution_id,)))
        finals = [
            (node_id, linked.raw(index), artifacts) for node_id, _, artifacts, index, _ in finals
        ]
    parts = [
        record[:-1],
        b',"steps":[',
        b",".join(step for (step,) in steps),
        b'],"logs":[',
        b",".join(entry for _, entry in reversed(logs)),
        b'],"logsTruncated":',
        b"true" if total_logs > len(logs) else b"false",
        b',"finalOutputs":[',
        b",".join(
            b'{"nodeId":"%s","output":%s,"artifacts":%s}' % (node_id.encode(), output, artifacts)
            for node_id, output, artifacts, *_ in finals
        ),
        b"]",
    ]
    if include:
        parts.append(_included(conn, execution_id, include, record, steps))
    parts.append(b"}")
    return b"".join(parts), status in FINAL_EXECUTION_STATUSES


def _last_seq(conn: sqlite3.Connection, execution_id: str) -> int:
    return int(conn.execute(queries.LAST_SEQ, (execution_id,)).fetchone()[0] or 0)


def _included(
    conn: sqlite3.Connection,
    execution_id: str,
    include: tuple[str, ...],
    record: bytes,
    steps: list[tuple[bytes]],
) -> bytes:
    """The optional parts of a status; rarer, so decoded and built in Python."""
    rows = conn.execute(queries.ALL_OUTPUTS, (execution_id,)).fetchall()
    extra: dict[str, Any] = {}
    if "outputs" in include:
        stored = StoredOutputs((index, output, links) for _, output, _, _, index, links in rows)
        extra["outputs"] = {
            node_id: msgspec.Raw(stored.raw(index)) for node_id, _, _, _, index, _ in rows
        }
    if "artifacts" in include:
        extra["artifacts"] = [
            {"nodeId": node_id, **artifact}
            for node_id, _, artifacts, *_ in rows
            for artifact in _decode_any(artifacts)
        ]
    if "metrics" in include:
        execution = _decode_execution(record)
        step_records = [_decode_step(step) for (step,) in steps]
        extra["metrics"] = {
            "durationMs": execution.duration_ms,
            "steps": {
                s.node_id: {"durationMs": s.duration_ms, "attempts": s.attempt_no}
                for s in step_records
            },
            "reported": {
                node_id: msgspec.Raw(metrics)
                for node_id, _, _, metrics, *_ in rows
                if metrics != b"{}"
            },
        }
    encoded = _encode(extra)
    return b"," + encoded[1:-1] if len(encoded) > 2 else b""


def _filters(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    columns = {"status": "status", "blueprint_id": "blueprint_id", "batch_id": "batch_id"}
    clauses = [f"{columns[name]} = ?" for name, value in filters.items() if value is not None]
    args = tuple(value for value in filters.values() if value is not None)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _list_executions(
    conn: sqlite3.Connection, where: str, args: tuple[Any, ...], limit: int, offset: int
) -> tuple[int, list[Execution]]:
    # `where` is built from fixed column names only; values travel as parameters.
    total, rows = queries.newest_page(conn, "executions", "record", where, args, limit, offset)
    return total, [_decode_execution(row[0]) for row in rows]
