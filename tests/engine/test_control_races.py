"""Commands fired at once (asyncio.gather): each gets one answer, in the order recorded, and the
log they leave is consistent: counts add up, nothing is left running in a finished execution,
and the execution ends or pauses cleanly."""

from __future__ import annotations

import asyncio
import random

import pytest

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


@pytest.fixture
async def engine(durable):
    return await durable.boot()


@pytest.fixture
def store(durable):
    return durable.store


async def settled(engine, store, execution_id, *statuses):
    """Once every command has its outcome and the execution has ended or paused (or reached
    one of `statuses`), as logged."""

    async def answered():
        return not [c for c, outcome in control_rows(store.path, execution_id) if outcome is None]

    await poll("every command to be answered", answered)
    seen = await wait_logged(store, execution_id, *statuses)
    assert_consistent(seen)
    return seen


async def finish(engine, store, probe, execution_id):
    """Drive a paused execution to its end (continuing it, opening every gate)."""
    for gate in ("a", "b"):
        probe.gate(gate).set()
    seen = await wait_logged(store, execution_id)
    while seen.status == "paused":
        assert (await engine.control(execution_id, Continue())).applied
        seen = await wait_logged(store, execution_id, "completed", "failed", "cancelled", "paused")
    assert_consistent(seen)
    return seen


def held() -> dict:
    """Waits at a pause node, then runs a probe that waits at gate `a`."""
    return blueprint({"id": "hold", "type": "pause"}, probe_node("a", gate="a", dependsOn=["hold"]))


async def test_two_continues_at_once_exactly_one_applies(engine, store, probe):
    execution_id = await start(engine, held())
    await wait_logged(store, execution_id, "paused")

    outcomes = await asyncio.gather(
        engine.control(execution_id, Continue()), engine.control(execution_id, Continue())
    )
    assert sorted(o.applied for o in outcomes) == [False, True]
    refused = next(o for o in outcomes if not o.applied)
    assert refused.message == "Execution is running, not paused"
    recorded = [outcome for _, outcome in control_rows(store.path, execution_id)]
    assert [o.applied for o in recorded] == [True, False]  # the first recorded wins
    seen = await settled(engine, store, execution_id, "running")
    assert seen.status == "running"
    assert seen.steps["hold"].status == "succeeded"
    probe.gate("a").set()
    assert (await wait_logged(store, execution_id)).status == "completed"
    assert probe.calls == {"a": 1}


async def test_many_continues_after_a_manual_pause_exactly_one_applies(engine, store, probe):
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"]))
    )
    await wait_until(lambda: probe.running == 1, timeout=30)
    assert (await engine.control(execution_id, Pause())).applied
    outcomes = await asyncio.gather(*(engine.control(execution_id, Continue()) for _ in range(8)))
    assert [o.applied for o in outcomes].count(True) == 1
    await settled(engine, store, execution_id, "running")
    seen = await finish(engine, store, probe, execution_id)
    assert seen.status == "completed" and probe.calls == {"a": 1, "b": 1}


async def test_many_pauses_at_once_exactly_one_applies(engine, store, probe):
    execution_id = await start(engine, blueprint(probe_node("a", gate="a")))
    await wait_until(lambda: probe.running == 1, timeout=30)
    outcomes = await asyncio.gather(*(engine.control(execution_id, Pause()) for _ in range(8)))
    assert [o.applied for o in outcomes].count(True) == 1
    seen = await settled(engine, store, execution_id)
    assert (seen.status, seen.execution.pause_reason) == ("paused", "manual")
    assert (await finish(engine, store, probe, execution_id)).status == "completed"


@pytest.mark.parametrize("yields", [0, 1, 2, 5, 20])
async def test_stop_while_a_node_is_finishing(engine, store, probe, yields):
    """The node's end and the stop race; whichever comes first, the log is consistent."""
    execution_id = await start(
        engine, blueprint(probe_node("a", gate="a"), probe_node("b", dependsOn=["a"], gate="b"))
    )
    await wait_until(lambda: probe.running == 1, timeout=30)

    async def release() -> None:
        for _ in range(yields):
            await asyncio.sleep(0)
        probe.gate("a").set()
        probe.gate("b").set()

    _, outcome = await asyncio.gather(release(), engine.control(execution_id, Stop()))
    seen = await settled(engine, store, execution_id)
    if outcome.applied:
        assert (outcome.message, outcome.was_running) == ("Execution stopped", True)
        assert seen.status == "cancelled"
        assert seen.steps["b"].status in ("cancelled", "succeeded")
        assert seen.steps["a"].status in ("cancelled", "succeeded")
    else:
        assert outcome.message == "Execution is already completed"
        assert seen.status == "completed"
    await wait_until(lambda: probe.running == 0, timeout=30)


async def test_stop_of_a_node_waiting_to_retry(engine, store, probe):
    execution_id = await start(
        engine, blueprint(probe_node("a", fail=-1, retry={"maxAttempts": 5, "backoffMs": 60_000}))
    )

    async def waiting_to_retry():
        return (await logged(store, execution_id)).steps["a"].next_retry_at is not None

    await poll("a to wait for its retry", waiting_to_retry)
    assert (await engine.control(execution_id, Stop())).applied
    seen = await settled(engine, store, execution_id)
    assert seen.status == "cancelled"
    step = seen.steps["a"]
    assert (step.status, step.next_retry_at, step.attempt_no) == ("cancelled", None, 1)
    assert probe.calls["a"] == 1


@pytest.mark.parametrize("stop_first", [True, False])
async def test_stop_and_continue_together(engine, store, probe, stop_first):
    execution_id = await start(engine, held())
    await wait_logged(store, execution_id, "paused")
    commands = [Stop(), Continue()] if stop_first else [Continue(), Stop()]
    outcomes = dict(
        zip(
            ("stop", "continue") if stop_first else ("continue", "stop"),
            await asyncio.gather(*(engine.control(execution_id, c) for c in commands)),
            strict=True,
        )
    )
    recorded = [type(command) for command, _ in control_rows(store.path, execution_id)]
    assert sorted(c.__name__ for c in recorded) == ["Continue", "Stop"]
    # The stop applies whatever the order: to a paused execution or to a continued one.
    assert outcomes["stop"].applied and outcomes["stop"].was_running
    if recorded[0] is Stop:
        assert not outcomes["continue"].applied
        assert outcomes["continue"].message == "Execution is already cancelled"
    else:
        assert outcomes["continue"].applied
    seen = await settled(engine, store, execution_id)
    assert seen.status == "cancelled"
    assert probe.calls["a"] <= 1
    await wait_until(lambda: probe.running == 0, timeout=30)


async def test_many_inputs_at_once_exactly_one_is_accepted(engine, store, probe):
    document = blueprint(
        {
            "id": "ask",
            "type": "input",
            "config": {"prompt": "n?", "schema": {"type": "object", "required": ["n"]}},
        },
        probe_node("after", dependsOn=["ask"]),
    )
    execution_id = await start(engine, document)
    await wait_logged(store, execution_id, "paused")
    answers = [ProvideInput(node_id="ask", data={"n": n}) for n in range(12)]
    outcomes = await asyncio.gather(*(engine.control(execution_id, a) for a in answers))
    accepted = [a for a, o in zip(answers, outcomes, strict=True) if o.applied]
    assert len(accepted) == 1
    for outcome in outcomes:
        if not outcome.applied:
            assert outcome.message in (
                "Execution is running and not waiting for input",
                "Execution is already completed",
            )
    seen = await settled(engine, store, execution_id)
    assert seen.status == "completed"
    assert seen.outputs["ask"] == accepted[0].data
    assert seen.outputs["after"] == {"call": 1}
    assert probe.calls == {"after": 1}
    (first, *_) = control_rows(store.path, execution_id)
    assert first[0] == accepted[0]  # the first recorded is the one accepted


async def test_answers_to_the_first_of_two_inputs_leave_the_second_waiting(engine, store):
    document = blueprint(
        {"id": "first", "type": "input", "config": {"prompt": "1?"}},
        {"id": "second", "type": "input", "dependsOn": ["first"], "config": {"prompt": "2?"}},
    )
    execution_id = await start(engine, document)
    await wait_logged(store, execution_id, "paused")
    outcomes = await asyncio.gather(
        *(engine.control(execution_id, ProvideInput(node_id="first", data=n)) for n in range(6))
    )
    assert [o.applied for o in outcomes].count(True) == 1
    refusals = {o.message for o in outcomes if not o.applied}
    assert refusals == {"Execution is waiting for input to node 'second', not 'first'"}
    seen = await settled(engine, store, execution_id)
    assert (seen.status, seen.execution.paused_node_id) == ("paused", "second")
    assert seen.execution.awaiting_input is not None
    assert seen.execution.awaiting_input.node_id == "second"


@pytest.mark.parametrize("seed", range(6))
async def test_a_storm_of_commands_leaves_a_consistent_log(engine, store, probe, seed):
    """Random commands at once on a running execution: it ends or pauses cleanly."""
    chooser = random.Random(seed)
    execution_id = await start(
        engine,
        blueprint(
            probe_node("a", gate="a"),
            probe_node("b", gate="b"),
            {"id": "hold", "type": "pause", "dependsOn": ["a"]},
            probe_node("c", dependsOn=["hold", "b"]),
        ),
    )
    await wait_until(lambda: probe.running == 2, timeout=30)
    kinds = [Pause, Continue, Stop, lambda: SetTraceLogs(enabled=True)]
    commands = [chooser.choice(kinds)() for _ in range(10)]

    async def release(gate: str) -> None:
        for _ in range(chooser.randrange(10)):
            await asyncio.sleep(0)
        probe.gate(gate).set()

    await asyncio.gather(
        release("a"), release("b"), *(engine.control(execution_id, c) for c in commands)
    )
    seen = await settled(engine, store, execution_id)
    stops = [o for c, o in control_rows(store.path, execution_id) if isinstance(c, Stop)]
    stopped = [o.applied for o in stops].count(True)
    assert stopped <= 1
    assert (seen.status == "cancelled") == (stopped == 1)
    seen = await finish(engine, store, probe, execution_id)
    assert seen.status == ("cancelled" if stopped else "completed")
    await wait_until(lambda: probe.running == 0, timeout=30)
