"""Control through the log: a command recorded while no engine runs its execution (the server
was down, or busy dying) is applied by the engine that resumes it; one sent to another engine on
the same log is applied by the engine that runs the execution."""

from __future__ import annotations

from engine.control import Continue, Pause, ProvideInput, SetTraceLogs, Stop
from tests.engine.conftest import (
    assert_consistent,
    blueprint,
    control_rows,
    logged,
    poll,
    probe_node,
    start,
    wait_logged,
    wait_until,
)

ASKS = blueprint(
    probe_node("before"),
    {
        "id": "ask",
        "type": "input",
        "dependsOn": ["before"],
        "config": {"prompt": "Go?", "schema": {"type": "object", "required": ["go"]}},
    },
    probe_node("after", dependsOn=["ask"]),
)


async def answered(store, command_id: int):
    async def outcome():
        return await store.controls.outcome(command_id)

    return await poll(f"command {command_id} to be answered", outcome)


async def test_an_answer_recorded_while_down_is_applied_after_the_restart(durable, probe):
    engine = await durable.boot()
    execution_id = await start(engine, ASKS)
    await wait_logged(durable.store, execution_id, "paused")
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(
        execution_id, ProvideInput(node_id="ask", data={"go": True})
    )
    assert [p.recorded.id for p in await store.controls.pending()] == [command_id]

    await durable.boot()
    outcome = await answered(store, command_id)
    assert (outcome.applied, outcome.message) == (True, "Input accepted; execution continued")
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.outputs["ask"] == {"go": True}
    assert probe.calls == {"before": 1, "after": 1}
    assert_consistent(seen)
    assert await store.controls.pending() == []


async def test_an_answer_that_breaks_the_schema_recorded_while_down_is_refused(durable, probe):
    engine = await durable.boot()
    execution_id = await start(engine, ASKS)
    await wait_logged(durable.store, execution_id, "paused")
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(execution_id, ProvideInput(data={"stay": True}))
    await durable.boot()
    outcome = await answered(store, command_id)
    assert not outcome.applied
    assert outcome.message == (
        "Input for node 'ask' does not match its schema: data.go: is required"
    )
    seen = await logged(store, execution_id)
    assert (seen.status, seen.execution.paused_node_id) == ("paused", "ask")
    assert_consistent(seen)


async def test_a_stop_recorded_while_down_is_honoured_after_the_restart(durable, probe):
    engine = await durable.boot()
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"]))
    )
    await wait_until(lambda: probe.running == 1, timeout=30)
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(execution_id, Stop())
    await durable.boot()
    outcome = await answered(store, command_id)
    assert (outcome.applied, outcome.message) == (True, "Execution stopped")
    seen = await wait_logged(store, execution_id, "cancelled")
    assert seen.statuses() == {"a": "cancelled", "b": "cancelled"}
    assert probe.calls["b"] == 0
    assert_consistent(seen)


async def test_a_stop_recorded_while_down_runs_no_node_again(durable, probe):
    engine = await durable.boot()
    execution_id = await start(engine, blueprint(probe_node("a", gate="a")))
    await wait_until(lambda: probe.running == 1, timeout=30)
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(execution_id, Stop())
    await durable.boot()
    await answered(store, command_id)
    await wait_logged(store, execution_id, "cancelled")
    assert probe.calls["a"] == 1


async def test_a_stop_recorded_for_a_queued_execution_while_down(durable, probe):
    engine = await durable.boot(max_running_executions=1)
    first = await start(engine, blueprint(probe_node("a", gate="a")))
    queued = await start(engine, blueprint(probe_node("b")))
    await wait_until(lambda: probe.running == 1, timeout=30)
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(queued, Stop())
    await durable.boot(max_running_executions=1)
    outcome = await answered(store, command_id)
    assert (outcome.applied, outcome.was_queued) == (True, True)
    probe.gate("a").set()
    assert_consistent(await wait_logged(store, queued, "cancelled"))
    assert probe.calls["b"] == 0
    assert_consistent(await wait_logged(store, first, "completed"))


async def test_a_continue_recorded_while_down_resumes_a_pause(durable, probe):
    engine = await durable.boot()
    execution_id = await start(
        engine, blueprint({"id": "hold", "type": "pause"}, probe_node("after", dependsOn=["hold"]))
    )
    await wait_logged(durable.store, execution_id, "paused")
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(execution_id, Continue())
    await durable.boot()
    assert (await answered(store, command_id)).applied
    assert_consistent(await wait_logged(store, execution_id, "completed"))
    assert probe.calls == {"after": 1}


async def test_commands_recorded_while_down_are_applied_in_the_order_recorded(durable, probe):
    engine = await durable.boot()
    execution_id = await start(
        engine, blueprint({"id": "hold", "type": "pause"}, probe_node("after", dependsOn=["hold"]))
    )
    await wait_logged(durable.store, execution_id, "paused")
    await durable.crash()

    store = await durable.open()
    commands = [SetTraceLogs(enabled=True), Continue(), Continue()]
    ids = [await store.controls.record(execution_id, command) for command in commands]
    await durable.boot()
    for command_id in ids:
        await answered(store, command_id)
    outcomes = [outcome for _, outcome in control_rows(store.path, execution_id)]
    assert [o.applied for o in outcomes] == [True, True, False]
    seen = await wait_logged(store, execution_id, "completed")
    # Trace logs were on before the continue: the node that ran after it was traced.
    assert any(e.level == "trace" and e.node_id == "after" for e in seen.logs)
    assert_consistent(seen)


async def test_a_command_for_an_execution_that_finished_before_the_crash_is_refused(durable, probe):
    engine = await durable.boot()
    execution_id = await start(engine, blueprint(probe_node("a")))
    await wait_logged(durable.store, execution_id, "completed")
    await durable.crash()

    store = await durable.open()
    command_id = await store.controls.record(execution_id, Pause())
    await durable.boot()
    outcome = await answered(store, command_id)
    assert (outcome.applied, outcome.message) == (False, "Execution is already completed")


async def test_a_manual_pause_survives_a_restart_with_its_running_node_queued_again(durable, probe):
    engine = await durable.boot()
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"]))
    )
    await wait_until(lambda: probe.running == 1, timeout=30)
    assert (await engine.control(execution_id, Pause())).applied
    await durable.crash()

    store = await durable.open()
    await durable.boot()

    async def requeued():
        seen = await logged(store, execution_id)
        return seen if seen.steps["a"].status == "queued" else None

    seen = await poll("the interrupted step to be queued again", requeued)
    assert (seen.status, seen.execution.pause_reason) == ("paused", "manual")
    assert_consistent(seen)
    probe.gate("a").set()
    assert (await engine_of(durable).control(execution_id, Continue())).applied
    seen = await wait_logged(store, execution_id, "completed")
    assert [a.error.code if a.error else None for a in seen.steps["a"].attempts] == [
        "INTERRUPTED",
        None,
    ]
    assert_consistent(seen)


def engine_of(durable):
    (engine,) = durable.engines
    return engine


# Another engine on the same log


async def test_a_command_sent_to_another_engine_is_applied_by_the_one_running_it(durable, probe):
    runner = await durable.boot()
    other = await durable.boot()
    store = durable.store
    execution_id = await start(
        runner, blueprint({"id": "hold", "type": "pause"}, probe_node("after", dependsOn=["hold"]))
    )
    await wait_logged(store, execution_id, "paused")
    assert other.get(execution_id) is None

    outcome = await other.control(execution_id, Continue())
    assert (outcome.applied, outcome.message) == (True, "Execution continued")
    assert_consistent(await wait_logged(store, execution_id, "completed"))
    assert probe.calls == {"after": 1}


async def test_a_command_no_engine_applies_in_time_is_answered_recorded_then_applied(
    durable, probe
):
    runner = await durable.boot(background=False)
    other = await durable.boot(control_wait_seconds=0.3)
    store = durable.store
    execution_id = await start(runner, blueprint({"id": "hold", "type": "pause"}))
    await wait_logged(store, execution_id, "paused")

    outcome = await other.control(execution_id, Continue())
    assert not outcome.applied
    assert outcome.message.startswith("Recorded, not yet applied")
    (pending,) = await store.controls.pending()
    assert pending.recorded.command == Continue()

    runner.start_background()
    assert (await answered(store, pending.recorded.id)).applied
    assert_consistent(await wait_logged(store, execution_id, "completed"))


async def test_a_node_continued_past_its_breakpoint_is_not_stopped_there_again_by_a_restart(
    durable, probe
):
    # Reported: the rerun of an interrupted node paused at its breakpoint once more, though a
    # client had already let it through.
    engine = await durable.boot()
    execution_id = await start(
        engine,
        blueprint(probe_node("a", gate="a", breakpoint=True), probe_node("b", dependsOn=["a"])),
        debug=True,
    )
    await wait_logged(durable.store, execution_id, "paused")
    assert (await engine.control(execution_id, Continue())).applied
    await wait_until(lambda: probe.running == 1, timeout=30)
    await durable.crash()

    probe.gate("a").set()
    await durable.boot()
    seen = await wait_logged(durable.store, execution_id)
    assert seen.status == "completed", seen.execution.pause_reason
    assert probe.calls == {"a": 2, "b": 1}
    assert_consistent(seen)
