"""Batches in the log: counts kept in step with their executions, per-execution rows, the list,
stopping, and clearing finished history while keeping what is active."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from engine.clock import now_iso
from engine.control import Stop
from engine.engine import Engine, EngineLimits
from engine.errors import NodeError
from engine.ids import new_id
from engine.model import RunOptions
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from store import Store
from store.batches import BatchItem, BatchRow
from tests.store._events import at, read


class GateConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    fail: bool = False


class Gates:
    """Named events the `gate` node type waits for."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def __getitem__(self, name: str) -> asyncio.Event:
        return self._events.setdefault(name, asyncio.Event())


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
async def engine(store: Store, gates: Gates) -> AsyncIterator[Engine]:
    """An engine on the store that applies commands, with a `gate` node type."""
    registry = NodeRegistry()
    register_builtins(registry)

    @registry.node_type("gate", config=GateConfig)
    async def gate(ctx, config: GateConfig):
        await gates[config.name].wait()
        if config.fail:
            raise NodeError("GATE_FAILED", f"gate {config.name} failed", retryable=False)
        return {"gate": config.name}

    engine = Engine(
        registry, store.writer, EngineLimits(control_poll_seconds=0.05), controls=store.controls
    )
    engine.start_background()
    yield engine
    await engine.close()
    await asyncio.sleep(0)


def gated(name: str, fail: bool = False) -> dict:
    return {
        "name": name,
        "nodes": [{"id": "g", "type": "gate", "config": {"name": name, "fail": fail}}],
    }


def batch_row(batch_id: str, total: int, concurrency: int = 2, **changes) -> BatchRow:
    fields = {
        "id": batch_id,
        "source_type": "workflows",
        "folder_path": None,
        "concurrency": concurrency,
        "total": total,
        "status": "running",
        "completed": 0,
        "failed": 0,
        "running": 0,
        "queued": total,
        "created_at": now_iso(),
        "ended_at": None,
    }
    return BatchRow(**(fields | changes))


async def start_batch(
    store: Store,
    engine: Engine,
    documents: list[dict],
    concurrency: int = 2,
    total: int | None = None,
) -> tuple[str, list[str]]:
    """What batch.start does: the batch and its items first, then one execution per document."""
    batch_id = new_id("batch")
    ids = [new_id("exec") for _ in documents]
    count = len(documents) if total is None else total
    items = [
        BatchItem(position=i, execution_id=ids[i], blueprint_id=f"bp_{i}", workflow_path=None)
        for i in range(len(documents))
    ]
    await store.batches.create(batch_row(batch_id, count, concurrency), items)
    for execution_id, document in zip(ids, documents, strict=True):
        await engine.start(
            engine.validate(document),
            blueprint_id=None,
            blueprint_version=None,
            options=RunOptions(batch_concurrency=concurrency),
            batch_id=batch_id,
            execution_id=execution_id,
        )
    await store.writer.flush()
    return batch_id, ids


def counts(row: BatchRow) -> dict[str, object]:
    return {
        "status": row.status,
        "completed": row.completed,
        "failed": row.failed,
        "running": row.running,
        "queued": row.queued,
    }


async def wait_batch(store: Store, batch_id: str, status: str, timeout: float = 30):
    async with asyncio.timeout(timeout):
        while True:
            found = await store.batches.get(batch_id)
            assert found is not None
            if found[0].status == status:
                return found
            await asyncio.sleep(0.01)


async def test_counts_and_items_follow_the_executions(store, engine, gates):
    batch_id, ids = await start_batch(
        store, engine, [gated("0"), gated("1"), gated("2"), gated("3")], concurrency=2
    )
    row, items = await store.batches.get(batch_id)
    assert counts(row) == {
        "status": "running",
        "completed": 0,
        "failed": 0,
        "running": 2,
        "queued": 2,
    }
    assert [i.item.execution_id for i in items] == ids
    assert [i.item.position for i in items] == [0, 1, 2, 3]
    assert [i.item.blueprint_id for i in items] == ["bp_0", "bp_1", "bp_2", "bp_3"]
    assert [i.status for i in items] == ["running", "running", "queued", "queued"]
    assert [i.current_node_id for i in items] == ["g", "g", None, None]

    gates["0"].set()
    async with asyncio.timeout(30):
        while (await store.batches.get(batch_id))[1][2].status != "running":
            await asyncio.sleep(0.01)
    row, items = await store.batches.get(batch_id)
    assert counts(row) == {
        "status": "running",
        "completed": 1,
        "failed": 0,
        "running": 2,
        "queued": 1,
    }
    assert [i.status for i in items] == ["completed", "running", "running", "queued"]

    for name in "123":
        gates[name].set()
    row, items = await wait_batch(store, batch_id, "completed")
    assert counts(row) == {
        "status": "completed",
        "completed": 4,
        "failed": 0,
        "running": 0,
        "queued": 0,
    }
    ended = read(store.path, "SELECT max(ended_at) FROM executions WHERE batch_id = ?", batch_id)
    assert row.ended_at == ended[0][0] is not None


async def test_a_batch_with_a_failed_execution_is_failed(store, engine, gates):
    batch_id, _ = await start_batch(store, engine, [gated("ok"), gated("bad", fail=True)])
    gates["ok"].set()
    gates["bad"].set()
    row, items = await wait_batch(store, batch_id, "failed")
    assert counts(row) == {
        "status": "failed",
        "completed": 1,
        "failed": 1,
        "running": 0,
        "queued": 0,
    }
    assert [i.status for i in items] == ["completed", "failed"]


async def test_a_paused_execution_counts_as_running(store, engine):
    ask = {"name": "ask", "nodes": [{"id": "ask", "type": "input", "config": {"prompt": "?"}}]}
    batch_id, _ = await start_batch(store, engine, [ask])
    async with asyncio.timeout(30):
        while (await store.batches.get(batch_id))[1][0].status != "paused":
            await asyncio.sleep(0.01)
    row, _ = await store.batches.get(batch_id)
    assert counts(row) == {
        "status": "running",
        "completed": 0,
        "failed": 0,
        "running": 1,
        "queued": 0,
    }


async def test_items_not_yet_created_count_as_queued_and_keep_the_batch_running(store, engine):
    noop = {"name": "n", "nodes": [{"id": "n", "type": "noop"}]}
    batch_id, ids = await start_batch(store, engine, [noop], total=3)
    async with asyncio.timeout(30):
        while (await store.executions.status_of(ids[0])) != "completed":
            await asyncio.sleep(0.01)
    await store.writer.flush()
    row, _ = await store.batches.get(batch_id)
    assert counts(row) == {
        "status": "running",
        "completed": 1,
        "failed": 0,
        "running": 0,
        "queued": 2,
    }


async def test_an_unknown_batch_is_none(store):
    assert await store.batches.get("batch_1_aaaaa") is None


# The list


@pytest.fixture
async def listed(store) -> list[str]:
    """Six batches, one a second, oldest first; every third one completed."""
    ids = []
    for n in range(6):
        status = "completed" if n % 3 == 0 else "running"
        batch_id = f"batch_{n}_aaaaa"
        await store.batches.create(batch_row(batch_id, 1, created_at=at(n), status=status), [])
        ids.append(batch_id)
    return ids


async def test_list_is_newest_first_with_the_total(store, listed):
    total, rows = await store.batches.page(None, 20, 0)
    assert total == 6
    assert [row.id for row in rows] == listed[::-1]


async def test_list_limit_and_offset_page_through_and_the_total_counts_all(store, listed):
    total, rows = await store.batches.page(None, 2, 1)
    assert total == 6
    assert [row.id for row in rows] == [listed[4], listed[3]]
    total, rows = await store.batches.page(None, 10, 6)
    assert (total, rows) == (6, [])


async def test_list_filters_by_status_before_paging(store, listed):
    total, rows = await store.batches.page("completed", 1, 0)
    assert total == 2
    assert [row.id for row in rows] == [listed[3]]
    total, rows = await store.batches.page("running", 20, 0)
    assert [row.id for row in rows] == [listed[5], listed[4], listed[2], listed[1]]
    assert await store.batches.page("cancelled", 20, 0) == (0, [])


async def test_batches_created_in_one_millisecond_are_listed_newest_first(store):
    for n in range(3):
        await store.batches.create(batch_row(f"batch_1_{n:05d}", 1, created_at=at(0)), [])
    _, rows = await store.batches.page(None, 20, 0)
    assert [row.id for row in rows] == ["batch_1_00002", "batch_1_00001", "batch_1_00000"]


# Stopping


async def stop_batch(store: Store, engine: Engine, batch_id: str) -> tuple[int, int]:
    """Stop each active execution of the batch, then mark it stopped; returns how many were
    running and how many queued. The queued go first: stopping a running one frees a slot of
    the batch, which would start the next queued one."""
    active = await store.batches.active_executions(batch_id)
    active.sort(key=lambda item: item[1] != "queued")
    running = queued = 0
    for execution_id, _, _ in active:
        outcome = await engine.control(execution_id, Stop())
        running += outcome.applied and outcome.was_running
        queued += outcome.applied and outcome.was_queued
    await store.batches.mark_stopped([batch_id])
    return running, queued


async def test_stopping_a_batch_stops_the_running_and_cancels_the_queued(store, engine, gates):
    batch_id, ids = await start_batch(
        store, engine, [gated(str(n)) for n in range(5)], concurrency=2
    )
    gates["0"].set()
    await wait_execution(store, ids[0], "completed")
    await wait_execution(store, ids[2], "running")
    active = await store.batches.active_executions(batch_id)
    assert [(i, s) for i, s, _ in active] == [
        (ids[1], "running"),
        (ids[2], "running"),
        (ids[3], "queued"),
        (ids[4], "queued"),
    ]
    assert await stop_batch(store, engine, batch_id) == (2, 2)
    row, items = await store.batches.get(batch_id)
    assert counts(row) == {
        "status": "cancelled",
        "completed": 1,
        "failed": 0,
        "running": 0,
        "queued": 0,
    }
    assert [i.status for i in items] == ["completed"] + ["cancelled"] * 4
    assert row.ended_at is not None
    assert await store.batches.active_executions(batch_id) == []


async def test_stopping_one_batch_leaves_another_running(store, engine, gates):
    stopped, _ = await start_batch(store, engine, [gated("a")])
    other, other_ids = await start_batch(store, engine, [gated("b")])
    assert await stop_batch(store, engine, stopped) == (1, 0)
    row, _ = await store.batches.get(other)
    assert row.status == "running"
    assert [i for i, _, _ in await store.batches.active_executions(None)] == other_ids


async def test_stopping_a_finished_batch_leaves_its_status(store, engine, gates):
    # Reported: batch.stop answered "Batch is already completed" and then marked it cancelled.
    batch_id, _ = await start_batch(store, engine, [gated("a")])
    gates["a"].set()
    await wait_batch(store, batch_id, "completed")
    assert await stop_batch(store, engine, batch_id) == (0, 0)
    row, _ = await store.batches.get(batch_id)
    assert row.status == "completed"


async def wait_execution(store: Store, execution_id: str, status: str) -> None:
    async with asyncio.timeout(30):
        while await store.executions.status_of(execution_id) != status:
            await asyncio.sleep(0.01)


# Clearing finished history


async def test_clear_all_deletes_finished_history_and_keeps_what_is_active(store, engine, gates):
    noop = {"name": "n", "nodes": [{"id": "n", "type": "noop"}]}
    done, done_ids = await start_batch(store, engine, [noop, noop])
    await wait_batch(store, done, "completed")
    live, live_ids = await start_batch(store, engine, [gated("live")])
    alone = await engine.start(engine.validate(noop), blueprint_id=None, blueprint_version=None)
    waiting = await engine.start(
        engine.validate(gated("alone")), blueprint_id=None, blueprint_version=None
    )
    await wait_execution(store, alone.id, "completed")
    await store.controls.record(alone.id, Stop())  # a command of a finished execution
    await store.idempotency.claim("alone", b"request", alone.id)

    cleared = await store.batches.clear_finished()
    assert (cleared.batches, cleared.executions, cleared.kept_active) == (1, 3, 2)
    assert sorted(cleared.execution_ids) == sorted([*done_ids, alone.id])
    assert await store.batches.get(done) is None
    assert (await store.batches.get(live))[0].status == "running"
    remaining = {row[0] for row in read(store.path, "SELECT id FROM executions")}
    assert remaining == {live_ids[0], waiting.id}
    tables = ("steps", "logs", "controls", "idempotency_keys")
    for table in tables:
        orphans = read(
            store.path,
            f"SELECT count(*) FROM {table} WHERE execution_id NOT IN (SELECT id FROM executions)",
        )
        assert orphans == [(0,)], table
    assert read(store.path, "SELECT count(*) FROM batch_items WHERE batch_id = ?", done) == [(0,)]
    gates["live"].set()
    gates["alone"].set()
    await wait_batch(store, live, "completed")


async def test_clear_all_keeps_the_finished_executions_of_a_running_batch(store, engine, gates):
    # Reported: clearAll deleted them; the batch then counted them as never created (queued)
    # and stayed running forever.
    batch_id, ids = await start_batch(store, engine, [gated("first"), gated("second")])
    gates["first"].set()
    await wait_execution(store, ids[0], "completed")

    cleared = await store.batches.clear_finished()
    assert (cleared.batches, cleared.executions, cleared.kept_active) == (0, 0, 1)
    row, items = await store.batches.get(batch_id)
    assert [i.status for i in items] == ["completed", "running"]
    assert counts(row)["completed"] == 1

    gates["second"].set()
    row, _ = await wait_batch(store, batch_id, "completed")
    assert counts(row) == {
        "status": "completed",
        "completed": 2,
        "failed": 0,
        "running": 0,
        "queued": 0,
    }


async def test_clear_all_with_nothing_finished_deletes_nothing(store, engine, gates):
    await start_batch(store, engine, [gated("a")])
    cleared = await store.batches.clear_finished()
    assert (cleared.batches, cleared.executions, cleared.kept_active, cleared.execution_ids) == (
        0,
        0,
        1,
        [],
    )
    gates["a"].set()
