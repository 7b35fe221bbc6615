"""Hand-built engine events and records, for tests that need exact control over what is written,
and small helpers that watch the store's real connections."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
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


class Statements(Sequence[str]):
    """The statements the writer process has run since tracing began, read from the file it
    appends them to (that process cannot share a list with the test)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _read(self) -> list[str]:
        if not self._path.exists():
            return []
        return [json.loads(line) for line in self._path.read_text().splitlines()]

    def __getitem__(self, index: Any) -> Any:
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())


def _append_statement(path: str, statement: str) -> None:
    with open(path, "a") as file:
        file.write(json.dumps(statement) + "\n")


def trace_into(conn: sqlite3.Connection, path: str | None) -> None:
    """On the writer process's connection: record each statement from now on in `path`."""
    conn.set_trace_callback(None if path is None else functools.partial(_append_statement, path))


async def trace(store: Store, *, reader: bool = False) -> Sequence[str]:
    """Every statement the writer (or reader) connection runs from now on, with its values."""
    if not reader:
        handle, name = tempfile.mkstemp(prefix="writer-trace-", suffix=".jsonl")
        os.close(handle)
        await store.writer.write(trace_into, name)
        Path(name).write_text("")  # the COMMIT of the write that began tracing
        return Statements(Path(name))
    statements: list[str] = []
    await run_on_thread(store._reader_db, lambda conn: conn.set_trace_callback(statements.append))
    return statements


async def untrace(store: Store, *, reader: bool = False) -> None:
    if not reader:
        await store.writer.write(trace_into, None)
        return
    await run_on_thread(store._reader_db, lambda conn: conn.set_trace_callback(None))


def hold(conn: sqlite3.Connection, entered: str, gate: str) -> None:
    """In the writer process: say so, then wait (inside the transaction) for the gate."""
    Path(entered).touch()
    deadline = time.monotonic() + 10
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.001)


@contextlib.asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[None]:
    """Keep the writer inside a transaction: what is queued meanwhile forms the next group."""
    folder = Path(tempfile.mkdtemp(prefix="writer-held-"))
    entered, gate = folder / "entered", folder / "gate"
    held = asyncio.ensure_future(store.writer.write(hold, str(entered), str(gate)))
    while not entered.exists():
        await asyncio.sleep(0.001)
    try:
        yield
    finally:
        gate.touch()
        await held


async def writer_pragma(store: Store, name: str) -> Any:
    """A pragma's value on the writer process's connection."""
    return await store.writer.write(read_pragma, name)


def read_pragma(conn: sqlite3.Connection, name: str) -> Any:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]
