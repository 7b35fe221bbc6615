"""The control log: commands kept in order until an engine writes their outcome."""

from __future__ import annotations

import asyncio

from engine.control import Continue, Outcome, ProvideInput, SetTraceLogs, Stop
from engine.events import ControlApplied
from engine.records import AwaitingInput
from store import Store
from tests.store._events import created, exec_id, execution, read, updated


def applied(execution_id: str, command_id: int, message: str = "done") -> ControlApplied:
    outcome = Outcome(applied=True, message=message)
    return ControlApplied(execution_id=execution_id, command_id=command_id, outcome=outcome)


async def test_commands_are_kept_in_order_with_their_executions_status(store):
    running, paused = execution(exec_id(1)), execution(exec_id(2), "paused")
    store.writer.emit(created(running))
    store.writer.emit(created(paused))
    await store.writer.flush()
    commands = [
        (running.id, Stop()),
        (paused.id, ProvideInput(node_id="ask", data={"ok": [1, 2]})),
        (running.id, SetTraceLogs(enabled=True)),
    ]
    ids = [await store.controls.record(e, c) for e, c in commands]
    assert ids == sorted(ids) and len(set(ids)) == 3

    pending = await store.controls.pending()
    assert [(p.recorded.id, p.recorded.execution_id, p.recorded.command) for p in pending] == [
        (i, e, c) for i, (e, c) in zip(ids, commands, strict=True)
    ]
    assert [p.status for p in pending] == ["running", "paused", "running"]


async def test_concurrent_records_get_distinct_ids(store):
    store.writer.emit(created(execution(exec_id(1))))
    ids = await asyncio.gather(*(store.controls.record(exec_id(1), Continue()) for _ in range(20)))
    assert len(set(ids)) == 20
    assert [p.recorded.id for p in await store.controls.pending()] == sorted(ids)


async def test_an_outcome_is_written_with_the_events_and_ends_the_wait(store):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    first = await store.controls.record(record.id, Stop())
    second = await store.controls.record(record.id, Continue())
    assert await store.controls.outcome(first) is None

    store.writer.emit(updated(record, status="cancelled"))
    store.writer.emit(applied(record.id, first, "Execution stopped"))
    await store.writer.flush()
    assert await store.controls.outcome(first) == Outcome(applied=True, message="Execution stopped")
    assert await store.controls.outcome(second) is None
    (pending,) = await store.controls.pending()
    assert (pending.recorded.id, pending.status) == (second, "cancelled")
    (applied_at,) = read(store.path, "SELECT applied_at FROM controls WHERE id = ?", first)[0]
    assert applied_at is not None


async def test_the_first_outcome_written_wins(store):
    """Two engines may answer one command for a finished execution; the first answer stays."""
    record = execution(exec_id(1), "completed")
    store.writer.emit(created(record))
    command_id = await store.controls.record(record.id, Stop())
    store.writer.emit(applied(record.id, command_id, "first"))
    await store.writer.flush()
    store.writer.emit(applied(record.id, command_id, "second"))
    await store.writer.flush()
    assert (await store.controls.outcome(command_id)).message == "first"


async def test_an_unknown_command_has_no_outcome(store):
    assert await store.controls.outcome(12345) is None


async def test_awaiting_input_is_what_the_last_committed_record_says(store):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    assert await store.controls.awaiting_input(record.id) is None
    awaiting = AwaitingInput(
        node_id="ask", prompt="Go?", schema={"type": "boolean"}, requested_at=record.start_time
    )
    store.writer.emit(updated(record, status="paused", awaiting_input=awaiting))
    await store.writer.flush()
    assert await store.controls.awaiting_input(record.id) == awaiting
    assert await store.controls.awaiting_input(exec_id(2)) is None


async def test_recorded_commands_survive_reopening_the_file(store, path):
    record = execution(exec_id(1), "paused")
    store.writer.emit(created(record))
    command_id = await store.controls.record(record.id, ProvideInput(data=True))
    reopened = await Store.open(path)
    try:
        (pending,) = await reopened.controls.pending()
    finally:
        await reopened.close()
    assert (pending.recorded.id, pending.recorded.command) == (command_id, ProvideInput(data=True))
