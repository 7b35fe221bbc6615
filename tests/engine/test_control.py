"""Control commands through the log (API.md §4 and execution.* control): each command on the
states it fits and those it does not, recorded in a real SQLite file and read back from it."""

from __future__ import annotations

import pytest

from engine.control import (
    Continue,
    ContinueWithoutBreakpoint,
    Pause,
    ProvideInput,
    SetTraceLogs,
    SkipBreakpoint,
    Stop,
)
from engine.errors import InputInvalid
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

SCHEMA = {
    "type": "object",
    "required": ["ok", "reason"],
    "properties": {
        "ok": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
        "level": {"enum": ["low", "high"]},
    },
}


def asks(schema: dict | None = None) -> dict:
    return blueprint(
        probe_node("before"),
        {
            "id": "ask",
            "type": "input",
            "dependsOn": ["before"],
            "config": {"prompt": "Publish?", "schema": schema or {"type": "object"}},
        },
        probe_node("after", dependsOn=["ask"]),
    )


def holds() -> dict:
    return blueprint(
        {"id": "hold", "type": "pause", "config": {"message": "look first"}},
        probe_node("after", dependsOn=["hold"]),
    )


def with_breakpoints() -> dict:
    return blueprint(
        probe_node("one", breakpoint=True),
        probe_node("two", dependsOn=["one"], breakpoint=True),
        probe_node("other"),
    )


@pytest.fixture
async def engine(durable):
    """The module's engine: on a real store, applying recorded commands."""
    return await durable.boot()


@pytest.fixture
def store(durable):
    return durable.store


async def paused(engine, store, document, **options) -> str:
    execution_id = await start(engine, document, **options)
    await wait_logged(store, execution_id, "paused")
    return execution_id


async def running(engine, store, probe, document, running_probes: int = 1, **options) -> str:
    """Start `document` and return once `running_probes` probes are inside their attempts."""
    execution_id = await start(engine, document, **options)
    await wait_until(lambda: probe.running == running_probes, timeout=30)

    async def recorded() -> bool:
        record = await store.executions.record(execution_id)
        return record is not None and record.running_steps == running_probes

    await poll("the running steps to be recorded", recorded)
    return execution_id


async def finished(engine, store, document=None) -> str:
    execution_id = await start(engine, document or blueprint(probe_node("a")))
    await wait_logged(store, execution_id, "completed")
    return execution_id


async def assert_refused(engine, store, execution_id, command, message: str) -> None:
    """Answered `applied: false` with `message`, the outcome recorded, nothing else changed."""
    before = await logged(store, execution_id)
    outcome = await engine.control(execution_id, command)
    assert (outcome.applied, outcome.message) == (False, message)
    assert (outcome.was_running, outcome.was_queued) == (False, False)
    after = await logged(store, execution_id)
    assert after.execution == before.execution
    assert after.steps == before.steps and after.logs == before.logs
    assert control_rows(store.path, execution_id)[-1] == (command, outcome)


# Stop


async def test_stop_cancels_a_running_execution(engine, store, probe):
    execution_id = await running(
        engine,
        store,
        probe,
        blueprint(probe_node("a", gate="never"), probe_node("b", dependsOn=["a"])),
    )
    outcome = await engine.control(execution_id, Stop())
    assert (outcome.applied, outcome.message) == (True, "Execution stopped")
    assert (outcome.was_running, outcome.was_queued) == (True, False)
    seen = await logged(store, execution_id)
    assert seen.status == "cancelled"
    assert seen.statuses() == {"a": "cancelled", "b": "cancelled"}
    (attempt,) = seen.steps["a"].attempts
    assert attempt.error is not None and attempt.error.code == "CANCELLED"
    assert seen.execution.error is None
    assert_consistent(seen)
    assert control_rows(store.path, execution_id) == [(Stop(), outcome)]
    await wait_until(lambda: probe.running == 0, timeout=30)


async def test_stop_cancels_a_queued_execution_which_never_runs(durable, probe):
    engine = await durable.boot(max_running_executions=1)
    store = durable.store
    first = await running(engine, store, probe, blueprint(probe_node("a", gate="first")))
    queued = await start(engine, blueprint(probe_node("b")))
    assert (await logged(store, queued)).status == "queued"

    outcome = await engine.control(queued, Stop())
    assert (outcome.applied, outcome.was_running, outcome.was_queued) == (True, False, True)
    seen = await logged(store, queued)
    assert (seen.status, seen.statuses()) == ("cancelled", {"b": "cancelled"})
    assert_consistent(seen)
    probe.gate("first").set()
    assert_consistent(await wait_logged(durable.store, first, "completed"))
    assert probe.calls["b"] == 0


@pytest.mark.parametrize("document", [asks(), holds(), with_breakpoints()])
async def test_stop_cancels_a_paused_execution(engine, store, document):
    options = {"debug": True} if document == with_breakpoints() else {}
    execution_id = await paused(engine, store, document, **options)
    outcome = await engine.control(execution_id, Stop())
    assert (outcome.applied, outcome.was_running, outcome.was_queued) == (True, True, False)
    seen = await logged(store, execution_id)
    assert seen.status == "cancelled"
    assert "waiting" not in seen.statuses().values()
    assert seen.execution.paused_node_id is None
    assert_consistent(seen)


async def test_stop_of_a_finished_execution_is_refused_and_changes_nothing(engine, store):
    execution_id = await finished(engine, store)
    await assert_refused(engine, store, execution_id, Stop(), "Execution is already completed")


async def test_a_second_stop_is_refused(engine, store, probe):
    execution_id = await running(engine, store, probe, blueprint(probe_node("a", gate="never")))
    assert (await engine.control(execution_id, Stop())).applied
    await assert_refused(engine, store, execution_id, Stop(), "Execution is already cancelled")


# Pause and continue


async def test_pause_lets_running_nodes_finish_and_starts_no_new_one(engine, store, probe):
    execution_id = await running(
        engine,
        store,
        probe,
        blueprint(
            probe_node("a", gate="a"),
            probe_node("b", dependsOn=["a"]),
            probe_node("c", dependsOn=["a"]),
        ),
    )
    outcome = await engine.control(execution_id, Pause())
    assert outcome.applied
    assert outcome.message == "Execution paused: no new node starts until it is continued"
    seen = await logged(store, execution_id)
    assert (seen.status, seen.execution.pause_reason, seen.execution.paused_node_id) == (
        "paused",
        "manual",
        None,
    )
    assert seen.statuses() == {"a": "running", "b": "queued", "c": "queued"}
    assert_consistent(seen)

    probe.gate("a").set()

    async def a_recorded():
        return (await logged(store, execution_id)).steps["a"].status == "succeeded"

    await poll("a to be recorded succeeded", a_recorded)
    seen = await logged(store, execution_id)
    assert seen.status == "paused"
    assert seen.statuses() == {"a": "succeeded", "b": "queued", "c": "queued"}
    assert probe.calls == {"a": 1}
    assert_consistent(seen)

    assert (await engine.control(execution_id, Continue())).message == "Execution continued"
    seen = await wait_logged(store, execution_id, "completed")
    assert probe.calls == {"a": 1, "b": 1, "c": 1}
    assert_consistent(seen)


async def test_pause_of_a_queued_execution_is_refused(durable, probe):
    engine = await durable.boot(max_running_executions=1)
    store = durable.store
    await running(engine, store, probe, blueprint(probe_node("a", gate="first")))
    queued = await start(engine, blueprint(probe_node("b")))
    await assert_refused(engine, store, queued, Pause(), "Execution is queued, not running")
    probe.gate("first").set()


@pytest.mark.parametrize(
    ("document", "options"), [(asks(), {}), (holds(), {}), (with_breakpoints(), {"debug": True})]
)
async def test_pause_of_a_paused_execution_is_refused(engine, store, document, options):
    execution_id = await paused(engine, store, document, **options)
    await assert_refused(engine, store, execution_id, Pause(), "Execution is paused, not running")


async def test_pause_of_a_finished_execution_is_refused(engine, store):
    execution_id = await finished(engine, store)
    await assert_refused(engine, store, execution_id, Pause(), "Execution is already completed")


async def test_continue_after_a_manual_pause_resumes_scheduling(engine, store, probe):
    execution_id = await running(
        engine, store, probe, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"]))
    )
    assert (await engine.control(execution_id, Pause())).applied
    assert (await engine.control(execution_id, Continue())).applied
    seen = await logged(store, execution_id)
    assert (seen.status, seen.execution.pause_reason) == ("running", None)
    probe.gate("a").set()
    assert_consistent(await wait_logged(store, execution_id, "completed"))
    assert probe.calls == {"a": 1, "b": 1}


async def test_continue_at_a_pause_node_succeeds_it_and_goes_on(engine, store, probe):
    execution_id = await paused(engine, store, holds())
    seen = await logged(store, execution_id)
    assert (seen.execution.pause_reason, seen.execution.paused_node_id) == ("wait-pause", "hold")
    assert seen.execution.awaiting_input is None
    hold = seen.steps["hold"]
    assert (hold.status, hold.attempt_no, hold.started_at is not None) == ("waiting", 1, True)
    assert_consistent(seen)

    outcome = await engine.control(execution_id, Continue())
    assert (outcome.applied, outcome.message) == (True, "Execution continued")
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.steps["hold"].status == "succeeded" and seen.outputs["hold"] is None
    assert seen.outputs["after"] == {"call": 1}
    assert_consistent(seen)


async def test_continue_at_a_breakpoint_runs_the_node_and_stops_at_the_next(engine, store, probe):
    execution_id = await paused(engine, store, with_breakpoints(), debug=True)
    assert (await engine.control(execution_id, Continue())).applied

    async def at_two():
        seen = await logged(store, execution_id)
        return seen if seen.execution.paused_node_id == "two" else None

    seen = await poll("the breakpoint at two", at_two)
    assert (seen.status, seen.execution.pause_reason) == ("paused", "breakpoint")
    assert seen.statuses() == {"one": "succeeded", "two": "waiting", "other": "succeeded"}
    assert probe.calls == {"one": 1, "other": 1}
    assert_consistent(seen)
    assert (await engine.control(execution_id, Continue())).applied
    assert_consistent(await wait_logged(store, execution_id, "completed"))
    assert probe.calls == {"one": 1, "two": 1, "other": 1}


async def test_continue_of_a_running_execution_is_refused(engine, store, probe):
    execution_id = await running(engine, store, probe, blueprint(probe_node("a", gate="a")))
    message = "Execution is running, not paused"
    await assert_refused(engine, store, execution_id, Continue(), message)
    probe.gate("a").set()


async def test_continue_while_waiting_for_input_is_refused(engine, store):
    execution_id = await paused(engine, store, asks())
    message = "Execution is waiting for input: use provideInput"
    await assert_refused(engine, store, execution_id, Continue(), message)


async def test_continue_of_a_finished_execution_is_refused(engine, store):
    execution_id = await finished(engine, store)
    message = "Execution is already completed"
    await assert_refused(engine, store, execution_id, Continue(), message)


# Breakpoints: skip, continue without them, and only when debugging


async def test_breakpoints_apply_only_with_debug(engine, store, probe):
    execution_id = await start(engine, with_breakpoints())
    seen = await wait_logged(store, execution_id)
    assert seen.status == "completed"
    assert not [m for m in seen.messages() if m.startswith("Paused")]
    assert probe.calls == {"one": 1, "two": 1, "other": 1}


async def test_with_debug_a_breakpoint_pauses_before_its_node(engine, store, probe):
    execution_id = await paused(engine, store, with_breakpoints(), debug=True)
    seen = await logged(store, execution_id)
    assert (seen.execution.pause_reason, seen.execution.paused_node_id) == ("breakpoint", "one")
    assert (seen.steps["one"].status, seen.steps["one"].attempt_no) == ("waiting", 0)
    assert probe.calls["one"] == 0
    assert_consistent(seen)


async def test_skip_marks_the_breakpoint_node_skipped_and_goes_on(engine, store, probe):
    document = blueprint(
        probe_node("one", breakpoint=True),
        probe_node("after-one", dependsOn=["one"]),
        probe_node("other"),
    )
    execution_id = await paused(engine, store, document, debug=True)
    outcome = await engine.control(execution_id, SkipBreakpoint())
    assert (outcome.applied, outcome.message) == (True, "Node skipped; execution continued")
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.statuses() == {"one": "skipped", "after-one": "skipped", "other": "succeeded"}
    assert probe.calls == {"other": 1}
    assert "Node one skipped: skipped at its breakpoint by a client" in seen.messages()
    assert_consistent(seen)


@pytest.mark.parametrize("where", ["running", "manual", "wait-pause", "input", "finished"])
async def test_skip_anywhere_but_at_a_breakpoint_is_refused(engine, store, probe, where):
    execution_id = await _in_state(engine, store, probe, where)
    message = (
        "Execution is already completed"
        if where == "finished"
        else "Execution is not paused at a breakpoint"
    )
    await assert_refused(engine, store, execution_id, SkipBreakpoint(), message)
    probe.gate("a").set()


async def test_continue_without_breakpoints_runs_to_the_end(engine, store, probe):
    execution_id = await paused(engine, store, with_breakpoints(), debug=True)
    outcome = await engine.control(execution_id, ContinueWithoutBreakpoint())
    assert (outcome.applied, outcome.message) == (True, "Breakpoints off; execution continued")
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.execution.debug is False
    assert probe.calls == {"one": 1, "two": 1, "other": 1}
    assert "Breakpoints turned off for the rest of the run" in seen.messages()
    assert_consistent(seen)


@pytest.mark.parametrize("where", ["running", "manual", "wait-pause", "input"])
async def test_continue_without_breakpoints_elsewhere_is_refused(engine, store, probe, where):
    execution_id = await _in_state(engine, store, probe, where)
    message = "Execution is not paused at a breakpoint"
    await assert_refused(engine, store, execution_id, ContinueWithoutBreakpoint(), message)
    probe.gate("a").set()


async def _in_state(engine, store, probe, where: str) -> str:
    if where == "running":
        return await running(engine, store, probe, blueprint(probe_node("a", gate="a")))
    if where == "manual":
        execution_id = await running(engine, store, probe, blueprint(probe_node("a", gate="a")))
        assert (await engine.control(execution_id, Pause())).applied
        return execution_id
    if where == "wait-pause":
        return await paused(engine, store, holds())
    if where == "input":
        return await paused(engine, store, asks())
    return await finished(engine, store)


# Input


async def test_an_input_node_pauses_awaiting_input(engine, store):
    execution_id = await paused(engine, store, asks(SCHEMA))
    seen = await logged(store, execution_id)
    execution = seen.execution
    assert (execution.pause_reason, execution.paused_node_id) == ("input", "ask")
    awaiting = execution.awaiting_input
    assert awaiting is not None
    assert (awaiting.node_id, awaiting.prompt, awaiting.schema) == ("ask", "Publish?", SCHEMA)
    assert awaiting.requested_at.endswith("Z")
    assert awaiting.requested_at == seen.steps["ask"].started_at
    assert seen.statuses() == {"before": "succeeded", "ask": "waiting", "after": "queued"}
    assert_consistent(seen)
    assert await store.controls.awaiting_input(execution_id) == awaiting


@pytest.mark.parametrize("node_id", ["ask", None])
async def test_provided_input_becomes_the_output_and_the_run_goes_on(engine, store, node_id):
    execution_id = await paused(engine, store, asks(SCHEMA))
    data = {"ok": True, "reason": "checked", "count": 2, "tags": ["x"], "level": "high"}
    outcome = await engine.control(execution_id, ProvideInput(node_id=node_id, data=data))
    assert (outcome.applied, outcome.message) == (True, "Input accepted; execution continued")
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.outputs["ask"] == data
    assert seen.steps["ask"].status == "succeeded"
    assert seen.execution.awaiting_input is None and seen.execution.pause_reason is None
    assert_consistent(seen)
    assert [command for command, _ in control_rows(store.path, execution_id)] == [
        ProvideInput(node_id=node_id, data=data)
    ]


async def test_input_that_breaks_the_schema_names_every_violation_and_records_nothing(
    engine, store
):
    execution_id = await paused(engine, store, asks(SCHEMA))
    before = await logged(store, execution_id)
    data = {"ok": "yes", "count": 0, "tags": ["a", 2], "level": "medium"}
    with pytest.raises(InputInvalid) as raised:
        await engine.control(execution_id, ProvideInput(node_id="ask", data=data))
    problems = {(p.node_id, p.field, p.message) for p in raised.value.problems}
    assert problems == {
        ("ask", "data.reason", "is required"),
        ("ask", "data.ok", "expected boolean, got string"),
        ("ask", "data.count", "must be at least 1"),
        ("ask", "data.tags[1]", "expected string, got number"),
        ("ask", "data.level", 'must be one of "low", "high"'),
    }
    assert control_rows(store.path, execution_id) == []
    after = await logged(store, execution_id)
    assert (after.execution, after.steps, after.logs) == (
        before.execution,
        before.steps,
        before.logs,
    )


async def test_input_of_the_wrong_type_altogether_is_one_violation(engine, store):
    execution_id = await paused(engine, store, asks(SCHEMA))
    with pytest.raises(InputInvalid) as raised:
        await engine.control(execution_id, ProvideInput(data=["not", "an", "object"]))
    assert [(p.field, p.message) for p in raised.value.problems] == [
        ("data", "expected object, got array")
    ]
    assert control_rows(store.path, execution_id) == []


async def test_input_for_another_node_is_refused(engine, store):
    execution_id = await paused(engine, store, asks())
    message = "Execution is waiting for input to node 'ask', not 'after'"
    await assert_refused(
        engine, store, execution_id, ProvideInput(node_id="after", data={}), message
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("running", "Execution is running and not waiting for input"),
        ("manual", "Execution is paused and not waiting for input"),
        ("wait-pause", "Execution is paused and not waiting for input"),
        ("finished", "Execution is already completed"),
    ],
)
async def test_input_to_an_execution_not_waiting_for_it_is_refused(
    engine, store, probe, where, message
):
    execution_id = await _in_state(engine, store, probe, where)
    await assert_refused(engine, store, execution_id, ProvideInput(data={"ok": True}), message)
    probe.gate("a").set()


# Trace logs


async def test_set_trace_logs_turns_trace_entries_on_and_off(engine, store, probe):
    document = blueprint(
        {"id": "hold", "type": "pause"},
        probe_node("traced", dependsOn=["hold"]),
        {"id": "hold-again", "type": "pause", "dependsOn": ["traced"]},
        probe_node("quiet", dependsOn=["hold-again"]),
    )
    execution_id = await paused(engine, store, document)
    outcome = await engine.control(execution_id, SetTraceLogs(enabled=True))
    assert (outcome.applied, outcome.message) == (True, "Trace logs on")
    assert (await logged(store, execution_id)).execution.trace_logs is True
    assert (await engine.control(execution_id, Continue())).applied

    async def at_second_pause():
        seen = await logged(store, execution_id)
        return seen if seen.execution.paused_node_id == "hold-again" else None

    seen = await poll("the second pause", at_second_pause)
    traced = [e for e in seen.logs if e.level == "trace"]
    assert {e.node_id for e in traced} >= {"traced"}
    assert any(e.message == "Node traced output" and e.data == {"call": 1} for e in traced)

    outcome = await engine.control(execution_id, SetTraceLogs(enabled=False))
    assert (outcome.applied, outcome.message) == (True, "Trace logs off")
    count = len(traced)
    assert (await engine.control(execution_id, Continue())).applied
    seen = await wait_logged(store, execution_id, "completed")
    assert seen.execution.trace_logs is False
    assert len([e for e in seen.logs if e.level == "trace"]) == count
    assert_consistent(seen)


async def test_set_trace_logs_on_a_finished_execution_is_refused(engine, store):
    execution_id = await finished(engine, store)
    message = "Execution is already completed"
    await assert_refused(engine, store, execution_id, SetTraceLogs(enabled=True), message)


# The log of commands


async def test_each_command_and_its_outcome_are_kept_in_order(engine, store, probe):
    execution_id = await running(engine, store, probe, blueprint(probe_node("a", gate="a")))
    commands = [Pause(), Pause(), Continue(), SetTraceLogs(enabled=True), Stop(), Continue()]
    outcomes = [await engine.control(execution_id, command) for command in commands]
    assert [o.applied for o in outcomes] == [True, False, True, True, True, False]
    assert control_rows(store.path, execution_id) == list(zip(commands, outcomes, strict=True))
    assert await store.controls.pending() == []
