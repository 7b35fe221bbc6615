"""Hand-built engine events and records, for tests that need exact control over what is written,
and small helpers that watch the store's real connections."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from engine.events import ExecutionCreated, ExecutionUpdated, LogAppended, StepUpdated
from engine.model import Blueprint, Node, RunOptions
from engine.records import Execution, ExecutionStatus, LogEntry, LogLevel, Step, StepStatus
from store import Store
from store._thread import run_on_thread

T0 = "2024-12-01T10:00:00.000Z"


def exec_id(n: int) -> str:
    return f"exec_{1733047200000 + n}_{n:05d}"


def at(second: int) -> str:
    """An ISO timestamp `second` seconds after T0 (under an hour)."""
    minutes, seconds = divmod(second, 60)
    return f"2024-12-01T10:{minutes:02d}:{seconds:02d}.000Z"


def execution(
    execution_id: str, status: str = "running", start_time: str = T0, **changes: Any
) -> Execution:
    changes.setdefault("blueprint_id", None)
    changes.setdefault("blueprint_version", None)
    changes.setdefault("total_steps", 1)
    return Execution(
        id=execution_id,
        status=ExecutionStatus(status),
        start_time=start_time,
        updated_at=start_time,
        **changes,
    )


def step(node_id: str, index: int = 0, status: str = "queued", **changes: Any) -> Step:
    return Step(
        step_id=f"step_{index + 1:03d}",
        node_id=node_id,
        name=node_id,
        type="noop",
        status=StepStatus(status),
        **changes,
    )


def created(
    record: Execution,
    node_ids: tuple[str, ...] = ("a",),
    input: Any = None,
    options: RunOptions | None = None,
) -> ExecutionCreated:
    """The creation of `record`, with one queued noop step per node id (a chain)."""
    nodes = tuple(
        Node(id=node_id, type="noop", depends_on=node_ids[i - 1 : i])
        for i, node_id in enumerate(node_ids)
    )
    return ExecutionCreated(
        execution_id=record.id,
        execution=record,
        steps=tuple(step(node_id, i) for i, node_id in enumerate(node_ids)),
        blueprint=Blueprint(name=f"blueprint of {record.id}", nodes=nodes),
        input=input,
        options=options or RunOptions(),
    )


def updated(record: Execution, **changes: Any) -> ExecutionUpdated:
    if "status" in changes:
        changes["status"] = ExecutionStatus(changes["status"])
    return ExecutionUpdated(
        execution_id=record.id, execution=msgspec.structs.replace(record, **changes)
    )


def step_updated(execution_id: str, index: int, record: Step, **extra: Any) -> StepUpdated:
    return StepUpdated(execution_id=execution_id, index=index, step=record, **extra)


def log(
    execution_id: str,
    seq: int,
    level: str = "info",
    node_id: str | None = None,
    message: str | None = None,
) -> LogAppended:
    entry = LogEntry(
        seq=seq,
        timestamp=T0,
        level=LogLevel(level),
        node_id=node_id,
        message=message or f"entry {seq}",
    )
    return LogAppended(execution_id=execution_id, entry=entry)


def read(path: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows from a plain sqlite3 connection of our own: what another process would see."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def trace(store: Store, *, reader: bool = False) -> list[str]:
    """Every statement the writer (or reader) connection runs from now on, with its values."""
    statements: list[str] = []
    db = store._reader_db if reader else store._writer_db
    await run_on_thread(db, lambda conn: conn.set_trace_callback(statements.append))
    return statements


async def untrace(store: Store, *, reader: bool = False) -> None:
    db = store._reader_db if reader else store._writer_db
    await run_on_thread(db, lambda conn: conn.set_trace_callback(None))


@contextlib.asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[None]:
    """Keep the writer inside a transaction: what is queued meanwhile forms the next group."""
    entered, gate = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(10)

    held = asyncio.ensure_future(store.writer.write(hold))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    try:
        yield
    finally:
        gate.set()
        await held
