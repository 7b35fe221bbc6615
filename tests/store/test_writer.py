"""The group-committing writer, watched through the real connection and other readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from engine.model import RunOptions
from engine.records import Execution, Step
from store import BlueprintNotFound, Store, StoreUnavailable
from tests.store._events import (
    created,
    exec_id,
    execution,
    log,
    read,
    step,
    step_updated,
    trace,
    updated,
    writer_held,
)

CHAIN = {
    "name": "chain",
    "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop", "dependsOn": ["a"]}],
}


def begins(statements: list[str]) -> int:
    return sum(s.startswith("BEGIN") for s in statements)


def starting(statements: list[str], prefix: str) -> list[str]:
    return [s for s in statements if s.lstrip().startswith(prefix)]


def stored_execution(path: str, execution_id: str) -> Execution:
    (record,) = read(path, "SELECT record FROM executions WHERE id = ?", execution_id)[0]
    return msgspec.json.decode(record, type=Execution)


def stored_step(path: str, execution_id: str, index: int) -> Step:
    sql = "SELECT record FROM steps WHERE execution_id = ? AND idx = ?"
    return msgspec.json.decode(read(path, sql, execution_id, index)[0][0], type=Step)


async def flushed_after_retries(store: Store) -> None:
    """Until a flush succeeds: the tries that fail in between tell their waiters so."""
    async with asyncio.timeout(30):
        while True:
            try:
                await store.writer.flush()
                return
            except StoreUnavailable:
                await asyncio.sleep(0.05)


def create_notes(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (body TEXT)")


def add_note(conn: sqlite3.Connection, body: str) -> int:
    return conn.execute("INSERT INTO notes VALUES (?)", (body,)).lastrowid


def add_note_then_fail(conn: sqlite3.Connection, body: str) -> None:
    conn.execute("INSERT INTO notes VALUES (?)", (body,))
    raise LookupError(f"refused {body}")


async def test_a_flushed_run_is_visible_to_another_connection(store, path, run_blueprint):
    execution_id = await run_blueprint(CHAIN, input={"k": 1})

    assert read(path, "SELECT status FROM executions WHERE id = ?", execution_id) == [
        ("completed",)
    ]
    steps = read(path, "SELECT node_id, status FROM steps WHERE execution_id = ?", execution_id)
    assert steps == [("a", "succeeded"), ("b", "succeeded")]
    seqs = read(path, "SELECT seq FROM logs WHERE execution_id = ? ORDER BY seq", execution_id)
    assert [s for (s,) in seqs] == list(range(1, len(seqs) + 1))
    sql = "SELECT node_id, output FROM steps WHERE execution_id = ? AND output IS NOT NULL"
    outputs = read(path, sql, execution_id)
    assert outputs == [("a", b'{"k":1}'), ("b", b'{"a":{"k":1}}')]


async def test_emit_returns_at_once_and_flush_waits_for_the_commit(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    assert read(path, "SELECT count(*) FROM executions") == [(0,)]
    await store.writer.flush()
    assert read(path, "SELECT id FROM executions") == [(record.id,)]


async def test_flush_with_nothing_emitted_returns_at_once(store):
    async with asyncio.timeout(1):
        await store.writer.flush()


async def test_events_emitted_together_share_one_commit(store, path):
    statements = await trace(store)
    record = execution(exec_id(1), total_steps=2)
    store.writer.emit(created(record, ("a", "b")))
    for seq in range(1, 11):
        store.writer.emit(log(record.id, seq))
    store.writer.emit(updated(record, progress=50))
    await store.writer.flush()

    assert begins(statements) == 1
    assert len(starting(statements, "COMMIT")) == 1
    assert read(path, "SELECT count(*) FROM logs") == [(10,)]


async def test_a_group_writes_only_the_newest_record_of_each_step(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    statements = await trace(store)
    for attempt in range(1, 6):
        store.writer.emit(
            step_updated(record.id, 0, step("a", status="running", attempt_no=attempt))
        )
    store.writer.emit(step_updated(record.id, 0, step("a", status="succeeded", attempt_no=5)))
    await store.writer.flush()

    assert len(starting(statements, "UPDATE steps")) == 1
    newest = stored_step(path, record.id, 0)
    assert (newest.status, newest.attempt_no) == ("succeeded", 5)


async def test_a_group_writes_only_the_newest_record_of_each_execution(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    statements = await trace(store)
    for progress in (10, 20, 30):
        store.writer.emit(updated(record, progress=progress))
    await store.writer.flush()

    assert len(starting(statements, "UPDATE executions")) == 1
    assert stored_execution(path, record.id).progress == 30
    assert read(path, "SELECT status FROM executions") == [("running",)]


async def test_an_execution_created_in_the_group_goes_in_with_its_newest_records(store, path):
    statements = await trace(store)
    record = execution(exec_id(1), status="queued")
    store.writer.emit(created(record))
    store.writer.emit(step_updated(record.id, 0, step("a", status="succeeded")))
    store.writer.emit(updated(record, status="completed", progress=100))
    await store.writer.flush()

    assert starting(statements, "UPDATE") == []
    assert read(path, "SELECT status FROM executions") == [("completed",)]
    assert read(path, "SELECT status FROM steps") == [("succeeded",)]
    assert stored_execution(path, record.id).progress == 100


async def test_the_output_of_a_step_is_kept_when_a_later_event_has_none(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    succeeded = step("a", status="succeeded")
    store.writer.emit(step_updated(record.id, 0, succeeded, output={"n": 1}, leaf=True))
    store.writer.emit(step_updated(record.id, 0, succeeded))
    await store.writer.flush()

    sql = "SELECT output, is_leaf, artifacts, metrics FROM steps"
    assert read(path, sql) == [(b'{"n":1}', 1, b"[]", b"{}")]


async def test_a_later_group_wins_over_an_earlier_one(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    statements = await trace(store)

    store.writer.emit(updated(record, progress=10))
    store.writer.emit(log(record.id, 1))
    async with writer_held(store):  # the first group is on the database thread
        store.writer.emit(updated(record, progress=90))
        store.writer.emit(log(record.id, 2))
    await store.writer.flush()

    assert len(starting(statements, "UPDATE executions")) == 2  # one per group, oldest first
    assert stored_execution(path, record.id).progress == 90
    gids = read(path, "SELECT seq, gid FROM logs ORDER BY gid")
    assert [seq for seq, _ in gids] == [1, 2]


async def test_logs_get_global_ids_in_the_order_emitted_across_executions(store, path):
    first, second = execution(exec_id(1)), execution(exec_id(2))
    store.writer.emit(created(first))
    store.writer.emit(created(second))
    order = [(first.id, 1), (second.id, 1), (first.id, 2), (second.id, 2), (second.id, 3)]
    for execution_id, seq in order:
        store.writer.emit(log(execution_id, seq))
    await store.writer.flush()

    rows = read(path, "SELECT execution_id, seq, gid FROM logs ORDER BY gid")
    assert [(e, s) for e, s, _ in rows] == order
    assert [gid for _, _, gid in rows] == [1, 2, 3, 4, 5]


async def test_write_returns_what_the_work_returns(store):
    await store.writer.write(create_notes)
    assert await store.writer.write(add_note, "one") == 1
    assert await store.writer.write(add_note, "two") == 2


async def test_write_raises_the_works_own_error(store, path):
    await store.writer.write(create_notes)
    with pytest.raises(LookupError, match="refused x"):
        await store.writer.write(add_note_then_fail, "x")
    assert read(path, "SELECT count(*) FROM notes") == [(0,)]


async def test_a_failed_write_rolls_back_only_itself(store, path):
    await store.writer.write(create_notes)
    record = execution(exec_id(1))
    async with writer_held(store):
        store.writer.emit(created(record))
        before = asyncio.ensure_future(store.writer.write(add_note, "before"))
        failing = asyncio.ensure_future(store.writer.write(add_note_then_fail, "bad"))
        after = asyncio.ensure_future(store.writer.write(add_note, "after"))
        store.writer.emit(log(record.id, 1))
        await asyncio.sleep(0)  # the writes queue up behind the held group

    assert await before == 1
    with pytest.raises(LookupError):
        await failing
    assert await after == 2
    await store.writer.flush()
    assert read(path, "SELECT body FROM notes ORDER BY rowid") == [("before",), ("after",)]
    assert read(path, "SELECT id FROM executions") == [(record.id,)]
    assert read(path, "SELECT seq FROM logs") == [(1,)]


def count_executions(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM executions").fetchone()[0]


async def test_a_write_runs_after_the_events_emitted_before_it(store):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    assert await store.writer.write(count_executions) == 1


def short_busy_timeout(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 50")


async def test_a_failed_group_fails_its_waiters_and_is_retried_in_order(store, path):
    """A transient failure (another process holds the lock) fails the waiters, keeps the
    events in order, and writes them once the lock is gone."""
    await store.writer.write(short_busy_timeout)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    store.writer.emit(log(record.id, 1))
    with pytest.raises(StoreUnavailable, match="locked"):
        await store.writer.flush()
    with pytest.raises(StoreUnavailable):
        await store.writer.write(create_notes)  # a write is not retried
    store.writer.emit(log(record.id, 2))

    locker.execute("ROLLBACK")
    locker.close()
    assert read(path, "SELECT count(*) FROM executions") == [(0,)]  # all or nothing
    async with asyncio.timeout(5):
        await store.writer.flush()
    assert read(path, "SELECT seq FROM logs ORDER BY gid") == [(1,), (2,)]
    assert read(path, "SELECT id FROM executions") == [(record.id,)]
    assert read(path, "SELECT name FROM sqlite_master WHERE name = 'notes'") == []


async def test_bursts_while_the_log_is_locked_land_whole_and_in_order(store, path):
    """Groups sent while one fails are refused and sent again after it, in order; a burst
    during the pause after a failure waits for it rather than jumping ahead."""
    await store.writer.write(short_busy_timeout)
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    seq = 0
    for _ in range(3):  # three turns of 700 events: groups sent from emit() itself
        for _ in range(700):
            seq += 1
            store.writer.emit(log(record.id, seq))
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            async with asyncio.timeout(0.3):
                await store.writer.flush()
    locker.execute("ROLLBACK")
    locker.close()
    await flushed_after_retries(store)
    seqs = [s for (s,) in read(path, "SELECT seq FROM logs ORDER BY gid")]
    assert seqs == list(range(1, seq + 1))


async def test_close_waits_for_the_group_in_flight(path):
    store = await Store.open(path)
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await asyncio.sleep(0)  # the writer takes the event
    await store.close()
    assert read(path, "SELECT id FROM executions") == [(record.id,)]


async def test_close_writes_events_emitted_just_before_it(path):
    store = await Store.open(path)
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    try:
        async with asyncio.timeout(1):
            await store.close()
    finally:
        # On a timeout close() was cancelled, and its `finally` closed both connections.
        assert read(path, "SELECT id FROM executions") == [(record.id,)]


async def test_a_repeated_idempotency_key_does_not_stop_the_log(path):
    store = await Store.open(path)
    options = RunOptions(idempotency_key="once")
    first, second, other = execution(exec_id(1)), execution(exec_id(2)), execution(exec_id(3))
    try:
        store.writer.emit(created(first, options=options))
        await store.writer.flush()
        store.writer.emit(created(second, options=options))
        with contextlib.suppress(StoreUnavailable):
            await store.writer.flush()
        store.writer.emit(created(other))
        await store.writer.flush()
        assert read(path, "SELECT id FROM executions WHERE id = ?", other.id) == [(other.id,)]
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await store.close()


async def test_log_numbers_never_go_back_after_history_is_cleared(store):
    first = execution(exec_id(1))
    store.writer.emit(created(first))
    store.writer.emit(log(first.id, 1))
    store.writer.emit(log(first.id, 2))
    store.writer.emit(updated(first, status="completed"))
    await store.writer.flush()
    before = await store.follower.last_gid()

    cleared = await store.batches.clear_finished()
    assert cleared.executions == 1
    second = execution(exec_id(2))
    store.writer.emit(created(second))
    store.writer.emit(log(second.id, 1))
    await store.writer.flush()

    (row,) = await store.follower.rows_after(before)
    assert row.gid == before + 1  # a new number, not one a deleted row had


def wal_frames(path: str) -> int:
    """Pages written to the WAL since it last began (header 32 bytes, each frame 24 + a page)."""
    size = Path(f"{path}-wal").stat().st_size
    return (size - 32) // (24 + 4096) if size else 0


async def test_an_update_rewrites_the_execution_row_not_what_it_started_with(store, path):
    """A large input (or blueprint) is written once: each later group writes a few pages for
    the execution, not the whole input again (about 50 pages here, before migration 0014)."""
    record = execution(exec_id(1))
    store.writer.emit(created(record, input={"blob": "x" * 200_000}))
    await store.writer.flush()
    before = wal_frames(path)

    for progress in (10, 100, 5):  # records of another length: the row is written anew
        store.writer.emit(updated(record, progress=progress))
        await store.writer.flush()
    assert wal_frames(path) - before <= 3 * 4  # each commit: the row's pages and its indexes
    assert stored_execution(path, record.id).progress == 5


async def test_groups_sent_while_the_writer_works_share_its_next_commit(store, path):
    """Each loop turn's events go out at once, without waiting for a commit; those that wait
    in the writer process go into one transaction."""
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    statements = await trace(store)
    async with writer_held(store):  # one transaction
        for seq in range(1, 11):
            store.writer.emit(log(record.id, seq))
            await asyncio.sleep(0)  # one event a turn: a group each
    await store.writer.flush()
    assert begins(statements) == 2
    assert read(path, "SELECT count(*) FROM logs") == [(10,)]


async def test_a_long_turn_sends_groups_as_it_goes(store, path):
    """A turn of the loop that emits many events (inline nodes) does not wait for its end to
    send them: the writer process works while the engine does."""
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    async with writer_held(store):
        for seq in range(1, 2001):
            store.writer.emit(log(record.id, seq))
        assert store.writer._in_flight, "sent within the turn"
    await store.writer.flush()
    assert read(path, "SELECT count(*) FROM logs") == [(2000,)]


async def test_a_burst_that_never_ends_is_written_all_the_same(store, path):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    seq = 0
    async with asyncio.timeout(10):
        while read(path, "SELECT count(*) FROM executions") == [(0,)]:
            seq += 1
            store.writer.emit(log(record.id, seq))
            await asyncio.sleep(0)
    await store.writer.flush()
    assert read(path, "SELECT count(*) FROM logs") == [(seq,)]


async def test_a_write_that_cannot_cross_to_the_writer_process_says_why(store):
    with pytest.raises(TypeError, match="module-level function"):
        await store.writer.write(lambda conn: None)
    assert await store.writer.write(count_executions) == 0  # the writer goes on


async def test_a_store_error_comes_back_from_the_writer_process_as_raised(store):
    with pytest.raises(BlueprintNotFound) as raised:
        await store.blueprints.update("bp_missing", CHAIN)
    assert str(raised.value) == "No blueprint bp_missing"
    assert raised.value.blueprint_id == "bp_missing"


async def test_a_writer_process_that_dies_is_replaced_and_nothing_is_lost(store, path):
    """Whatever was not committed when it died is sent again, in order, to the next one."""
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    first = store.writer.process_id
    assert first is not None

    os.kill(first, signal.SIGKILL)
    for seq in range(1, 4):
        store.writer.emit(log(record.id, seq))
    with contextlib.suppress(StoreUnavailable):  # the waiters of a failed try learn of it
        await store.writer.flush()
    store.writer.emit(log(record.id, 4))
    await flushed_after_retries(store)

    assert store.writer.process_id not in (None, first)
    assert read(path, "SELECT seq FROM logs ORDER BY gid") == [(1,), (2,), (3,), (4,)]


async def test_the_writer_process_ends_when_the_store_closes(path):
    store = await Store.open(path)
    pid = store.writer.process_id
    await store.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_writer_process_dies_with_a_server_killed_outright(tmp_path):
    """After SIGKILL nothing may go on writing behind the back of the next server."""
    script = (
        "import asyncio, sys\n"
        "from store import Store\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1])\n"
        "    print(store.writer.process_id, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "blueprint.db")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        writer_pid = int(server.stdout.readline())
        os.kill(writer_pid, 0)  # alive
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(writer_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet collected by its (new) parent.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_closing_does_not_wait_for_statuses_still_to_store(path):
    """They are read the long way until stored; a server stopping should not wait for them."""
    store = await Store.open(path)
    for n in range(1, 1001):
        record = execution(exec_id(n))
        store.writer.emit(created(record))
        store.writer.emit(updated(record, status="completed", end_time=record.start_time))
    await store.writer.flush()
    await store.close()
    stored = read(path, "SELECT count(*) FROM finished_statuses")[0][0]
    assert stored < 1000
