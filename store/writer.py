"""The one writer: the engine's events and other writes, grouped into transactions that the
writer process commits (store/writer_process.py, store/groups.py).

Events queue in memory while the writer process commits a group; the next group takes all of
them, so under load many transitions share one commit and one trip over the pipe, and the
engine never waits for a commit: it goes on, on its own core, while the writer writes.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from engine.events import Event, ExecutionUpdated, LogAppended, StepUpdated
from store import _wire
from store.errors import StoreUnavailable
from store.groups import (
    Committed,
    EventRow,
    GroupRow,
    LogRow,
    StepOutputRow,
    StepRow,
    Work,
    execution_row,
    records_end,
)
from store.outputs import OutputSizes, encode_output
from store.writer_link import WriterProcess

log = logging.getLogger("blueprint.store")

_encode = msgspec.json.Encoder().encode
_NULL = msgspec.Raw(b"null")
#: Groups sent and not yet answered, at most; beyond, events wait and the next group is larger.
_MAX_IN_FLIGHT = 16
_SEND_AT = 512  #: events queued in one turn of the loop that go out without waiting for the next


class _Write:
    """An ad-hoc write (a blueprint saved, say) that rides in the next group's transaction."""

    __slots__ = ("args", "future", "work")

    def __init__(self, work: Work, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.work = work
        self.args = args
        self.future = future


class _Sent:
    """A group sent to the writer process, until it answers."""

    __slots__ = ("events", "writes")

    def __init__(self, events: list[Event], writes: list[_Write]) -> None:
        self.events = events
        self.writes = writes


class EventWriter:
    """The engine's EventSink, backed by the writer process.

    Groups go out as soon as the writer task gets a turn, without waiting for the one before
    to commit: the writer process merges what has come into one transaction, so it works
    while the engine does. Answers come back in order. If a group fails, the writer process
    refuses the ones after it, and they all come back here to be sent again, in order."""

    def __init__(self, process: WriterProcess, on_commit: Callable[[Committed], None]) -> None:
        self._on_commit = on_commit
        self._process = process
        process.on_stored = self._stored
        self._events: list[Event] = []
        self._writes: list[_Write] = []
        self._emitted = 0
        self._committed = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: deque[_Sent] = deque()
        #: Events of groups that failed, in order, while the ones after them come back.
        self._returned: list[Event] | None = None
        self._resume = False  #: the next group is the first sent again after a failure
        self._failures = 0
        #: Expanded sizes of the outputs of running executions, to tell which to link.
        self._sizes = OutputSizes()

    @property
    def process_id(self) -> int | None:
        """The writer process's, while one runs."""
        return self._process.pid

    async def start(self) -> None:
        """Start the writer process (or wait for its start); returns once it can write."""
        await self._process.start()
        self._task = asyncio.ensure_future(self._run())

    async def idle(self) -> None:
        """Everything emitted written, and every finished execution's status stored."""
        await self.flush()
        if not self._closed:
            await self._process.send(_wire.StoreAll())

    def emit(self, event: Event) -> None:
        if self._closed:
            raise StoreUnavailable("the execution log is closed")
        self._events.append(event)
        self._emitted += 1
        if len(self._events) >= _SEND_AT and self._can_send() and self._process.running:
            # A long run of inline nodes gives the writer task no turn: send from here, so
            # the writer process works while the engine does.
            self._send()
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
        """`work(connection, *args)` inside a transaction, after everything emitted so far.

        It runs in the writer process: `work` must be a module-level function, and its
        arguments, result and errors must pickle."""
        future = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(work, args, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop the writer process."""
        self._closing = True
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            self._closed = True
            await self._process.close()

    async def _run(self) -> None:
        while True:
            if self._returned is not None:
                if self._in_flight:  # more will come back
                    await self._woken()
                    continue
                # Nothing is sent meanwhile (_can_send), so what failed goes first.
                await asyncio.sleep(min(0.05 * 2**self._failures, 2.0))
                self._events = self._returned + self._events
                self._returned = None
                self._resume = True
                continue
            if self._events or self._writes:
                if self._can_send():
                    self._send()
                    continue
            elif self._closing and not self._in_flight:
                return
            await self._woken()

    def _can_send(self) -> bool:
        return (
            self._returned is None
            and len(self._in_flight) < _MAX_IN_FLIGHT
            and self._task is not None
        )

    async def _woken(self) -> None:
        await self._wake.wait()
        self._wake.clear()

    def _send(self) -> None:
        resume, self._resume = self._resume, False
        events, self._events = self._events, []
        writes, self._writes = self._writes, []
        sendable = [(w, blob) for w in writes if (blob := _pickled(w)) is not None]
        sent = _Sent(events, [write for write, _ in sendable])
        self._in_flight.append(sent)
        if not self._process.running:
            answer = self._restarted()
        else:
            group = _wire.WriteGroup(
                rows=self._rows(events),
                writes=[blob for _, blob in sendable],
                resume=resume,
            )
            answer = self._process.send(group)
        answer.add_done_callback(lambda done: self._answered(sent, done))

    def _restarted(self) -> asyncio.Future[_wire.Message]:
        """The writer process ended: start another, and have this group sent again after."""

        async def restart() -> _wire.Message:
            await self._process.start()
            return _wire.GroupFailed(error="sent again after the writer process restarted")

        return asyncio.ensure_future(restart())

    def _answered(self, sent: _Sent, done: asyncio.Future[_wire.Message]) -> None:
        assert self._in_flight[0] is sent, "answers come in the order groups were sent"
        self._in_flight.popleft()
        self._wake.set()
        try:
            answer = done.result()
            if isinstance(answer, _wire.GroupFailed):
                raise StoreUnavailable(answer.error)
            assert isinstance(answer, _wire.GroupWritten)
        except Exception as exc:
            self._failed(sent, exc)
            return
        self._failures = 0
        self._committed += len(sent.events)
        for execution_id in answer.committed.finished:
            self._sizes.forget(execution_id)
        self._settle(sent.writes, answer.writes)
        self._on_commit(answer.committed)

    def _failed(self, sent: _Sent, exc: Exception) -> None:
        if self._returned is None:
            self._returned = []
            self._failures += 1
            log.error("writing the execution log failed (try %d): %s", self._failures, exc)
        self._returned += sent.events  # kept, in order, for the next try
        self._fail_waiters(sent.writes, exc)

    def _rows(self, events: list[Event]) -> list[GroupRow]:
        """The events as the writer process takes them, in the order the engine sent them:
        an output can link to one sent before it (store/outputs.py)."""
        rows: list[GroupRow] = []
        append = rows.append
        for event in events:
            kind = type(event)
            if kind is LogAppended:
                entry = event.entry  # type: ignore[attr-defined]
                append(
                    LogRow(
                        execution_id=event.execution_id,
                        seq=entry.seq,
                        rank=entry.level.rank,
                        node_id=entry.node_id,
                        ends=records_end(entry.data),
                        entry=msgspec.Raw(_encode(entry)),
                    )
                )
            elif kind is StepUpdated:
                append(_step_row(event, self._sizes))  # type: ignore[arg-type]
            elif kind is ExecutionUpdated:
                append(execution_row(event.execution))  # type: ignore[attr-defined]
            else:
                append(EventRow(execution_id=event.execution_id, event=event))  # type: ignore[arg-type]
        return rows

    def _stored(self) -> None:
        self._on_commit(Committed(set()))  # readers may now find those rows

    def _settle(self, writes: list[_Write], outcomes: list[_wire.WriteOutcome]) -> None:
        for write, outcome in zip(writes, outcomes, strict=True):
            if write.future.done():  # its caller gave up waiting
                continue
            try:
                value = pickle.loads(outcome.pickled)
            except Exception as exc:
                name = getattr(write.work, "__qualname__", repr(write.work))
                write.future.set_exception(
                    StoreUnavailable(f"the outcome of {name} cannot be read: {exc}")
                )
                continue
            if outcome.ok:
                write.future.set_result(value)
            else:
                write.future.set_exception(value)
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


def _pickled(write: _Write) -> bytes | None:
    """The write as the writer process receives it; None (and the caller told) if it cannot
    cross."""
    try:
        return pickle.dumps((write.work, write.args))
    except Exception as exc:
        if not write.future.done():  # its caller may have given up waiting
            write.future.set_exception(
                TypeError(
                    f"a write must be a module-level function with picklable arguments: {exc}"
                )
            )
        return None


def _step_row(event: StepUpdated, sizes: OutputSizes) -> StepRow | StepOutputRow:
    step = event.step
    if event.output is msgspec.UNSET:
        return StepRow(
            execution_id=event.execution_id,
            index=event.index,
            status=step.status.value,
            record=msgspec.Raw(_encode(step)),
        )
    artifacts = event.artifacts if event.artifacts is not msgspec.UNSET else ()
    metrics = event.metrics if event.metrics is not msgspec.UNSET else {}
    shared = event.shared if event.shared is not msgspec.UNSET else None
    output, links = encode_output(event.execution_id, event.index, event.output, shared, sizes)
    return StepOutputRow(
        execution_id=event.execution_id,
        index=event.index,
        status=step.status.value,
        record=msgspec.Raw(_encode(step)),
        leaf=event.leaf,
        output=msgspec.Raw(output),
        artifacts=msgspec.Raw(_encode(artifacts)),
        metrics=msgspec.Raw(_encode(metrics)),
        links=_NULL if links is None else msgspec.Raw(links),
    )
