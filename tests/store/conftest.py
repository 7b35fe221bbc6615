from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.context import NodeContext
from engine.engine import Engine
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from store import Store

RunBlueprint = Callable[..., Awaitable[str]]


async def report(ctx: NodeContext, config: Any) -> dict[str, int]:
    """Logs, reports a metric and attaches an artifact."""
    ctx.log("rows counted", "warn", {"rows": 3})
    ctx.metric("rows", 3)
    ctx.artifact({"type": "file", "outputId": "rows", "url": "http://127.0.0.1/rows.csv"})
    return {"rows": 3}


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "blueprint.db")


@pytest.fixture
async def store(path: str) -> AsyncIterator[Store]:
    store = await Store.open(path)
    yield store
    # Flushing first keeps this teardown clear of the close() bug that test_writer.py shows;
    # the timeout turns a wedged writer into a teardown error rather than a hang.
    async with asyncio.timeout(10):
        try:
            await store.writer.flush()
        finally:
            await store.close()


@pytest.fixture
async def engine(store: Store) -> AsyncIterator[Engine]:
    registry = NodeRegistry()
    register_builtins(registry)
    registry.node_type("report")(report)
    engine = Engine(registry, store.writer)
    yield engine
    await engine.close()


@pytest.fixture
def run_blueprint(engine: Engine, store: Store) -> RunBlueprint:
    """Run a blueprint document until it ends or pauses, durably; returns the execution id."""

    async def run(document: dict[str, Any], **start: Any) -> str:
        start.setdefault("blueprint_id", None)
        start.setdefault("blueprint_version", None)
        execution = await engine.start(engine.validate(document), **start)
        await engine.wait_settled(execution.id, 10)
        await store.writer.flush()
        return execution.id

    return run
