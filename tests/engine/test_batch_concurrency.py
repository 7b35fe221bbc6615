"""A batch's own concurrency (RunOptions.batch_concurrency): never more than N of its executions
run at once, checked from the times the log recorded; the rest wait queued, first in first out,
while executions of other batches (or none) pass them by."""

from __future__ import annotations

import pytest

from engine.clock import now_iso
from engine.control import ProvideInput
from engine.ids import new_id
from engine.model import RunOptions
from store.batches import BatchItem, BatchRow
from tests.engine.conftest import (
    assert_consistent,
    blueprint,
    logged,
    ms,
    poll,
    probe_node,
    start,
    wait_logged,
    wait_until,
)


async def start_batch(engine, store, gates: list[str], concurrency: int) -> tuple[str, list[str]]:
    """One execution per gate, as batch.start makes them: the batch row first, then each."""
    batch_id = new_id("batch")
    ids = [new_id("exec") for _ in gates]
    row = BatchRow(
        id=batch_id,
        source_type="workflows",
        folder_path=None,
        concurrency=concurrency,
        total=len(gates),
        status="running",
        completed=0,
        failed=0,
        running=0,
        queued=len(gates),
        created_at=now_iso(),
        ended_at=None,
    )
    items = [
        BatchItem(position=i, execution_id=e, blueprint_id=None, workflow_path=None)
        for i, e in enumerate(ids)
    ]
    await store.batches.create(row, items)
    for execution_id, gate in zip(ids, gates, strict=True):
        await engine.start(
            engine.validate(blueprint(probe_node(gate, gate=gate))),
            blueprint_id=None,
            blueprint_version=None,
            options=RunOptions(batch_concurrency=concurrency),
            batch_id=batch_id,
            execution_id=execution_id,
        )
    return batch_id, ids


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    """The most intervals [start, end) that overlap at any instant."""
    edges = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    most = now = 0
    for _, change in edges:
        now += change
        most = max(most, now)
    return most


async def recorded_intervals(store, ids: list[str]) -> tuple[list, list]:
    """From the log: when each execution ran (its start line to its end) and when its steps ran."""
    runs, steps = [], []
    for execution_id in ids:
        seen = await logged(store, execution_id)
        assert_consistent(seen)
        (started,) = [e for e in seen.logs if e.message.startswith("Execution started")]
        runs.append((ms(started.timestamp), ms(seen.execution.end_time)))
        steps += [(ms(s.started_at), ms(s.completed_at)) for s in seen.steps.values()]
    return runs, steps


async def statuses(store, ids: list[str]) -> list[str]:
    return [await store.executions.status_of(i) for i in ids]


async def wait_statuses(store, ids: list[str], expected: list[str]) -> None:
    async def reached():
        return await statuses(store, ids) == expected

    await poll(f"statuses {expected}", reached)


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_never_more_than_the_batch_limit_run_at_once(durable, probe, limit):
    engine = await durable.boot()
    store = durable.store
    gates = [f"g{n}" for n in range(6)]
    batch_id, ids = await start_batch(engine, store, gates, limit)
    await wait_statuses(store, ids, ["running"] * limit + ["queued"] * (6 - limit))
    assert probe.running == limit

    for n, gate in enumerate(gates):
        probe.gate(gate).set()
        await wait_logged(store, ids[n], "completed")
        assert probe.most_running <= limit
        if n + limit < len(ids):
            # The next one in line takes the freed slot, and no other.
            expected = ["completed"] * (n + 1) + ["running"] * limit
            expected += ["queued"] * (len(ids) - len(expected))
            await wait_statuses(store, ids, expected)

    runs, steps = await recorded_intervals(store, ids)
    assert most_at_once(runs) == limit
    assert most_at_once(steps) == limit
    # First in, first out: each started in the order it was created.
    assert [start for start, _ in runs] == sorted(start for start, _ in runs)
    row, _ = await store.batches.get(batch_id)
    assert (row.status, row.completed, row.running, row.queued) == ("completed", 6, 0, 0)


async def test_executions_outside_the_batch_pass_its_queue(durable, probe):
    engine = await durable.boot()
    store = durable.store
    _, first = await start_batch(engine, store, ["a0", "a1", "a2"], 1)
    _, second = await start_batch(engine, store, ["b0", "b1"], 1)
    alone = await start(engine, blueprint(probe_node("alone", gate="alone")))
    expected = ["running", "queued", "queued", "running", "queued", "running"]
    await wait_statuses(store, [*first, *second, alone], expected)
    for gate in ("a0", "a1", "a2", "b0", "b1", "alone"):
        probe.gate(gate).set()
    for execution_id in (*first, *second, alone):
        await wait_logged(store, execution_id, "completed")
    runs, _ = await recorded_intervals(store, first)
    assert most_at_once(runs) == 1
    runs, _ = await recorded_intervals(store, second)
    assert most_at_once(runs) == 1


async def test_the_global_limit_still_holds_under_a_larger_batch_limit(durable, probe):
    engine = await durable.boot(max_running_executions=2)
    store = durable.store
    gates = [f"g{n}" for n in range(4)]
    _, ids = await start_batch(engine, store, gates, 4)
    await wait_statuses(store, ids, ["running", "running", "queued", "queued"])
    for gate in gates:
        probe.gate(gate).set()
    for execution_id in ids:
        await wait_logged(store, execution_id, "completed")
    runs, _ = await recorded_intervals(store, ids)
    assert most_at_once(runs) == 2
    assert probe.most_running == 2


async def test_a_paused_execution_gives_its_batch_slot_to_the_next(durable, probe):
    engine = await durable.boot()
    store = durable.store
    batch_id = new_id("batch")
    ask = blueprint({"id": "ask", "type": "input", "config": {"prompt": "?"}})
    asked = await engine.start(
        engine.validate(ask),
        blueprint_id=None,
        blueprint_version=None,
        options=RunOptions(batch_concurrency=1),
        batch_id=batch_id,
    )
    following = await engine.start(
        engine.validate(blueprint(probe_node("next", gate="next"))),
        blueprint_id=None,
        blueprint_version=None,
        options=RunOptions(batch_concurrency=1),
        batch_id=batch_id,
    )
    await wait_logged(store, asked.id, "paused")
    await wait_until(lambda: probe.running == 1, timeout=30)
    assert await store.executions.status_of(following.id) == "running"
    probe.gate("next").set()
    await wait_logged(store, following.id, "completed")


async def test_a_continued_execution_resumes_at_once_even_past_its_batch_limit(durable, probe):
    """As documented in engine.md: a paused execution gives its slot up, and an answer resumes
    it at once rather than sending the person who answered to the back of the queue."""
    engine = await durable.boot()
    store = durable.store
    batch_id = new_id("batch")
    options = RunOptions(batch_concurrency=1)
    asks = blueprint(
        {"id": "ask", "type": "input", "config": {"prompt": "?"}},
        probe_node("after", gate="after", dependsOn=["ask"]),
    )
    ids = []
    for document in (asks, blueprint(probe_node("other", gate="other"))):
        started = await engine.start(
            engine.validate(document),
            blueprint_id=None,
            blueprint_version=None,
            options=options,
            batch_id=batch_id,
        )
        ids.append(started.id)
    await wait_statuses(store, ids, ["paused", "running"])
    await wait_until(lambda: probe.running == 1, timeout=30)
    assert (await engine.control(ids[0], ProvideInput(data={}))).applied
    await wait_until(lambda: probe.running == 2, timeout=30)
    probe.gate("other").set()
    probe.gate("after").set()
    for execution_id in ids:
        await wait_logged(store, execution_id, "completed")
    worked = []  # when each probe ran: the input node only waited
    for execution_id in ids:
        for step in (await logged(store, execution_id)).steps.values():
            if step.type == "probe":
                worked.append((ms(step.started_at), ms(step.completed_at)))
    assert most_at_once(worked) == 2
