"""What one group of the writer commits: the engine's events and ad-hoc writes, in one
transaction on the writer process's connection (store/writer_process.py).

Within a group, only the newest record of each step and execution is written. A group commits
whole or not at all, so the log always holds a prefix of what the engine did, and a restart
resumes from a consistent state.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec

from engine.clock import now_iso, now_ms
from engine.events import ControlApplied, ExecutionCreated, WebhookDue
from engine.records import FINAL_EXECUTION_STATUSES, Execution
from store import queries
from store._batch_counts import refresh_batch
from store.errors import StoreUnavailable
from store.finished import rebuild_stored, refresh_finished

log = logging.getLogger("blueprint.store")
Work = Callable[..., Any]

_encode = msgspec.json.Encoder().encode


class Row(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An event as the writer process receives it: the columns its row needs, and its record
    already encoded, so that process neither parses a record nor encodes one again."""

    execution_id: str


class LogRow(Row, tag="log", frozen=True):
    seq: int
    rank: int
    node_id: str | None
    ends: bool  #: the line records the execution's end
    entry: msgspec.Raw


class StepRow(Row, tag="step", frozen=True):
    index: int
    status: str
    record: msgspec.Raw


class StepOutputRow(Row, tag="output", frozen=True):
    """A step and its output, encoded where the engine runs: an output may share entries
    with the outputs before it (`StepUpdated.shared`), and only there are they objects it can
    link without writing them out again (store/outputs.py)."""

    index: int
    status: str
    record: msgspec.Raw
    leaf: bool
    output: msgspec.Raw
    artifacts: msgspec.Raw
    metrics: msgspec.Raw
    links: msgspec.Raw  #: `null` when the output links to nothing


class ExecutionRow(Row, tag="execution", frozen=True):
    status: str
    final: bool
    start_time: str
    updated_at: str
    end_time: str | None
    batch_id: str | None
    record: msgspec.Raw


class EventRow(Row, tag="event", frozen=True):
    """Any other event (a creation, a command's outcome, a webhook), whole: they are few."""

    event: ExecutionCreated | ControlApplied | WebhookDue


GroupRow = LogRow | StepRow | StepOutputRow | ExecutionRow | EventRow


def execution_row(execution: Execution) -> ExecutionRow:
    return ExecutionRow(
        execution_id=execution.id,
        status=execution.status.value,
        final=execution.status.is_final,
        start_time=execution.start_time,
        updated_at=execution.updated_at,
        end_time=execution.end_time,
        batch_id=execution.batch_id,
        record=msgspec.Raw(_encode(execution)),
    )


def records_end(data: Any) -> bool:
    """Whether a log line's data records an execution's end."""
    return (
        type(data) is dict
        and data.get("event") == "execution"
        and data.get("status") in FINAL_EXECUTION_STATUSES
    )


class Write:
    """An ad-hoc write (a blueprint saved, say): `work(connection, *args)` in the group's
    transaction, after the group's events, under a savepoint of its own."""

    __slots__ = ("args", "error", "result", "work")

    def __init__(self, work: Work, args: tuple[Any, ...]) -> None:
        self.work = work
        self.args = args
        self.result: Any = None
        self.error: BaseException | None = None


class WriterMemory:
    """What the writer process remembers between groups: which executions are running (a
    write to any other one rebuilds its stored finished status)."""

    def __init__(self) -> None:
        self.running: set[str] = set()


class Committed(msgspec.Struct):
    """What a transaction changed: the executions, and the global log numbers it took."""

    executions: set[str]
    gids: tuple[int, int] | None = None  #: first and last, or None if it wrote no log line
    finished: list[str] = []  #: executions that ended


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: committed whole, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def write_group(
    conn: sqlite3.Connection,
    rows: Sequence[GroupRow],
    writes: list[Write],
    memory: WriterMemory,
) -> Committed:
    """One transaction."""
    with _transaction(conn):
        touched = _apply_events(conn, rows, memory)
        for write in writes:
            _apply_write(conn, write)
    return touched


def write_group_or_each(
    conn: sqlite3.Connection, rows: Sequence[GroupRow], writes: list[Write], memory: WriterMemory
) -> Committed:
    """`write_group`; if one event breaks a constraint, no retry can pass, so the events are
    written one by one (dropping those refused) and the writes fail, to be retried."""
    try:
        return write_group(conn, rows, writes, memory)
    except sqlite3.IntegrityError as exc:
        log.error("an event breaks a constraint of the execution log: %s", exc)
        touched = write_one_by_one(conn, rows, memory)
        for write in writes:  # their transaction was rolled back; the caller may retry
            write.error = StoreUnavailable(f"not written, retry: {exc}")
        return touched


def store_finished(conn: sqlite3.Connection, execution_ids: list[str]) -> None:
    """`refresh_finished` in a transaction of its own."""
    with _transaction(conn):
        refresh_finished(conn, execution_ids)


def write_one_by_one(
    conn: sqlite3.Connection, rows: Sequence[GroupRow], memory: WriterMemory
) -> Committed:
    """Each event in its own transaction; those a constraint refuses are logged and dropped."""
    touched = Committed(set())
    for row in rows:
        try:
            one = write_group(conn, [row], [], memory)
        except sqlite3.IntegrityError as exc:
            kind = type(row.event if isinstance(row, EventRow) else row).__name__
            log.error("dropped %s for %s: %s", kind, row.execution_id, exc)
            continue
        touched.executions |= one.executions
        touched.finished += one.finished
        if one.gids is not None:
            first = one.gids[0] if touched.gids is None else touched.gids[0]
            touched.gids = (first, one.gids[1])
    return touched


def _apply_write(conn: sqlite3.Connection, write: Write) -> None:
    conn.execute("SAVEPOINT write")
    try:
        write.result = write.work(conn, *write.args)
    except Exception as exc:
        write.error = exc
        conn.execute("ROLLBACK TO write")
    conn.execute("RELEASE write")


#: A steps row's is_leaf, output, artifacts, metrics and links.
_OutputColumns = tuple[int, bytes | None, bytes | None, bytes | None, bytes | None]
_NO_OUTPUT: _OutputColumns = (0, None, None, None, None)


def _output_columns(row: StepOutputRow) -> _OutputColumns:
    links = bytes(row.links)
    return (
        int(row.leaf),
        bytes(row.output),
        bytes(row.artifacts),
        bytes(row.metrics),
        None if links == b"null" else links,
    )


def _apply_events(
    conn: sqlite3.Connection, rows: Sequence[GroupRow], memory: WriterMemory
) -> Committed:
    created: dict[str, ExecutionCreated] = {}
    executions: dict[str, ExecutionRow] = {}
    steps: dict[tuple[str, int], tuple[str, bytes]] = {}
    output_columns: dict[tuple[str, int], _OutputColumns] = {}
    logs: list[list[Any]] = []
    controls: list[tuple[Any, ...]] = []
    webhooks: list[tuple[Any, ...]] = []
    ends: list[int] = []  #: positions in `logs` of rows that record an execution's end
    for row in rows:
        kind = type(row)
        if kind is LogRow:
            if row.ends:  # type: ignore[union-attr]
                ends.append(len(logs))
            logs.append(
                [row.execution_id, row.seq, 0, row.rank, row.node_id, bytes(row.entry)]  # type: ignore[union-attr]
            )
        elif kind is StepRow or kind is StepOutputRow:
            key = (row.execution_id, row.index)  # type: ignore[union-attr]
            steps[key] = (row.status, bytes(row.record))  # type: ignore[union-attr]
            if kind is StepOutputRow:
                output_columns[key] = _output_columns(row)  # type: ignore[arg-type]
        elif kind is ExecutionRow:
            executions[row.execution_id] = row  # type: ignore[assignment]
        else:
            event = row.event  # type: ignore[union-attr]
            if isinstance(event, ExecutionCreated):
                created[event.execution_id] = event
                executions[event.execution_id] = execution_row(event.execution)
            elif isinstance(event, ControlApplied):
                controls.append((_encode(event.outcome), now_iso(), event.command_id))
            else:
                webhooks.append(
                    (
                        event.execution_id,
                        event.event,
                        event.url,
                        event.secret,
                        event.body,
                        now_iso(),
                    )
                )
    batches = {e.batch_id for e in executions.values() if e.batch_id is not None}
    finished = [e.execution_id for e in executions.values() if e.final]
    ongoing = [e.execution_id for e in executions.values() if not e.final]
    touched = {row.execution_id for row in rows}
    # Finished before this group, and written to again (a late log line, say).
    revisited = touched - memory.running - created.keys() - set(finished)
    if created:
        _insert_executions(conn, created, executions, steps, output_columns)
    conn.executemany(
        queries.UPDATE_EXECUTION,
        [
            (e.status, e.updated_at, e.end_time, bytes(e.record), e.execution_id)
            for e in executions.values()
        ],
    )
    conn.executemany(
        queries.UPDATE_STEP,
        [(*step, *key) for key, step in steps.items() if key not in output_columns],
    )
    if output_columns:
        conn.executemany(
            queries.UPDATE_STEP_AND_OUTPUT,
            [(*steps[key], *columns, *key) for key, columns in output_columns.items()],
        )
    gids = None
    if logs:
        base = queries.take_gids(conn, len(logs))
        for offset, log_row in enumerate(logs, start=1):
            log_row[2] = base + offset
        conn.executemany(queries.INSERT_LOG, logs)
        gids = (base + 1, base + len(logs))
        if ends:
            conn.executemany(queries.SET_END_GID, [(logs[i][2], logs[i][0]) for i in ends])
    if controls:
        # Another engine may have answered first (a command for a finished execution).
        conn.executemany(queries.SET_CONTROL_OUTCOME, controls)
    for batch_id in batches:
        refresh_batch(conn, batch_id)
    if webhooks:
        conn.executemany(queries.INSERT_WEBHOOK, [(*row, now_ms()) for row in webhooks])
    if revisited:
        rebuild_stored(conn, revisited)
    memory.running.difference_update(finished)
    memory.running.update(ongoing)
    return Committed(touched, gids, finished)


def _insert_executions(
    conn: sqlite3.Connection,
    created: dict[str, ExecutionCreated],
    executions: dict[str, ExecutionRow],
    steps: dict[tuple[str, int], tuple[str, bytes]],
    output_columns: dict[tuple[str, int], _OutputColumns],
) -> None:
    """New executions go in with their newest records and outputs, so the updates after skip
    them."""
    rows = []
    input_rows = []
    step_rows = []
    for execution_id, event in created.items():
        latest = executions.pop(execution_id)
        first = event.execution
        rows.append(
            (
                execution_id,
                first.blueprint_id,
                first.blueprint_version,
                latest.batch_id,
                latest.status,
                latest.start_time,
                latest.updated_at,
                latest.end_time,
                first.retry_of,
                event.options.idempotency_key,
                bytes(latest.record),
                event.owner,
                event.started_by,
            )
        )
        input_rows.append(
            (
                execution_id,
                _encode(event.blueprint),
                _encode(event.input),
                _encode(event.options),
            )
        )
        for index, initial in enumerate(event.steps):
            key = (execution_id, index)
            step = steps.pop(key, None)
            if step is None:
                step = (initial.status.value, _encode(initial))
            columns = output_columns.pop(key, _NO_OUTPUT)
            step_rows.append((execution_id, index, initial.node_id, *step, *columns))
    conn.executemany(queries.INSERT_EXECUTION, rows)
    conn.executemany(queries.INSERT_EXECUTION_INPUTS, input_rows)
    conn.executemany(queries.INSERT_STEP, step_rows)
