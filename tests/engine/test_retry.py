"""Retry (execution.retry): a new execution of the same snapshot that takes over the outputs of
the original's succeeded steps (those nodes do not run again), runs the rest, and records
retryOf. The original comes from the log, as the procedure reads it."""

from __future__ import annotations

import msgspec

from engine.control import Stop
from tests.engine.conftest import (
    assert_consistent,
    blueprint,
    logged,
    poll,
    probe_node,
    start,
    wait_logged,
    wait_until,
)
from tests.store._events import read


async def retry(engine, store, execution_id: str) -> str:
    """What execution.retry does with the store and the engine."""
    source = await store.executions.retry_source(execution_id)
    assert source is not None and source.execution.status.is_final
    started = await engine.start(
        engine.compile(msgspec.to_builtins(source.blueprint)),
        blueprint_id=source.execution.blueprint_id,
        blueprint_version=source.execution.blueprint_version,
        input=source.input,
        metadata=source.execution.metadata,
        options=msgspec.structs.replace(source.options, idempotency_key=None),
        retry_of=execution_id,
        reuse=source.succeeded,
    )
    return started.id


def fails_once_at_b() -> dict:
    """a -> side -> b -> c; b fails on its first call only."""
    return blueprint(
        probe_node("a"),
        probe_node("side", dependsOn=["a"]),
        probe_node("b", dependsOn=["side"], fail=1, retryable=False),
        {"id": "c", "type": "noop", "dependsOn": ["a", "b"]},
    )


async def test_a_retry_reuses_succeeded_steps_and_runs_the_rest(durable, probe):
    engine = await durable.boot()
    store = durable.store
    original = await start(
        engine, fails_once_at_b(), input={"n": 1}, metadata={"team": "ops"}, trace_logs=True
    )
    failed = await wait_logged(store, original, "failed")
    assert failed.statuses() == {
        "a": "succeeded",
        "side": "succeeded",
        "b": "failed",
        "c": "cancelled",
    }

    retried = await retry(engine, store, original)
    seen = await wait_logged(store, retried, "completed")
    assert probe.calls == {"a": 1, "side": 1, "b": 2}
    assert seen.execution.retry_of == original
    assert read(store.path, "SELECT retry_of FROM executions WHERE id = ?", retried) == [
        (original,)
    ]
    assert (seen.execution.metadata, seen.execution.trace_logs) == ({"team": "ops"}, True)
    assert seen.outputs["a"] == failed.outputs["a"] == {"call": 1}
    assert seen.outputs["side"] == failed.outputs["side"]
    assert seen.outputs["c"] == {"a": {"call": 1}, "b": {"call": 2}}
    for node_id in ("a", "side"):
        step = seen.steps[node_id]
        assert (step.status, step.attempt_no, step.attempts) == ("succeeded", 0, ())
        assert f"Node {node_id} reused: it succeeded in {original}" in seen.messages()
    assert seen.steps["b"].attempt_no == 1
    assert_consistent(seen)
    # The original is left as it was.
    assert (await logged(store, original)).execution == failed.execution


async def test_a_retry_of_a_stopped_execution_runs_what_never_ran(durable, probe):
    engine = await durable.boot()
    store = durable.store
    original = await start(
        engine,
        blueprint(
            probe_node("a"),
            probe_node("slow", dependsOn=["a"], gate="slow"),
            probe_node("last", dependsOn=["slow"]),
        ),
    )
    await wait_until(lambda: probe.running == 1, timeout=30)
    assert (await engine.control(original, Stop())).applied
    await wait_logged(store, original, "cancelled")

    probe.gate("slow").set()
    retried = await retry(engine, store, original)
    seen = await wait_logged(store, retried, "completed")
    assert probe.calls == {"a": 1, "slow": 2, "last": 1}
    assert seen.steps["a"].attempt_no == 0
    assert_consistent(seen)


async def test_a_reused_condition_keeps_the_branch_it_took(durable, probe):
    engine = await durable.boot()
    store = durable.store
    document = blueprint(
        {
            "id": "check",
            "type": "condition",
            "config": {"expression": "input.go", "then": ["yes"], "else": ["no"]},
        },
        probe_node("yes", dependsOn=["check"], fail=1, retryable=False),
        probe_node("no", dependsOn=["check"]),
    )
    original = await start(engine, document, input={"go": True})
    failed = await wait_logged(store, original, "failed")
    assert failed.statuses() == {"check": "succeeded", "yes": "failed", "no": "skipped"}

    retried = await retry(engine, store, original)
    seen = await wait_logged(store, retried, "completed")
    assert seen.statuses() == {"check": "succeeded", "yes": "succeeded", "no": "skipped"}
    assert probe.calls == {"yes": 2}
    assert_consistent(seen)


async def test_a_retry_of_a_retry_reuses_everything_that_succeeded_in_either(durable, probe):
    engine = await durable.boot()
    store = durable.store
    document = blueprint(
        probe_node("a"),
        probe_node("b", dependsOn=["a"], fail=1, retryable=False),
        probe_node("c", dependsOn=["b"], fail=1, retryable=False),
    )
    first = await start(engine, document)
    await wait_logged(store, first, "failed")
    second = await retry(engine, store, first)
    assert (await wait_logged(store, second, "failed")).statuses() == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "failed",
    }
    third = await retry(engine, store, second)
    seen = await wait_logged(store, third, "completed")
    assert probe.calls == {"a": 1, "b": 2, "c": 2}
    assert seen.execution.retry_of == second
    assert seen.outputs["a"] == {"call": 1} and seen.outputs["b"] == {"call": 2}
    assert_consistent(seen)


async def test_reused_leaves_keep_their_artifacts_in_the_final_outputs(durable, registry, probe):
    @registry.node_type("report")
    async def report(ctx, config):
        ctx.artifact({"type": "file", "outputId": "rows", "url": "http://127.0.0.1/rows.csv"})
        return {"rows": 3}

    engine = await durable.boot()
    store = durable.store
    document = blueprint(
        {"id": "report", "type": "report"},
        probe_node("flaky", fail=1, retryable=False, gate="flaky"),
    )
    original = await start(engine, document)

    async def reported():
        return (await logged(store, original)).steps["report"].status == "succeeded"

    await poll("report to be recorded", reported)
    probe.gate("flaky").set()
    await wait_logged(store, original, "failed")

    retried = await retry(engine, store, original)
    await wait_logged(store, retried, "completed")
    status = msgspec.json.decode(await store.executions.status(retried, 0, ("artifacts",)))
    assert status["finalOutputs"] == [
        {
            "nodeId": "report",
            "output": {"rows": 3},
            "artifacts": [{"type": "file", "outputId": "rows", "url": "http://127.0.0.1/rows.csv"}],
        },
        {"nodeId": "flaky", "output": {"call": 2}, "artifacts": []},
    ]
    assert status["artifacts"][0]["nodeId"] == "report"


async def test_a_retry_still_queued_at_a_restart_keeps_what_it_reuses(durable, probe):
    engine = await durable.boot(max_running_executions=1)
    store = durable.store
    original = await start(engine, fails_once_at_b())
    await wait_logged(store, original, "failed")
    busy = await start(engine, blueprint(probe_node("busy", gate="busy")))
    await wait_until(lambda: probe.running == 1, timeout=30)
    retried = await retry(engine, store, original)
    assert (await logged(store, retried)).status == "queued"
    await durable.crash()

    probe.gate("busy").set()
    await durable.boot(max_running_executions=1)
    await wait_logged(store := durable.store, busy, "completed")
    seen = await wait_logged(store, retried, "completed")
    assert probe.calls == {"a": 1, "side": 1, "b": 2, "busy": 2}
    assert seen.outputs["a"] == {"call": 1}
    assert_consistent(seen)
