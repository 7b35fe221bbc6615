"""Finished executions' statuses stored whole: written when the execution ends, rebuilt by any
later write to it, dropped with it, and always the same JSON as the long way gives."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from engine.events import LogAppended
from engine.records import LogEntry, LogLevel
from store import Store
from store.finished import rebuild_stored
from store.reads import SNAPSHOT_LOGS_LIMIT, StoredStatuses, read_status

ASKS = {
    "name": "asks",
    "nodes": [
        {"id": "start", "type": "noop"},
        {"id": "ask", "type": "input", "dependsOn": ["start"], "config": {"prompt": "Go?"}},
    ],
}
TWO = {"name": "two", "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "report"}]}


async def stored_body(store: Store, execution_id: str) -> bytes | None:
    """The stored row, once the writer has had a moment to store it."""
    await store.writer.idle()
    with sqlite3.connect(store.path) as conn:
        row = conn.execute(
            "SELECT body FROM finished_statuses WHERE execution_id = ?", (execution_id,)
        ).fetchone()
    conn.close()
    return None if row is None else row[0]


async def the_long_way(store: Store, execution_id: str) -> bytes | None:
    """The status as four queries assemble it, on a connection of the test's own."""
    with sqlite3.connect(store.path) as conn:
        found = read_status(conn, execution_id, SNAPSHOT_LOGS_LIMIT, (), stored=False)
    conn.close()
    return None if found is None else found[0]


async def test_a_finished_execution_has_its_status_stored_as_the_long_way_reads_it(
    store, run_blueprint
):
    execution_id = await run_blueprint(TWO, input={"k": 1})
    body = await stored_body(store, execution_id)
    assert body is not None and json.loads(body)["status"] == "completed"
    assert body == await the_long_way(store, execution_id)
    assert await store.executions.status(execution_id, SNAPSHOT_LOGS_LIMIT) == body


async def test_an_execution_still_going_has_none_until_it_ends(store, engine, run_blueprint):
    execution_id = await run_blueprint(ASKS)
    assert await stored_body(store, execution_id) is None
    assert json.loads(await store.executions.status(execution_id, 100))["status"] == "paused"


async def test_a_late_log_line_rebuilds_the_stored_status(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    before = json.loads(await stored_body(store, execution_id))

    await store.deliveries.append_log(execution_id, LogLevel.INFO, "Webhook delivered")
    after = json.loads(await stored_body(store, execution_id))
    assert after["logs"][-1]["message"] == "Webhook delivered"
    assert len(after["logs"]) == len(before["logs"]) + 1
    body = await store.executions.status(execution_id, SNAPSHOT_LOGS_LIMIT)
    assert body == await stored_body(store, execution_id) == await the_long_way(store, execution_id)


async def test_a_late_event_from_the_engine_rebuilds_it_too(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    last = json.loads(await stored_body(store, execution_id))["logs"][-1]["seq"]
    entry = LogEntry(
        seq=last + 1, timestamp="2024-12-01T10:00:00.000Z", level=LogLevel.WARN,
        node_id=None, message="noted after the end",
    )  # fmt: skip
    store.writer.emit(LogAppended(execution_id=execution_id, entry=entry))
    await store.writer.flush()
    assert json.loads(await stored_body(store, execution_id))["logs"][-1]["message"] == (
        "noted after the end"
    )
    assert await stored_body(store, execution_id) == await the_long_way(store, execution_id)


async def test_a_late_write_rebuilds_only_a_row_already_stored(store, run_blueprint):
    # One without a row is still queued to be stored, and is read in full when it is.
    execution_id = await run_blueprint(TWO)
    stored = await stored_body(store, execution_id)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE finished_statuses SET body = '{}'")
        rebuild_stored(conn, [execution_id])
        assert conn.execute("SELECT body FROM finished_statuses").fetchall() == [(stored,)]
        conn.execute("DELETE FROM finished_statuses")
        rebuild_stored(conn, [execution_id])
        assert conn.execute("SELECT count(*) FROM finished_statuses").fetchone() == (0,)
    conn.close()


async def test_a_row_found_once_is_found_again_after_it_moves_or_goes(store, run_blueprint):
    # Reads remember where a row was; a rebuilt row gets a new rowid, and the old one may
    # hold another execution's status by then.
    first, second = await run_blueprint(TWO), await run_blueprint(TWO)
    await store.writer.idle()
    stored = StoredStatuses(store.path)
    try:
        first_body, second_body = stored.get(first), stored.get(second)
        assert first_body is not None and second_body is not None
        with sqlite3.connect(store.path) as conn:
            swap = "UPDATE finished_statuses SET rowid = rowid + 1000 WHERE execution_id = ?"
            (old,) = conn.execute(
                "SELECT rowid FROM finished_statuses WHERE execution_id = ?", (first,)
            ).fetchone()
            conn.execute(swap, (first,))
            conn.execute(
                "UPDATE finished_statuses SET rowid = ? WHERE execution_id = ?", (old, second)
            )
        conn.close()
        stored.refresh()
        assert (stored.get(first), stored.get(second)) == (first_body, second_body)
        with sqlite3.connect(store.path) as conn:
            conn.execute("DELETE FROM finished_statuses WHERE execution_id = ?", (first,))
        conn.close()
        stored.refresh()
        assert (stored.get(first), stored.get(second)) == (None, second_body)
    finally:
        stored.close()


async def test_other_variants_read_the_long_way(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    short = json.loads(await store.executions.status(execution_id, 2))
    assert len(short["logs"]) == 2 and short["logsTruncated"] is True
    full = json.loads(await store.executions.status(execution_id, 100, ["metrics"]))
    assert full["metrics"]["reported"] == {"b": {"rows": 3}}


async def test_without_a_stored_row_the_status_is_read_the_long_way(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    expected = await stored_body(store, execution_id)
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM finished_statuses")
    conn.close()
    store.cache.clear()
    assert await store.executions.status(execution_id, SNAPSHOT_LOGS_LIMIT) == expected


async def test_clearing_finished_history_drops_the_stored_rows(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    assert await stored_body(store, execution_id) is not None
    cleared = await store.batches.clear_finished()
    assert cleared.executions == 1
    assert await stored_body(store, execution_id) is None
    assert await store.executions.status(execution_id, SNAPSHOT_LOGS_LIMIT) is None


async def test_a_stored_status_is_had_without_waiting_for_the_reader(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    body = await stored_body(store, execution_id)
    store.cache.clear()
    assert store.executions.cached_status(execution_id, SNAPSHOT_LOGS_LIMIT) == body
    assert store.executions.cached_status(execution_id, 5) is None  # not stored: the long way
    assert store.executions.cached_status("exec_1_xxxxx", SNAPSHOT_LOGS_LIMIT) is None


async def test_a_row_rebuilt_after_a_read_is_what_the_next_read_gets(store, run_blueprint):
    execution_id = await run_blueprint(TWO)
    await stored_body(store, execution_id)
    store.cache.clear()
    first = store.executions.cached_status(execution_id, SNAPSHOT_LOGS_LIMIT)
    assert first is not None  # read inside the stored rows' read transaction

    await store.deliveries.append_log(execution_id, LogLevel.INFO, "Webhook delivered")
    store.cache.clear()
    again = store.executions.cached_status(execution_id, SNAPSHOT_LOGS_LIMIT)
    assert again is not None and b"Webhook delivered" in again and b"Webhook" not in first


async def test_another_server_s_rebuilt_row_is_seen_within_a_poll(store, path, run_blueprint):
    execution_id = await run_blueprint(TWO)
    await stored_body(store, execution_id)
    assert store.executions.cached_status(execution_id, SNAPSHOT_LOGS_LIMIT) is not None

    other = await Store.open(path)
    try:
        await other.deliveries.append_log(execution_id, LogLevel.INFO, "noted elsewhere")
    finally:
        await other.close()
    for _ in range(200):
        body = store.executions.cached_status(execution_id, SNAPSHOT_LOGS_LIMIT)
        if body is not None and b"noted elsewhere" in body:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the other server's line never reached this one's stored status")


async def test_a_stored_status_takes_room_in_memory_from_its_second_read(store, run_blueprint):
    first, second = await run_blueprint(TWO), await run_blueprint(TWO)
    await store.writer.idle()
    store.cache.clear()
    assert store.executions.cached_status(first, SNAPSHOT_LOGS_LIMIT) is not None
    assert store.executions.cached_status(second, SNAPSHOT_LOGS_LIMIT) is not None
    assert len(store.cache) == 0  # read once each: many executions read once would churn it
    body = store.executions.cached_status(first, SNAPSHOT_LOGS_LIMIT)
    assert len(store.cache) == 1
    assert store.executions.cached_status(first, SNAPSHOT_LOGS_LIMIT) is body  # from memory
