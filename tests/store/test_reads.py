"""Status assembly, log paging, lists and active executions, read back from real files."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from engine.records import LogLevel
from store._thread import run_on_thread
from tests.store._events import (
    at,
    created,
    exec_id,
    execution,
    log,
    step,
    step_updated,
    updated,
)

# Leaves: slow, report, never (skipped), check (fails, continueOnError), side; node order differs
# from finishing order, since `slow` ends last.
MIXED = {
    "name": "mixed",
    "nodes": [
        {"id": "start", "type": "noop"},
        {"id": "slow", "type": "delay", "dependsOn": ["start"], "config": {"ms": 30}},
        {"id": "report", "type": "report", "dependsOn": ["start"]},
        {"id": "cond", "type": "condition", "dependsOn": ["start"],
         "config": {"expression": "`false`", "then": ["never"]}},
        {"id": "never", "type": "noop", "dependsOn": ["cond"]},
        {"id": "check", "type": "assert", "dependsOn": ["start"], "continueOnError": True,
         "config": {"expression": "`false`", "message": "no"}},
        {"id": "side", "type": "transform", "dependsOn": ["start"],
         "config": {"expression": "input.k"}},
    ],
}  # fmt: skip
NODE_IDS = [node["id"] for node in MIXED["nodes"]]
STATUS_FIELDS = {
    *("id", "blueprintId", "blueprintVersion", "batchId", "status", "progress", "metadata"),
    *("startTime", "endTime", "updatedAt", "error", "steps", "logs", "logsTruncated"),
    *("totalSteps", "completedSteps", "failedSteps", "runningSteps", "skippedSteps"),
    *("currentStep", "runningNodeIds", "awaitingInput", "pausedNodeId", "pauseReason"),
    "finalOutputs",
}
STEP_FIELDS = {
    *("stepId", "nodeId", "name", "type", "status", "attemptNo", "predecessorsLeft"),
    *("queuedAt", "startedAt", "completedAt", "durationMs", "nextRetryAt", "error", "attempts"),
}
ARTIFACT = {"type": "file", "outputId": "rows", "url": "http://127.0.0.1/rows.csv"}


async def status_of(store, execution_id: str, logs_limit: int = 100, include=()) -> Any:
    body = await store.executions.status(execution_id, logs_limit, include)
    return None if body is None else json.loads(body)


@pytest.fixture
async def mixed(run_blueprint) -> str:
    return await run_blueprint(MIXED, input={"k": 7}, metadata={"team": "ops"})


async def test_a_completed_status_has_every_field(store, mixed):
    status = await status_of(store, mixed)
    assert set(status) >= STATUS_FIELDS
    assert status["id"] == mixed
    assert (status["status"], status["progress"], status["endTime"] is not None) == (
        "completed",
        100,
        True,
    )
    counts = [status[k] for k in ("totalSteps", "completedSteps", "failedSteps", "skippedSteps")]
    assert counts == [7, 6, 1, 1]
    assert status["metadata"] == {"team": "ops"}
    assert status["error"] is None and status["runningNodeIds"] == []


async def test_steps_come_in_node_order_with_every_field(store, mixed):
    steps = (await status_of(store, mixed))["steps"]
    assert [s["nodeId"] for s in steps] == NODE_IDS
    assert all(set(s) >= STEP_FIELDS for s in steps)
    by_node = {s["nodeId"]: s["status"] for s in steps}
    assert (by_node["never"], by_node["check"], by_node["slow"]) == (
        "skipped",
        "failed",
        "succeeded",
    )


async def test_logs_are_all_there_oldest_first_when_under_the_limit(store, mixed):
    status = await status_of(store, mixed, logs_limit=1000)
    seqs = [entry["seq"] for entry in status["logs"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert status["logsTruncated"] is False
    assert {"seq", "timestamp", "level", "nodeId", "message", "data"} <= set(status["logs"][0])


async def test_logs_are_the_newest_ones_up_to_the_limit(store, mixed):
    total = len((await status_of(store, mixed, logs_limit=1000))["logs"])
    status = await status_of(store, mixed, logs_limit=3)
    assert [entry["seq"] for entry in status["logs"]] == [total - 2, total - 1, total]
    assert status["logsTruncated"] is True


async def test_logs_limit_equal_to_the_count_is_not_truncated(store, mixed):
    total = len((await status_of(store, mixed, logs_limit=1000))["logs"])
    assert (await status_of(store, mixed, logs_limit=total))["logsTruncated"] is False


async def test_logs_limit_zero_gives_no_logs_but_says_they_were_truncated(store, mixed):
    status = await status_of(store, mixed, logs_limit=0)
    assert status["logs"] == []
    assert status["logsTruncated"] is True


async def test_an_execution_without_logs_is_not_truncated(store):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    for limit in (0, 10):
        status = await status_of(store, record.id, logs_limit=limit)
        assert (status["logs"], status["logsTruncated"]) == ([], False)


async def test_final_outputs_are_the_succeeded_leaves_in_node_order(store, mixed):
    finals = (await status_of(store, mixed))["finalOutputs"]
    assert finals == [
        {"nodeId": "slow", "output": {"sleptMs": 30}, "artifacts": []},
        {"nodeId": "report", "output": {"rows": 3}, "artifacts": [ARTIFACT]},
        {"nodeId": "side", "output": 7, "artifacts": []},
    ]


async def test_without_include_there_are_no_optional_parts(store, mixed):
    status = await status_of(store, mixed)
    assert not {"outputs", "artifacts", "metrics"} & set(status)


async def test_include_outputs_gives_every_stored_output_by_node(store, mixed):
    status = await status_of(store, mixed, include=["outputs"])
    assert status["outputs"] == {
        "start": {"k": 7},
        "slow": {"sleptMs": 30},
        "report": {"rows": 3},
        "cond": {"result": False, "branch": "else"},
        "side": 7,
    }
    assert not {"artifacts", "metrics"} & set(status)


async def test_include_artifacts_lists_each_with_its_node(store, mixed):
    status = await status_of(store, mixed, include=["artifacts"])
    assert status["artifacts"] == [{"nodeId": "report", **ARTIFACT}]


async def test_include_metrics_gives_durations_attempts_and_reported_values(store, mixed):
    status = await status_of(store, mixed, include=["metrics"])
    metrics = status["metrics"]
    assert set(metrics) == {"durationMs", "steps", "reported"}
    assert metrics["durationMs"] == status["durationMs"] >= 30
    assert list(metrics["steps"]) == NODE_IDS
    assert metrics["steps"]["slow"]["durationMs"] >= 30
    assert metrics["steps"]["slow"]["attempts"] == 1
    assert metrics["reported"] == {"report": {"rows": 3.0}}


async def test_include_all_three_together(store, mixed):
    status = await status_of(store, mixed, include=["metrics", "outputs", "artifacts"])
    assert {"outputs", "artifacts", "metrics"} <= set(status)


async def test_an_unknown_execution_has_no_status(store):
    assert await store.executions.status(exec_id(404), 100) is None
    assert await store.executions.exists(exec_id(404)) is False


async def test_a_running_execution_reads_as_running(store):
    record = execution(exec_id(1), total_steps=2, running_node_ids=("a",), current_step="a")
    store.writer.emit(created(record, ("a", "b")))
    store.writer.emit(step_updated(record.id, 0, step("a", status="running")))
    await store.writer.flush()
    status = await status_of(store, record.id)
    assert (status["status"], status["currentStep"], status["endTime"]) == ("running", "a", None)
    assert [s["status"] for s in status["steps"]] == ["running", "queued"]
    assert status["finalOutputs"] == []
    assert await store.executions.exists(record.id) is True


async def test_a_status_is_read_from_one_snapshot(store):
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    await store.writer.flush()
    reached, gate = threading.Event(), threading.Event()

    def pause_before_steps(sql: str) -> None:
        if sql.startswith("SELECT record FROM steps"):
            reached.set()
            gate.wait(5)

    await run_on_thread(store._reader_db, lambda c: c.set_trace_callback(pause_before_steps))
    reading = asyncio.ensure_future(store.executions.status(record.id, 10))
    while not reached.is_set():
        await asyncio.sleep(0.001)
    store.writer.emit(
        step_updated(record.id, 0, step("a", status="succeeded"), output=1, leaf=True)
    )
    store.writer.emit(updated(record, status="completed", completed_steps=1, progress=100))
    await store.writer.flush()
    gate.set()
    status = json.loads(await reading)
    await run_on_thread(store._reader_db, lambda c: c.set_trace_callback(None))

    succeeded = [s["nodeId"] for s in status["steps"] if s["status"] == "succeeded"]
    assert status["completedSteps"] == len(succeeded)


# Log paging


@pytest.fixture
async def logged(store) -> str:
    """An execution with 10 entries: levels cycle trace..error, odd seqs belong to node a."""
    record = execution(exec_id(1), total_steps=2)
    store.writer.emit(created(record, ("a", "b")))
    levels = list(LogLevel)
    for seq in range(1, 11):
        level = levels[(seq - 1) % len(levels)]
        store.writer.emit(log(record.id, seq, level.value, "a" if seq % 2 else "b"))
    await store.writer.flush()
    return record.id


async def logs_after(store, execution_id, after=0, limit=200, level="trace", node_id=None):
    rows = await store.executions.logs_after(execution_id, after, limit, LogLevel(level), node_id)
    entries = [json.loads(entry) for _, entry in rows]
    assert [seq for seq, _ in rows] == [entry["seq"] for entry in entries]
    return entries


async def test_logs_after_pages_by_seq(store, logged):
    first = await logs_after(store, logged, after=0, limit=4)
    second = await logs_after(store, logged, after=first[-1]["seq"], limit=4)
    third = await logs_after(store, logged, after=second[-1]["seq"], limit=4)
    assert [[e["seq"] for e in page] for page in (first, second, third)] == [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10],
    ]
    assert await logs_after(store, logged, after=10) == []


async def test_logs_after_keeps_the_minimum_level_and_above(store, logged):
    entries = await logs_after(store, logged, level="warn")
    assert [(e["seq"], e["level"]) for e in entries] == [
        (4, "warn"),
        (5, "error"),
        (9, "warn"),
        (10, "error"),
    ]


async def test_logs_after_filters_by_node(store, logged):
    entries = await logs_after(store, logged, node_id="b")
    assert [e["seq"] for e in entries] == [2, 4, 6, 8, 10]
    assert {e["nodeId"] for e in entries} == {"b"}


async def test_logs_after_combines_its_filters_before_the_limit(store, logged):
    entries = await logs_after(store, logged, after=3, limit=2, level="debug", node_id="a")
    assert [e["seq"] for e in entries] == [5, 7]


async def test_logs_after_of_an_unknown_execution_is_empty(store, logged):
    assert await logs_after(store, exec_id(404)) == []


# Lists


@pytest.fixture
async def listed(store) -> list[str]:
    """Six executions a second apart, oldest first, with statuses, blueprints and batches."""
    shapes = [
        ("completed", "bp_1", None),
        ("failed", "bp_1", "batch_1"),
        ("running", "bp_2", "batch_1"),
        ("completed", "bp_2", "batch_1"),
        ("queued", None, None),
        ("paused", "bp_1", None),
    ]
    ids = []
    for n, (status, blueprint_id, batch_id) in enumerate(shapes, start=1):
        record = execution(exec_id(n), status, at(n), blueprint_id=blueprint_id, batch_id=batch_id)
        store.writer.emit(created(record))
        ids.append(record.id)
    await store.writer.flush()
    return ids


async def list_ids(store, *, limit=20, offset=0, **filters):
    filters = {"status": None, "blueprint_id": None, "batch_id": None, **filters}
    total, records = await store.executions.list(limit=limit, offset=offset, **filters)
    return total, [record.id for record in records]


async def test_list_is_newest_first_with_the_total(store, listed):
    assert await list_ids(store) == (6, listed[::-1])


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "completed"}, [4, 1]),
        ({"blueprint_id": "bp_1"}, [6, 2, 1]),
        ({"batch_id": "batch_1"}, [4, 3, 2]),
        ({"blueprint_id": "bp_2", "status": "running"}, [3]),
        ({"status": "cancelled"}, []),
    ],
)
async def test_list_filters(store, listed, filters, expected):
    assert await list_ids(store, **filters) == (len(expected), [exec_id(n) for n in expected])


async def test_list_total_counts_beyond_limit_and_offset(store, listed):
    assert await list_ids(store, limit=2, offset=1) == (6, [listed[4], listed[3]])
    assert await list_ids(store, limit=2, offset=6) == (6, [])
    assert await list_ids(store, blueprint_id="bp_1", limit=1, offset=1) == (3, [listed[1]])


async def test_list_gives_the_newest_records(store, listed):
    store.writer.emit(updated(execution(listed[4], "queued", at(5)), status="running"))
    await store.writer.flush()
    _, records = await store.executions.list(
        status="running", blueprint_id=None, batch_id=None, limit=20, offset=0
    )
    assert [(r.id, r.status) for r in records] == [(listed[4], "running"), (listed[2], "running")]


async def test_list_is_newest_first_within_one_millisecond(store):
    older = execution("exec_1733047200000_zzzzz")
    newer = execution("exec_1733047200000_aaaaa")
    store.writer.emit(created(older))
    store.writer.emit(created(newer))
    await store.writer.flush()
    assert await list_ids(store) == (2, [newer.id, older.id])


async def test_active_is_the_queued_running_and_paused_newest_first(store, listed):
    active = await store.executions.active()
    assert [(r.id, r.status) for r in active] == [
        (listed[5], "paused"),
        (listed[4], "queued"),
        (listed[2], "running"),
    ]


async def test_count_active_counts_each_active_status(store, listed):
    assert await store.executions.count_active() == {"queued": 1, "running": 1, "paused": 1}


async def test_count_active_is_zeros_when_nothing_is_active(store):
    assert await store.executions.active() == []
    assert await store.executions.count_active() == {"queued": 0, "running": 0, "paused": 0}
