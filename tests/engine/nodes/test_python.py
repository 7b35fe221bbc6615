"""The python node type calls functions the operator registered (API.md §3)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine.errors import BlueprintInvalid
from tests.engine.conftest import blueprint, run


def python_node(function: str, **fields) -> dict:
    return {"id": "p", "type": "python", "config": {"function": function}, **fields}


async def test_a_sync_function_gets_the_context_and_its_return_is_the_output(
    registry, engine, sink
):
    seen_by_function = {}

    @registry.function("summarise")
    def summarise(context):
        seen_by_function.update(context)
        seen_by_function["thread"] = threading.current_thread() is threading.main_thread()
        return {"total": sum(context["input"]), "first": context["nodes"]["a"]["output"]}

    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "a", "type": "transform", "config": {"expression": "input[0]"}},
            python_node("summarise", dependsOn=["a"]),
        ),
        input=[4, 5],
        metadata={"m": 1},
    )
    assert seen.outputs["p"] == {"total": 9, "first": 4}
    assert seen_by_function["metadata"] == {"m": 1}
    assert seen_by_function["thread"] is False, "a sync function must not block the loop"


async def test_an_async_function_is_awaited(registry, engine, sink):
    @registry.function("later")
    async def later(context):
        await asyncio.sleep(0)
        return [context["input"], "done"]

    seen = await run(engine, sink, blueprint(python_node("later")), input="x")
    assert seen.outputs["p"] == ["x", "done"]


async def test_a_function_cannot_change_what_later_nodes_see(registry, engine, sink):
    @registry.function("meddle")
    def meddle(context):
        context["input"]["n"] = 99
        return None

    seen = await run(
        engine,
        sink,
        blueprint(
            python_node("meddle"),
            {
                "id": "after",
                "type": "transform",
                "dependsOn": ["p"],
                "config": {"expression": "input.n"},
            },
        ),
        input={"n": 1},
    )
    assert seen.outputs["after"] == 1


async def test_a_function_that_raises_fails_the_attempt_and_is_retried(registry, engine, sink):
    calls = []

    @registry.function("boom")
    def boom(context):
        calls.append(1)
        raise RuntimeError("kaput")

    seen = await run(engine, sink, blueprint(python_node("boom", retry={"maxAttempts": 2})))
    assert len(calls) == 2
    error = seen.steps["p"].error
    assert error.code == "NODE_ERROR" and "kaput" in error.message


def test_an_unknown_function_is_rejected_at_validation(registry, engine):
    @registry.function("known")
    def known(context):
        return None

    with pytest.raises(BlueprintInvalid) as caught:
        engine.validate(blueprint(python_node("unknown")))
    [problem] = caught.value.problems
    assert (problem.node_id, problem.field) == ("p", "config.function")
    assert "unknown" in problem.message and "known" in problem.message


def test_a_function_name_is_registered_once(registry):
    registry.function("f")(lambda context: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.function("f")(lambda context: None)
