"""Seeding a database with N finished executions, fast enough for N = 100,000.

One real execution runs in-process (Engine + Store) while a tee sink records its events; then
clones of those events, each execution under a fresh id, go straight into `store.writer` in
batches. The writer groups and commits them exactly as it does the engine's own events.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.common import BenchError, say
from engine.engine import Engine, EngineLimits
from engine.events import Event, ExecutionCreated, ExecutionUpdated
from engine.ids import new_id
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from store import Store

replace = msgspec.structs.replace
BATCH = 2000  #: executions per batch handed to the writer
FLUSH_TIMEOUT_S = 120.0

# A small realistic blueprint: a -> (b, c) -> d, all noop. Its status (record, 4 steps, 11 log
# lines and the final output, d's, which holds the input twice) is about 3.7 KB.
BLUEPRINT = {
    "name": "Order fulfilment",
    "description": "Validate an order, reserve stock and charge the card in parallel, confirm",
    "nodes": [
        {"id": "validate", "type": "noop"},
        {"id": "reserve", "type": "noop", "dependsOn": ["validate"]},
        {"id": "charge", "type": "noop", "dependsOn": ["validate"]},
        {"id": "confirm", "type": "noop", "dependsOn": ["reserve", "charge"]},
    ],
}
INPUT = {"orderId": "ord_20241201_000123", "customerId": "cus_8841", "total": 188.98}
METADATA = {"source": "bench", "tenant": "acme"}


class TeeSink:
    """An EventSink that records every event and forwards it to the real one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.inner.emit(event)

    async def flush(self) -> None:
        await self.inner.flush()


def _cloner(event: Event) -> Any:
    """A function of a new execution id that returns a copy of `event` under that id."""
    if isinstance(event, ExecutionCreated | ExecutionUpdated):
        record = event.execution
        return lambda new: replace(event, execution_id=new, execution=replace(record, id=new))
    return lambda new: replace(event, execution_id=new)


async def _flush(store: Store) -> None:
    try:
        async with asyncio.timeout(FLUSH_TIMEOUT_S):
            await store.writer.flush()
    except TimeoutError:
        raise BenchError(f"seeding: the writer did not commit within {FLUSH_TIMEOUT_S} s") from None


async def seed(path: Path, n: int) -> dict[str, Any]:
    """Fill a new file at `path` with `n` completed executions; returns their ids and timings."""
    started = time.perf_counter()
    store = await Store.open(str(path))
    try:
        registry = NodeRegistry()
        register_builtins(registry)
        tee = TeeSink(store.writer)
        engine = Engine(registry, tee, EngineLimits())
        try:
            execution = await engine.start(
                engine.validate(BLUEPRINT),
                blueprint_id=None,
                blueprint_version=None,
                input=INPUT,
                metadata=METADATA,
            )
            await engine.wait_settled(execution.id, 30)
        finally:
            await engine.close()
        await _flush(store)
        cloners = [_cloner(event) for event in tee.events]
        ids = [execution.id]
        seen = {execution.id}
        emit = store.writer.emit
        pending: asyncio.Task[None] | None = None
        while len(ids) < n:
            batch = []
            for _ in range(min(BATCH, n - len(ids))):
                new = new_id("exec")
                while new in seen:  # 5 random characters a millisecond: collisions happen
                    new = new_id("exec")
                seen.add(new)
                ids.append(new)
                batch.extend(clone(new) for clone in cloners)
            # Built while the writer's thread committed the previous batch; now hand it over.
            if pending is not None:
                await pending
            for event in batch:
                emit(event)
            pending = asyncio.ensure_future(_flush(store))
            # Let the writer take the batch to its thread before the next one is built.
            for _ in range(3):
                await asyncio.sleep(0)
        if pending is not None:
            await pending
        await _flush(store)
        # As a server that has been up a while has: every finished status stored.
        async with asyncio.timeout(FLUSH_TIMEOUT_S * 5):
            await store.writer.idle()
    finally:
        await store.close()
    elapsed = time.perf_counter() - started
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
        completed = conn.execute(
            "SELECT count(*) FROM executions WHERE status = 'completed'"
        ).fetchone()[0]
        log_rows = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM finished_statuses").fetchone()[0]
    conn.close()
    if count != n or completed != n:
        raise BenchError(
            f"seeding: {n} executions wanted, the file holds {count} ({completed} completed)"
        )
    return {
        "executions": n,
        "events_per_execution": len(cloners),
        "log_rows": log_rows,
        "stored_statuses": stored,
        "seconds": elapsed,
        "file_bytes": path.stat().st_size,
        "ids": ids,
    }


def seed_file(directory: Path, n: int) -> tuple[Path, dict[str, Any]]:
    path = directory / f"seed-{n}.db"
    say(f"  seeding {n:,} finished executions into {path} ...")
    info = asyncio.run(seed(path, n))
    say(
        f"  seeded {n:,} executions ({info['log_rows']:,} log rows, "
        f"{info['stored_statuses']:,} stored statuses, "
        f"{info['file_bytes'] / 2**20:,.0f} MiB) in {info['seconds']:.1f} s"
    )
    return path, info
