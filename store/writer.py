"""The one writer: the engine's events and other writes, grouped into transactions.

Events queue in memory while a transaction is on the database thread; the next transaction
takes all of them, so under load many transitions share one commit and one round trip, and
the engine never waits for a commit. Within a group, only the newest record of each step and
execution is written. A group commits whole or not at all, so the log always holds a prefix of
what the engine did, and a restart resumes from a consistent state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import aiosqlite
import msgspec

from engine.clock import now_iso, now_ms
from engine.events import (
    ControlApplied,
    Event,
    ExecutionCreated,
    ExecutionUpdated,
    LogAppended,
    StepUpdated,
    WebhookDue,
)
from engine.records import FINAL_EXECUTION_STATUSES, Execution, Step
from store import queries
from store._batch_counts import refresh_batch
from store._thread import run_on_thread
from store.errors import StoreUnavailable
from store.finished import rebuild_stored, refresh_finished
from store.outputs import OutputSizes, encode_output

log = logging.getLogger("blueprint.store")
T = TypeVar("T")
Work = Callable[..., Any]

# Used only on the writer's database thread.
_encode = msgspec.json.Encoder().encode
_STORE_AT_ONCE = 8  #: finished statuses stored per transaction, between the engine's groups
#: How long a group waits for the engine's burst of events to end, and how many it lets pile up.
_BURST_WAIT_S = 0.05
_BURST_EVENTS = 4096
_UNSTORED_LIMIT = 100_000  #: beyond this many waiting, more are read the long way


class _Write:
    """An ad-hoc write (a blueprint saved, say) that rides in the next group's transaction."""

    __slots__ = ("args", "error", "future", "result", "work")

    def __init__(self, work: Work, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.work = work
        self.args = args
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None


class EventWriter:
    """The engine's EventSink, backed by the database."""

    def __init__(self, db: aiosqlite.Connection, on_commit: Callable[[Committed], None]) -> None:
        self._db = db
        self._on_commit = on_commit
        self._events: list[Event] = []
        self._writes: list[_Write] = []
        self._emitted = 0
        self._committed = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._memory = WriterMemory()
        #: Finished executions whose status is not stored yet (an ordered set).
        self._unstored: dict[str, None] = {}
        self._idle_waiters: list[asyncio.Future[None]] = []

    async def idle(self) -> None:
        """Everything emitted written, and every finished execution's status stored."""
        await self.flush()
        while self._unstored and not self._closed:
            future = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(future)
            self._wake.set()
            await future

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def emit(self, event: Event) -> None:
        if self._closed:
            raise StoreUnavailable("the execution log is closed")
        self._events.append(event)
        self._emitted += 1
        self._wake.set()

    async def flush(self) -> None:
        if self._committed >= self._emitted:
            return
        if self._closed:
            raise StoreUnavailable("the execution log is closed")
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self._emitted, future))
        await future

    async def write(self, work: Work, *args: Any) -> Any:
        """`work(connection, *args)` inside a transaction, after everything emitted so far."""
        future = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(work, args, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._closed = True

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._events and not self._writes:
                if self._closing:
                    self._wake_idle_waiters()
                    return
                if self._unstored:
                    await self._store_finished()
                    continue
                await self._wake.wait()
                self._wake.clear()
                continue
            if not self._closing:
                await self._burst_ended()
            events, self._events = self._events, []
            writes, self._writes = self._writes, []
            try:
                touched = await run_on_thread(self._db, write_group, events, writes, self._memory)
            except sqlite3.IntegrityError as exc:
                # One event breaks a constraint: no retry can pass, so write the rest alone.
                log.error("an event breaks a constraint of the execution log: %s", exc)
                touched = await run_on_thread(self._db, write_one_by_one, events, self._memory)
                for write in writes:  # their transaction was rolled back; the caller may retry
                    write.error = StoreUnavailable(f"not written, retry: {exc}")
            except Exception as exc:
                failures += 1
                self._events = events + self._events  # kept, in order, for the next try
                self._fail_waiters(writes, exc)
                log.error("writing the execution log failed (try %d): %s", failures, exc)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                continue
            failures = 0
            self._committed += len(events)
            if len(self._unstored) < _UNSTORED_LIMIT:
                self._unstored.update(dict.fromkeys(touched.finished))
            self._settle(writes)
            self._on_commit(touched)

    async def _burst_ended(self) -> None:
        """Wait for a loop turn that adds no event: the end of the engine's burst of inline
        nodes, at most _BURST_WAIT_S or _BURST_EVENTS away.

        A group written during the burst fights the engine for the GIL: the database thread
        lets it go for each row it steps and then waits to get it back, up to the switch
        interval (5 ms), while the engine holds it. The same events written after the burst
        go in one group, in a fraction of the time: 10-25% more steps/s in `make bench`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _BURST_WAIT_S
        while len(self._events) < _BURST_EVENTS and not self._closing:
            pending = len(self._events)
            await asyncio.sleep(0)
            if len(self._events) == pending or loop.time() >= deadline:
                return

    async def _store_finished(self) -> None:
        """Store some finished statuses while nothing else waits: the engine's events go
        first, so this costs it nothing; until then a status read takes the long way."""
        batch = list(itertools.islice(self._unstored, _STORE_AT_ONCE))
        try:
            await run_on_thread(self._db, store_finished, batch)
        except Exception as exc:
            log.warning("storing finished statuses failed (read the long way): %s", exc)
        for execution_id in batch:
            self._unstored.pop(execution_id, None)
        self._on_commit(Committed(set()))  # readers may now find those rows
        if not self._unstored:
            self._wake_idle_waiters()

    def _wake_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _settle(self, writes: list[_Write]) -> None:
        for write in writes:
            if write.future.done():
                continue
            if write.error is not None:
                write.future.set_exception(write.error)
            else:
                write.future.set_result(write.result)
        while self._waiters and self._waiters[0][0] <= self._committed:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)

    def _fail_waiters(self, writes: list[_Write], exc: Exception) -> None:
        # Callers waiting for durability learn now; the events themselves stay queued.
        error = StoreUnavailable(f"the execution log cannot be written: {exc}")
        for write in writes:
            if not write.future.done():
                write.future.set_exception(error)
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)


class WriterMemory:
    """What the writer remembers between groups, on its thread: the output sizes of running
    executions, and which executions are running (a write to any other one rebuilds its stored
    finished status)."""

    def __init__(self) -> None:
        self.sizes = OutputSizes()
        self.running: set[str] = set()


class Committed(msgspec.Struct):
    """What a transaction changed: the executions, and the global log numbers it took."""

    executions: set[str]
    gids: tuple[int, int] | None = None  #: first and last, or None if it wrote no log line
    finished: list[str] = []  #: executions that ended


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction on the database thread: committed whole, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def write_group(
    conn: sqlite3.Connection,
    events: list[Event],
    writes: list[_Write],
    memory: WriterMemory | None = None,
) -> Committed:
    """One transaction on the database thread."""
    with _transaction(conn):
        touched = _apply_events(conn, events, memory or WriterMemory())
        for write in writes:
            _apply_write(conn, write)
    return touched


def store_finished(conn: sqlite3.Connection, execution_ids: list[str]) -> None:
    """`refresh_finished` in a transaction of its own."""
    with _transaction(conn):
        refresh_finished(conn, execution_ids)


def write_one_by_one(
    conn: sqlite3.Connection, events: list[Event], memory: WriterMemory | None = None
) -> Committed:
    """Each event in its own transaction; those a constraint refuses are logged and dropped."""
    touched = Committed(set())
    for event in events:
        try:
            one = write_group(conn, [event], [], memory)
        except sqlite3.IntegrityError as exc:
            log.error("dropped %s for %s: %s", type(event).__name__, event.execution_id, exc)
            continue
        touched.executions |= one.executions
        touched.finished += one.finished
        if one.gids is not None:
            first = one.gids[0] if touched.gids is None else touched.gids[0]
            touched.gids = (first, one.gids[1])
    return touched


def _apply_write(conn: sqlite3.Connection, write: _Write) -> None:
    conn.execute("SAVEPOINT write")
    try:
        write.result = write.work(conn, *write.args)
    except Exception as exc:
        write.error = exc
        conn.execute("ROLLBACK TO write")
    conn.execute("RELEASE write")


def _apply_events(conn: sqlite3.Connection, events: list[Event], memory: WriterMemory) -> Committed:
    created: dict[str, ExecutionCreated] = {}
    executions: dict[str, Execution] = {}
    steps: dict[tuple[str, int], Step] = {}
    outputs: dict[tuple[str, int], StepUpdated] = {}
    logs: list[list[Any]] = []
    controls: list[tuple[Any, ...]] = []
    webhooks: list[tuple[Any, ...]] = []
    ends: list[int] = []  #: positions in `logs` of rows that record an execution's end
    for event in events:
        if isinstance(event, LogAppended):
            entry = event.entry
            if _records_end(entry.data):
                ends.append(len(logs))
            logs.append(
                [event.execution_id, entry.seq, 0, entry.level.rank, entry.node_id, _encode(entry)]
            )
        elif isinstance(event, StepUpdated):
            key = (event.execution_id, event.index)
            steps[key] = event.step
            if event.output is not msgspec.UNSET:
                outputs[key] = event
        elif isinstance(event, ExecutionUpdated):
            executions[event.execution_id] = event.execution
        elif isinstance(event, ExecutionCreated):
            created[event.execution_id] = event
            executions[event.execution_id] = event.execution
        elif isinstance(event, ControlApplied):
            controls.append((_encode(event.outcome), now_iso(), event.command_id))
        elif isinstance(event, WebhookDue):
            webhooks.append(
                (event.execution_id, event.event, event.url, event.secret, event.body, now_iso())
            )
    batches = {e.batch_id for e in executions.values() if e.batch_id is not None}
    finished = [e.id for e in executions.values() if e.status.is_final]
    ongoing = [e.id for e in executions.values() if not e.status.is_final]
    touched = {event.execution_id for event in events}
    # Finished before this group, and written to again (a late log line, say).
    revisited = touched - memory.running - created.keys() - set(finished)
    sizes = memory.sizes
    # Encoded in the order the engine sent them: an output can link to one sent before it.
    output_columns = {key: _output_columns(event, sizes) for key, event in outputs.items()}
    if created:
        _insert_executions(conn, created, executions, steps, output_columns)
    conn.executemany(
        queries.UPDATE_EXECUTION,
        [(e.status.value, e.updated_at, e.end_time, _encode(e), e.id) for e in executions.values()],
    )
    conn.executemany(
        queries.UPDATE_STEP,
        [
            (s.status.value, _encode(s), *key)
            for key, s in steps.items()
            if key not in output_columns
        ],
    )
    if output_columns:
        conn.executemany(
            queries.UPDATE_STEP_AND_OUTPUT,
            [
                (steps[key].status.value, _encode(steps[key]), *columns, *key)
                for key, columns in output_columns.items()
            ],
        )
    gids = None
    if logs:
        base = queries.take_gids(conn, len(logs))
        for offset, row in enumerate(logs, start=1):
            row[2] = base + offset
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
    for execution_id in finished:
        sizes.forget(execution_id)
        memory.running.discard(execution_id)
    memory.running.update(ongoing)
    return Committed(touched, gids, finished)


def _records_end(data: Any) -> bool:
    return (
        type(data) is dict
        and data.get("event") == "execution"
        and data.get("status") in FINAL_EXECUTION_STATUSES
    )


def _insert_executions(
    conn: sqlite3.Connection,
    created: dict[str, ExecutionCreated],
    executions: dict[str, Execution],
    steps: dict[tuple[str, int], Step],
    output_columns: dict[tuple[str, int], _OutputColumns],
) -> None:
    """New executions go in with their newest records and outputs, so the updates after skip
    them."""
    rows = []
    input_rows = []
    step_rows = []
    for execution_id, event in created.items():
        latest = executions.pop(execution_id)
        rows.append(
            (
                execution_id,
                latest.blueprint_id,
                latest.blueprint_version,
                latest.batch_id,
                latest.status.value,
                latest.start_time,
                latest.updated_at,
                latest.end_time,
                latest.retry_of,
                event.options.idempotency_key,
                _encode(latest),
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
            step = steps.pop(key, initial)
            columns = output_columns.pop(key, _NO_OUTPUT)
            step_rows.append(
                (execution_id, index, step.node_id, step.status.value, _encode(step), *columns)
            )
    conn.executemany(queries.INSERT_EXECUTION, rows)
    conn.executemany(queries.INSERT_EXECUTION_INPUTS, input_rows)
    conn.executemany(queries.INSERT_STEP, step_rows)


#: A steps row's is_leaf, output, artifacts, metrics and links.
_OutputColumns = tuple[int, bytes | None, bytes | None, bytes | None, bytes | None]
_NO_OUTPUT: _OutputColumns = (0, None, None, None, None)


def _output_columns(event: StepUpdated, sizes: OutputSizes) -> _OutputColumns:
    artifacts = event.artifacts if event.artifacts is not msgspec.UNSET else ()
    metrics = event.metrics if event.metrics is not msgspec.UNSET else {}
    shared = event.shared if event.shared is not msgspec.UNSET else None
    output, links = encode_output(event.execution_id, event.index, event.output, shared, sizes)
    return (int(event.leaf), output, _encode(artifacts), _encode(metrics), links)
