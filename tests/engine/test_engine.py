"""The engine: the global limit and its queue, settling, closing, and resuming after a restart
(API.md §4)."""

from __future__ import annotations

import asyncio

from engine.events import ExecutionUpdated
from tests.engine.conftest import (
    FakeResumeSource,
    blueprint,
    outcome_of,
    probe_node,
    settle,
    start,
    unfinished_from,
    wait_until,
)


def status_changes(sink, execution_id: str) -> list[tuple[int, str]]:
    """(position in the sink, status) for each execution record whose status changed."""
    changes: list[tuple[int, str]] = []
    for position, event in enumerate(sink.events):
        if isinstance(event, ExecutionUpdated) and event.execution_id == execution_id:
            status = event.execution.status.value
            if not changes or changes[-1][1] != status:
                changes.append((position, status))
    return changes


def first_position(sink, execution_id: str, status: str) -> int:
    return next(p for p, s in status_changes(sink, execution_id) if s == status)


# The global limit


async def test_executions_over_the_global_limit_wait_queued_first_in_first_out(
    make_engine, sink, probe
):
    engine = make_engine(max_running_executions=1)
    first = await start(engine, blueprint(probe_node("a", gate="first")))
    second = await start(engine, blueprint(probe_node("b")))
    third = await start(engine, blueprint(probe_node("c")))
    assert engine.get(first).status == "running"
    assert engine.get(second).status == "queued" and engine.get(third).status == "queued"
    assert engine.queued_count == 2
    await asyncio.sleep(0.02)
    assert probe.calls["b"] == 0
    probe.gate("first").set()
    await settle(engine, sink, third)
    assert [outcome_of(sink, e).status for e in (first, second, third)] == ["completed"] * 3
    assert first_position(sink, first, "completed") < first_position(sink, second, "running")
    assert first_position(sink, second, "completed") < first_position(sink, third, "running")
    assert [s for _, s in status_changes(sink, second)] == ["running", "completed"]
    assert outcome_of(sink, second).created.execution.status == "queued"


async def test_executions_under_the_limit_run_at_once(make_engine, sink, probe):
    engine = make_engine(max_running_executions=2)
    ids = [await start(engine, blueprint(probe_node("p", gate="g"))) for _ in range(3)]
    assert [engine.get(i).status for i in ids] == ["running", "running", "queued"]
    probe.gate("g").set()
    for execution_id in ids:
        assert (await settle(engine, sink, execution_id)).status == "completed"


async def test_stopping_a_queued_execution_cancels_it_and_frees_its_place(make_engine, sink, probe):
    engine = make_engine(max_running_executions=1)
    await start(engine, blueprint(probe_node("a", gate="first")))
    second = await start(engine, blueprint(probe_node("b")))
    third = await start(engine, blueprint(probe_node("c")))
    assert engine.get(second).stop() is None
    assert outcome_of(sink, second).status == "cancelled"
    assert outcome_of(sink, second).statuses() == {"b": "cancelled"}
    assert engine.queued_count == 1
    probe.gate("first").set()
    assert (await settle(engine, sink, third)).status == "completed"
    assert probe.calls["b"] == 0


async def test_an_execution_timeout_runs_while_it_is_queued(make_engine, sink, probe):
    engine = make_engine(max_running_executions=1)
    await start(engine, blueprint(probe_node("a", gate="first")))
    queued = await start(engine, blueprint({"id": "n", "type": "noop"}), timeout_ms=50)
    await asyncio.sleep(0.2)
    seen = outcome_of(sink, queued)
    probe.gate("first").set()
    assert seen.status == "failed"
    assert seen.execution.error.code == "TIMEOUT"


# Settling and closing


async def test_wait_settled_returns_on_pause_and_on_the_end(engine, sink):
    execution_id = await start(
        engine,
        blueprint(
            {"id": "hold", "type": "pause"},
            {"id": "d", "type": "delay", "dependsOn": ["hold"], "config": {"ms": 30}},
        ),
    )
    await engine.wait_settled(execution_id, 5)
    assert engine.get(execution_id).status == "paused"
    engine.get(execution_id).continue_()
    await engine.wait_settled(execution_id, 5)
    assert outcome_of(sink, execution_id).status == "completed"
    assert engine.get(execution_id) is None


async def test_wait_settled_gives_up_after_its_timeout(engine, probe):
    execution_id = await start(engine, blueprint(probe_node("p", gate="never")))
    await engine.wait_settled(execution_id, 0.05)
    assert engine.get(execution_id).status == "running"


async def test_close_stops_runs_without_recording_anything(engine, sink, probe):
    execution_id = await start(engine, blueprint(probe_node("p", gate="never")))
    await wait_until(lambda: probe.running == 1)
    before = len(sink.events)
    await engine.close()
    await asyncio.sleep(0.02)
    assert len(sink.events) == before
    assert probe.running == 0
    assert engine.get(execution_id) is None
    assert outcome_of(sink, execution_id).status == "running"


# Resuming after a restart


async def interrupt(engine, until) -> None:
    """Close the engine once `until()` holds, as a server stopping would."""
    await wait_until(until)
    await engine.close()


async def test_resume_keeps_succeeded_steps_and_reruns_the_interrupted_one(
    make_engine, sink, probe
):
    engine = make_engine()
    execution_id = await start(
        engine,
        blueprint(
            probe_node("done"),
            probe_node("busy", gate="busy", dependsOn=["done"]),
            probe_node("later", dependsOn=["busy"]),
        ),
        input={"n": 1},
    )
    await interrupt(engine, lambda: probe.calls["busy"] == 1)
    probe.gate("busy").set()
    restarted = make_engine()
    assert await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id))) == 1
    seen = await settle(restarted, sink, execution_id)
    assert seen.status == "completed"
    assert probe.calls == {"done": 1, "busy": 2, "later": 1}
    busy = seen.steps["busy"]
    assert busy.attempt_no == 2
    assert [a.error.code if a.error else None for a in busy.attempts] == ["INTERRUPTED", None]
    assert seen.outputs["later"] == {"call": 1}
    warning = [e for e in seen.logs if e.level == "warn" and e.node_id == "busy"]
    assert warning and "attempt 2" in warning[0].message
    assert [e.seq for e in seen.logs] == list(range(1, len(seen.logs) + 1))


async def test_a_resumed_node_sees_the_recorded_outputs(make_engine, sink, probe):
    engine = make_engine()
    execution_id = await start(
        engine,
        blueprint(
            {"id": "first", "type": "transform", "config": {"expression": "input.n"}},
            probe_node("busy", gate="busy", dependsOn=["first"]),
            {"id": "last", "type": "noop", "dependsOn": ["first", "busy"]},
        ),
        input={"n": 41},
    )
    await interrupt(engine, lambda: probe.calls["busy"] == 1)
    probe.gate("busy").set()
    restarted = make_engine()
    await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id)))
    seen = await settle(restarted, sink, execution_id)
    assert seen.outputs["last"] == {"first": 41, "busy": {"call": 2}}


async def test_an_interrupted_attempt_does_not_count_against_max_attempts(make_engine, sink, probe):
    engine = make_engine()
    execution_id = await start(
        engine, blueprint(probe_node("p", gate="g", fail=-1, retry={"maxAttempts": 2}))
    )
    await interrupt(engine, lambda: probe.calls["p"] == 1)
    probe.gate("g").set()
    restarted = make_engine()
    await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id)))
    seen = await settle(restarted, sink, execution_id)
    assert seen.status == "failed"
    assert [a.error.code for a in seen.steps["p"].attempts] == [
        "INTERRUPTED",
        "PROBE_FAILED",
        "PROBE_FAILED",
    ]


async def test_a_paused_execution_stays_paused_after_a_restart(make_engine, sink, probe):
    engine = make_engine()
    execution_id = await start(
        engine,
        blueprint(
            probe_node("before"),
            {"id": "ask", "type": "input", "dependsOn": ["before"], "config": {"prompt": "?"}},
            probe_node("after", dependsOn=["ask"]),
        ),
    )
    await settle(engine, sink, execution_id)
    await engine.close()
    restarted = make_engine()
    await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id)))
    await asyncio.sleep(0.02)
    run_ = restarted.get(execution_id)
    assert run_.status == "paused" and run_.execution.pause_reason == "input"
    assert probe.calls == {"before": 1}
    assert run_.provide_input("ask", {"ok": True}) is None
    seen = await settle(restarted, sink, execution_id)
    assert seen.status == "completed"
    assert probe.calls == {"before": 1, "after": 1}


async def test_a_queued_execution_starts_after_a_restart(make_engine, sink, probe):
    engine = make_engine(max_running_executions=1)
    running = await start(engine, blueprint(probe_node("a", gate="a")))
    queued = await start(engine, blueprint(probe_node("b")))
    await wait_until(lambda: probe.calls["a"] == 1)
    await engine.close()
    probe.gate("a").set()
    restarted = make_engine(max_running_executions=1)
    source = FakeResumeSource(unfinished_from(sink, running), unfinished_from(sink, queued))
    assert await restarted.resume(source) == 2
    for execution_id in (running, queued):
        assert (await settle(restarted, sink, execution_id)).status == "completed"
    assert probe.calls == {"a": 2, "b": 1}
    assert first_position(sink, running, "completed") < first_position(sink, queued, "running")


async def test_a_resumed_paused_execution_keeps_its_timeout(make_engine, sink, probe):
    engine = make_engine()
    execution_id = await start(
        engine,
        blueprint(
            {"id": "hold", "type": "pause"}, probe_node("slow", gate="never", dependsOn=["hold"])
        ),
        timeout_ms=300,
    )
    await settle(engine, sink, execution_id)
    await engine.close()
    restarted = make_engine()
    await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id)))
    restarted.get(execution_id).continue_()
    await asyncio.sleep(0.6)
    seen = outcome_of(sink, execution_id)
    assert seen.status == "failed"
    assert seen.execution.error.code == "TIMEOUT"


async def test_a_manual_pause_resumed_after_a_restart_records_no_running_step(
    make_engine, sink, probe
):
    # Reported: the step running when the server stopped was queued again, but a paused
    # execution's record was not sent, so it kept runningSteps 1 and the node in runningNodeIds.
    engine = make_engine()
    execution_id = await start(engine, blueprint(probe_node("a", gate="a")))
    await wait_until(lambda: probe.running == 1)
    assert engine.get(execution_id).pause() is None
    await engine.close()
    restarted = make_engine()
    await restarted.resume(FakeResumeSource(unfinished_from(sink, execution_id)))
    seen = outcome_of(sink, execution_id)
    assert (seen.status, seen.statuses()) == ("paused", {"a": "queued"})
    assert (seen.execution.running_steps, seen.execution.running_node_ids) == (0, ())
    assert seen.execution.current_step is None
    probe.gate("a").set()
