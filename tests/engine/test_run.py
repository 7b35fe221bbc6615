"""One execution: scheduling, failure, progress, outputs, logs, pausing and control (API.md §4)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from engine.errors import InputInvalid
from tests.engine.conftest import (
    blueprint,
    outcome_of,
    probe_node,
    run,
    settle,
    start,
    step_status,
    wait_until,
)

# Scheduling


async def test_steps_are_created_with_the_execution(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "a", "type": "noop", "name": "First"},
            {"id": "b", "type": "noop", "dependsOn": ["a"]},
        ),
    )
    created = outcome_of(sink, execution_id).created
    assert created.execution.total_steps == 2
    assert [(s.node_id, s.name, s.type, s.status) for s in created.steps] == [
        ("a", "First", "noop", "queued"),
        ("b", "b", "noop", "queued"),
    ]
    assert [s.predecessors_left for s in created.steps] == [0, 1]
    seen = await settle(engine, sink, execution_id)
    assert seen.steps["b"].predecessors_left == 0


async def test_ready_nodes_run_concurrently_up_to_the_node_limit(make_engine, sink, probe):
    engine = make_engine(node_concurrency=3)
    nodes = [probe_node(f"p{i}", gate="open") for i in range(5)]
    execution_id = await start(engine, blueprint(*nodes))
    await wait_until(lambda: probe.running == 3)
    await asyncio.sleep(0.05)
    assert probe.running == 3
    assert engine.get(execution_id).execution.running_steps == 3
    probe.gate("open").set()
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert probe.most_running == 3


async def test_at_most_eight_nodes_run_at_once_by_default(engine, sink, probe):
    execution_id = await start(
        engine, blueprint(*[probe_node(f"p{i}", gate="g") for i in range(10)])
    )
    await wait_until(lambda: probe.running == 8)
    await asyncio.sleep(0.05)
    running = engine.get(execution_id).execution.running_node_ids
    assert len(running) == 8
    probe.gate("g").set()
    assert (await settle(engine, sink, execution_id)).status == "completed"
    assert probe.most_running == 8


async def test_a_node_waits_for_all_its_dependencies(engine, sink, probe):
    execution_id = await start(
        engine,
        blueprint(
            probe_node("fast"),
            probe_node("slow", gate="slow"),
            {"id": "join", "type": "noop", "dependsOn": ["fast", "slow"]},
        ),
    )
    await wait_until(lambda: step_status(sink, execution_id, "fast") == "succeeded")
    assert step_status(sink, execution_id, "join") == "queued"
    assert outcome_of(sink, execution_id).steps["join"].predecessors_left == 1
    probe.gate("slow").set()
    seen = await settle(engine, sink, execution_id)
    assert seen.outputs["join"] == {"fast": {"call": 1}, "slow": {"call": 1}}


async def test_the_running_node_ids_and_current_step_follow_the_running_nodes(engine, sink, probe):
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", gate="b"))
    )
    await wait_until(lambda: probe.running == 2)
    execution = engine.get(execution_id).execution
    assert set(execution.running_node_ids) == {"a", "b"}
    assert execution.current_step in {"a", "b"}
    probe.gate("a").set()
    await wait_until(lambda: step_status(sink, execution_id, "a") == "succeeded")
    assert engine.get(execution_id).execution.running_node_ids == ("b",)
    assert engine.get(execution_id).execution.current_step == "b"
    probe.gate("b").set()
    seen = await settle(engine, sink, execution_id)
    assert seen.execution.current_step is None and seen.execution.running_node_ids == ()


# Failure


async def test_a_failure_cancels_running_and_unstarted_nodes(engine, sink, probe):
    seen = await run(
        engine,
        sink,
        blueprint(
            probe_node("slow", gate="never"),
            {"id": "after", "type": "noop", "dependsOn": ["slow"]},
            probe_node("bad", fail=-1, code="BROKEN", sleepMs=20),
        ),
    )
    assert seen.status == "failed"
    assert seen.statuses() == {"slow": "cancelled", "after": "cancelled", "bad": "failed"}
    error = seen.execution.error
    assert (error.code, error.message, error.node_id) == ("BROKEN", "call 1 failed", "bad")
    slow_attempt = seen.steps["slow"].attempts[-1]
    assert slow_attempt.completed_at is not None and slow_attempt.error.code == "CANCELLED"
    await asyncio.sleep(0.01)
    assert probe.running == 0, "the running attempt was not cancelled"
    assert seen.execution.failed_steps == 1
    assert seen.execution.end_time is not None


async def test_continue_on_error_lets_the_execution_complete(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            probe_node("bad", fail=-1, continueOnError=True),
            {
                "id": "after",
                "type": "transform",
                "dependsOn": ["bad"],
                "config": {"expression": "{output: nodes.bad.output, status: nodes.bad.status}"},
            },
        ),
    )
    assert seen.status == "completed"
    assert seen.statuses() == {"bad": "failed", "after": "succeeded"}
    assert seen.outputs["after"] == {"output": None, "status": "failed"}
    assert (seen.execution.failed_steps, seen.execution.completed_steps) == (1, 1)
    assert seen.execution.error is None
    assert seen.execution.progress == 100


async def test_noop_sees_a_failed_dependency_as_null(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            probe_node("bad", fail=-1, continueOnError=True),
            {"id": "after", "type": "noop", "dependsOn": ["bad"]},
        ),
    )
    assert seen.outputs["after"] == {"bad": None}


# Progress and final outputs


async def test_progress_is_the_floor_of_completed_over_total(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "a", "type": "noop"},
            {"id": "wait", "type": "pause", "dependsOn": ["a"]},
            {"id": "b", "type": "noop", "dependsOn": ["wait"]},
        ),
    )
    paused = await settle(engine, sink, execution_id)
    assert paused.status == "paused"
    assert (paused.execution.completed_steps, paused.execution.progress) == (1, 33)
    assert engine.get(execution_id).continue_() is None
    done = await settle(engine, sink, execution_id)
    assert (done.execution.completed_steps, done.execution.progress) == (3, 100)


async def test_progress_counts_skipped_steps_and_is_consistent_in_every_record(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`false`", "then": ["x"]}},
            {"id": "x", "type": "noop", "dependsOn": ["c"]},
            {"id": "y", "type": "noop", "dependsOn": ["c"]},
        ),
    )
    for record in seen.executions():
        if record.status == "completed":
            assert record.progress == 100
        else:
            assert record.progress == 100 * record.completed_steps // record.total_steps
    assert (seen.execution.completed_steps, seen.execution.skipped_steps) == (3, 1)


async def test_a_failed_execution_keeps_its_partial_progress(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "assert", "dependsOn": ["a"], "config": {"expression": "`false`"}},
            {"id": "c", "type": "noop", "dependsOn": ["b"]},
        ),
    )
    assert seen.status == "failed"
    assert seen.execution.progress == 33


async def test_leaf_steps_carry_their_output_for_the_final_outputs(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "root", "type": "noop"},
            {
                "id": "second",
                "type": "transform",
                "dependsOn": ["root"],
                "config": {"expression": "`2`"},
            },
            {
                "id": "first",
                "type": "transform",
                "dependsOn": ["root"],
                "config": {"expression": "`1`"},
            },
            probe_node("broken", fail=-1, continueOnError=True),
            {
                "id": "c",
                "type": "condition",
                "config": {"expression": "`false`", "then": ["never"]},
            },
            {"id": "never", "type": "noop", "dependsOn": ["c"]},
        ),
    )
    assert seen.status == "completed"
    leaves = {e.step.node_id for e in seen.step_events if e.leaf}
    assert leaves == {"second", "first", "broken", "never"}
    assert not any(e.leaf for e in seen.step_events if e.step.node_id in {"root", "c"})
    assert seen.final_outputs() == [("second", 2), ("first", 1)]
    [success] = [
        e for e in seen.step_events if e.step.node_id == "second" and e.step.status == "succeeded"
    ]
    assert success.output == 2 and success.leaf


# Logs


async def test_logs_carry_increasing_seq_and_levels(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            probe_node("flaky", fail=1, retry={"maxAttempts": 2}),
            probe_node("bad", fail=-1, dependsOn=["flaky"]),
        ),
    )
    assert [e.seq for e in seen.logs] == list(range(1, len(seen.logs) + 1))
    levels = {e.level.value for e in seen.logs}
    assert {"info", "warn", "error"} <= levels
    assert "trace" not in levels
    assert seen.logs[0].node_id is None and "queued" in seen.logs[0].message.lower()
    assert any(e.node_id == "flaky" and e.level == "warn" for e in seen.logs)
    assert any(e.node_id == "bad" and e.level == "error" for e in seen.logs)
    assert all(e.timestamp.endswith("Z") for e in seen.logs)


async def test_trace_logs_are_written_only_when_on(engine, sink):
    document = blueprint({"id": "t", "type": "transform", "config": {"expression": "input"}})
    quiet = await run(engine, sink, document, input=1)
    assert not [e for e in quiet.logs if e.level == "trace"]
    loud = await run(engine, sink, document, input=7, trace_logs=True)
    traces = [e for e in loud.logs if e.level == "trace"]
    assert {e.node_id for e in traces} == {"t"}
    assert {"expression": "input"} in [e.data for e in traces]
    assert 7 in [e.data for e in traces]
    assert loud.execution.trace_logs is True


async def test_set_trace_logs_turns_them_on_for_what_follows(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "before", "type": "noop"},
            {"id": "wait", "type": "pause", "dependsOn": ["before"]},
            {"id": "after", "type": "noop", "dependsOn": ["wait"]},
        ),
    )
    await settle(engine, sink, execution_id)
    run_ = engine.get(execution_id)
    assert run_.set_trace_logs(True) is None
    assert run_.execution.trace_logs is True
    run_.continue_()
    seen = await settle(engine, sink, execution_id)
    assert {e.node_id for e in seen.logs if e.level == "trace"} == {"after"}


async def test_set_trace_logs_off_stops_them(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "wait", "type": "pause"}, {"id": "after", "type": "noop", "dependsOn": ["wait"]}
        ),
        trace_logs=True,
    )
    await settle(engine, sink, execution_id)
    engine.get(execution_id).set_trace_logs(False)
    engine.get(execution_id).continue_()
    seen = await settle(engine, sink, execution_id)
    assert not [e for e in seen.logs if e.level == "trace"]


async def test_trace_logs_hold_the_resolved_config(engine, sink, probe):
    seen = await run(
        engine,
        sink,
        blueprint(
            {
                "id": "h",
                "type": "http",
                "config": {"url": "http://127.0.0.1:9/{{ input.path }}", "timeoutMs": 200},
            }
        ),
        input={"path": "items"},
        trace_logs=True,
    )
    configs = [e.data for e in seen.logs if e.level == "trace" and isinstance(e.data, dict)]
    assert any(c.get("url") == "http://127.0.0.1:9/items" for c in configs), configs


async def test_trace_logs_record_scheduling_decisions(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`false`", "then": ["x"]}},
            {"id": "x", "type": "noop", "dependsOn": ["c"]},
            {"id": "y", "type": "noop", "dependsOn": ["c"]},
        ),
        trace_logs=True,
    )
    traces = [e for e in seen.logs if e.level == "trace"]
    about_data = [e for e in traces if e.message.endswith((" config", " output"))]
    assert len(traces) > len(about_data), [e.message for e in traces]


# Pausing: input and pause nodes


def approval() -> dict:
    return blueprint(
        {"id": "a", "type": "noop"},
        {
            "id": "approve",
            "type": "input",
            "dependsOn": ["a"],
            "config": {
                "prompt": "Publish?",
                "schema": {
                    "type": "object",
                    "properties": {"ok": {"type": "boolean"}},
                    "required": ["ok"],
                },
            },
        },
        {"id": "publish", "type": "noop", "dependsOn": ["approve"]},
    )


async def test_an_input_node_pauses_awaiting_input(engine, sink):
    seen = await run(engine, sink, approval())
    assert seen.status == "paused"
    execution = seen.execution
    assert (execution.pause_reason, execution.paused_node_id) == ("input", "approve")
    awaiting = execution.awaiting_input
    assert (awaiting.node_id, awaiting.prompt) == ("approve", "Publish?")
    assert awaiting.schema["required"] == ["ok"]
    assert awaiting.requested_at.endswith("Z")
    assert seen.statuses() == {"a": "succeeded", "approve": "waiting", "publish": "queued"}


async def test_provided_input_becomes_the_nodes_output(engine, sink):
    execution_id = await start(engine, approval())
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).provide_input("approve", {"ok": True}) is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert seen.outputs["approve"] == {"ok": True}
    assert seen.outputs["publish"] == {"approve": {"ok": True}}
    assert seen.execution.awaiting_input is None and seen.execution.pause_reason is None


async def test_input_may_be_provided_without_naming_the_node(engine, sink):
    execution_id = await start(engine, approval())
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).provide_input(None, {"ok": False}) is None
    assert (await settle(engine, sink, execution_id)).outputs["approve"] == {"ok": False}


async def test_input_that_does_not_match_the_schema_changes_nothing(engine, sink):
    execution_id = await start(engine, approval())
    await settle(engine, sink, execution_id)
    run_ = engine.get(execution_id)
    with contextlib.suppress(InputInvalid):
        run_.provide_input("approve", {"ok": "yes"})
    assert run_.status == "paused"
    assert step_status(sink, execution_id, "approve") == "waiting"


async def test_a_pause_node_waits_until_continued(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "hold", "type": "pause", "config": {"message": "check the logs"}},
            {"id": "after", "type": "noop", "dependsOn": ["hold"]},
        ),
    )
    paused = await settle(engine, sink, execution_id)
    assert paused.status == "paused"
    assert (paused.execution.pause_reason, paused.execution.paused_node_id) == (
        "wait-pause",
        "hold",
    )
    assert paused.execution.awaiting_input is None
    assert engine.get(execution_id).continue_() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert seen.outputs["hold"] is None
    assert seen.outputs["after"] == {"hold": None}


async def test_a_waiting_node_pauses_everything_while_running_nodes_finish(engine, sink, probe):
    execution_id = await start(
        engine,
        blueprint(
            probe_node("busy", gate="busy"),
            {"id": "busy-next", "type": "noop", "dependsOn": ["busy"]},
            {"id": "hold", "type": "pause"},
        ),
    )
    await settle(engine, sink, execution_id)
    probe.gate("busy").set()
    await wait_until(lambda: step_status(sink, execution_id, "busy") == "succeeded")
    await asyncio.sleep(0.02)
    assert step_status(sink, execution_id, "busy-next") == "queued"
    assert engine.get(execution_id).status == "paused"
    engine.get(execution_id).continue_()
    assert (await settle(engine, sink, execution_id)).status == "completed"


# Breakpoints


def with_breakpoints() -> dict:
    return blueprint(
        probe_node("one", breakpoint=True),
        probe_node("two", dependsOn=["one"], breakpoint=True),
        probe_node("three", dependsOn=["two"], breakpoint=True),
    )


async def test_breakpoints_apply_only_when_debugging(engine, sink, probe):
    seen = await run(engine, sink, with_breakpoints())
    assert seen.status == "completed"
    assert probe.calls == {"one": 1, "two": 1, "three": 1}


async def test_a_breakpoint_pauses_before_its_node(engine, sink, probe):
    seen = await run(engine, sink, with_breakpoints(), debug=True)
    assert seen.status == "paused"
    assert (seen.execution.pause_reason, seen.execution.paused_node_id) == ("breakpoint", "one")
    assert seen.steps["one"].status == "waiting"
    assert probe.calls["one"] == 0
    assert seen.execution.debug is True


async def test_continue_runs_the_node_and_pauses_at_the_next_breakpoint(engine, sink, probe):
    execution_id = await start(engine, with_breakpoints(), debug=True)
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).continue_() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "paused" and seen.execution.paused_node_id == "two"
    assert probe.calls == {"one": 1}
    assert seen.steps["one"].status == "succeeded" and seen.steps["one"].attempt_no == 1


async def test_skip_marks_the_node_skipped_and_goes_on(engine, sink, probe):
    execution_id = await start(
        engine,
        blueprint(
            probe_node("one", breakpoint=True),
            probe_node("after-one", dependsOn=["one"]),
            probe_node("other"),
        ),
        debug=True,
    )
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).skip_breakpoint() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert seen.statuses() == {"one": "skipped", "after-one": "skipped", "other": "succeeded"}
    assert probe.calls == {"other": 1}


async def test_continue_without_breakpoints_runs_to_the_end(engine, sink, probe):
    execution_id = await start(engine, with_breakpoints(), debug=True)
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).disable_breakpoints() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert probe.calls == {"one": 1, "two": 1, "three": 1}
    assert seen.execution.debug is False


async def test_an_input_node_with_a_breakpoint_waits_for_input(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint({"id": "ask", "type": "input", "breakpoint": True, "config": {"prompt": "?"}}),
        debug=True,
    )
    assert seen.execution.pause_reason == "input"


# Manual pause, continue and stop


async def test_a_manual_pause_lets_running_nodes_finish_and_starts_no_new_one(engine, sink, probe):
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"]))
    )
    await wait_until(lambda: probe.running == 1)
    run_ = engine.get(execution_id)
    assert run_.pause() is None
    paused = outcome_of(sink, execution_id).execution
    assert (paused.status, paused.pause_reason, paused.paused_node_id) == (
        "paused",
        "manual",
        None,
    )
    probe.gate("a").set()
    await wait_until(lambda: step_status(sink, execution_id, "a") == "succeeded")
    await asyncio.sleep(0.02)
    assert probe.calls["b"] == 0
    assert run_.status == "paused"
    assert run_.continue_() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "completed"
    assert probe.calls["b"] == 1


async def test_stop_cancels_a_running_execution(engine, sink, probe):
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="never"), probe_node("b", dependsOn=["a"]))
    )
    await wait_until(lambda: probe.running == 1)
    assert engine.get(execution_id).stop() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "cancelled"
    assert seen.statuses() == {"a": "cancelled", "b": "cancelled"}
    assert seen.execution.error is None and seen.execution.end_time is not None
    await asyncio.sleep(0.01)
    assert probe.running == 0
    assert engine.get(execution_id) is None


async def test_stop_cancels_a_paused_execution(engine, sink):
    execution_id = await start(engine, approval())
    await settle(engine, sink, execution_id)
    assert engine.get(execution_id).stop() is None
    seen = await settle(engine, sink, execution_id)
    assert seen.status == "cancelled"
    assert seen.statuses()["approve"] == "cancelled"
    assert seen.execution.awaiting_input is None


# Commands that do not fit the state answer why and change nothing


def assert_refused(sink, command) -> None:
    before = len(sink.events)
    answer = command()
    assert isinstance(answer, str) and answer
    assert len(sink.events) == before, "a refused command emitted events"


async def test_commands_refused_while_running(engine, sink, probe):
    execution_id = await start(engine, blueprint(probe_node("a", gate="a")))
    await wait_until(lambda: probe.running == 1)
    run_ = engine.get(execution_id)
    assert_refused(sink, run_.continue_)
    assert_refused(sink, run_.skip_breakpoint)
    assert_refused(sink, run_.disable_breakpoints)
    assert_refused(sink, lambda: run_.provide_input(None, {}))
    assert run_.status == "running"
    probe.gate("a").set()


async def test_commands_refused_while_waiting_for_input(engine, sink):
    execution_id = await start(engine, approval())
    await settle(engine, sink, execution_id)
    run_ = engine.get(execution_id)
    assert_refused(sink, run_.pause)
    assert_refused(sink, run_.continue_)
    assert_refused(sink, run_.skip_breakpoint)
    assert_refused(sink, run_.disable_breakpoints)
    assert_refused(sink, lambda: run_.provide_input("publish", {"ok": True}))
    assert run_.status == "paused" and run_.execution.pause_reason == "input"


async def test_commands_refused_at_a_breakpoint(engine, sink):
    execution_id = await start(engine, with_breakpoints(), debug=True)
    await settle(engine, sink, execution_id)
    run_ = engine.get(execution_id)
    assert_refused(sink, run_.pause)
    assert_refused(sink, lambda: run_.provide_input(None, 1))


async def test_commands_refused_on_a_manual_pause(engine, sink, probe):
    execution_id = await start(engine, blueprint(probe_node("a", gate="a")))
    await wait_until(lambda: probe.running == 1)
    run_ = engine.get(execution_id)
    run_.pause()
    assert_refused(sink, run_.pause)
    assert_refused(sink, run_.skip_breakpoint)
    assert_refused(sink, run_.disable_breakpoints)
    assert_refused(sink, lambda: run_.provide_input(None, 1))
    probe.gate("a").set()


async def test_commands_refused_once_finished(engine, sink):
    # A delay, not a noop: an all-inline blueprint finishes inside start(), before get().
    execution_id = await start(engine, blueprint({"id": "a", "type": "delay", "config": {"ms": 0}}))
    run_ = engine.get(execution_id)
    await settle(engine, sink, execution_id)
    assert run_.status == "completed"
    for command in (run_.stop, run_.pause, run_.continue_, run_.skip_breakpoint):
        assert_refused(sink, command)
    assert_refused(sink, lambda: run_.provide_input(None, 1))


@pytest.mark.parametrize(
    ("waits", "timeout_ms"),
    [("input", None), ("pause", None), ("input", 50), ("pause", 50)],
)
async def test_stopping_or_timing_out_at_a_waiting_node_closes_its_attempt(
    engine, sink, waits, timeout_ms
):
    # Reported: the attempt an input or pause node opens when it starts waiting was left
    # without an end (completedAt null) in a cancelled or timed-out execution.
    config = {"prompt": "?"} if waits == "input" else {}
    document = blueprint({"id": "wait", "type": waits, "config": config})
    execution_id = await start(engine, document, timeout_ms=timeout_ms)
    await settle(engine, sink, execution_id)
    if timeout_ms is None:
        assert engine.get(execution_id).stop() is None
    await wait_until(lambda: outcome_of(sink, execution_id).execution.status.is_final, 30)
    seen = outcome_of(sink, execution_id)
    assert seen.status == ("cancelled" if timeout_ms is None else "failed")
    (attempt,) = seen.steps["wait"].attempts
    assert attempt.completed_at is not None
    assert attempt.error is not None and attempt.error.code == "CANCELLED"
