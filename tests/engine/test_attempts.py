"""Attempts, retries, backoff and timeouts of one node (API.md §4)."""

from __future__ import annotations

from tests.engine.conftest import blueprint, ms, probe_node, run


async def test_a_retried_node_counts_its_attempts_and_keeps_each_one(engine, sink, probe):
    seen = await run(engine, sink, blueprint(probe_node(fail=2, retry={"maxAttempts": 3})))
    step = seen.steps["p"]
    assert step.status == "succeeded" and step.attempt_no == 3
    assert [a.attempt_no for a in step.attempts] == [1, 2, 3]
    assert [a.error.code if a.error else None for a in step.attempts] == [
        "PROBE_FAILED",
        "PROBE_FAILED",
        None,
    ]
    assert all(a.started_at and a.completed_at for a in step.attempts)
    assert step.error is None
    assert [s.attempt_no for s in seen.updates_of("p") if s.status == "running"][-1] == 3
    assert probe.calls["p"] == 3


async def test_each_failed_attempt_is_logged_as_a_warning(engine, sink):
    seen = await run(engine, sink, blueprint(probe_node(fail=2, retry={"maxAttempts": 3})))
    warnings = [e for e in seen.logs if e.level == "warn" and e.node_id == "p"]
    assert len(warnings) == 2
    assert "attempt 1" in warnings[0].message and "attempt 2" in warnings[1].message


async def test_when_attempts_run_out_the_step_fails_with_the_last_error(engine, sink, probe):
    seen = await run(engine, sink, blueprint(probe_node(fail=-1, retry={"maxAttempts": 2})))
    step = seen.steps["p"]
    assert step.status == "failed" and step.attempt_no == 2
    assert [a.error.message for a in step.attempts] == ["call 1 failed", "call 2 failed"]
    assert step.error.message == "call 2 failed"
    assert seen.execution.error.code == "PROBE_FAILED"
    assert probe.calls["p"] == 2


async def test_a_non_retryable_error_ends_the_attempts_at_once(engine, sink, probe):
    seen = await run(
        engine,
        sink,
        blueprint(probe_node(fail=-1, retryable=False, code="FATAL", retry={"maxAttempts": 5})),
    )
    assert probe.calls["p"] == 1
    assert len(seen.steps["p"].attempts) == 1
    assert seen.execution.error.code == "FATAL"


async def test_the_wait_between_attempts_grows_by_the_multiplier(engine, sink):
    retry = {"maxAttempts": 3, "backoffMs": 100, "backoffMultiplier": 2}
    seen = await run(engine, sink, blueprint(probe_node(fail=2, retry=retry)))
    first, second, third = seen.steps["p"].attempts
    assert ms(second.started_at) - ms(first.completed_at) >= 95
    assert ms(third.started_at) - ms(second.completed_at) >= 190


async def test_a_step_waiting_to_retry_shows_next_retry_at(engine, sink):
    retry = {"maxAttempts": 2, "backoffMs": 100}
    seen = await run(engine, sink, blueprint(probe_node(fail=1, retry=retry)))
    waiting = [s for s in seen.updates_of("p") if s.next_retry_at is not None]
    assert waiting, "no step record showed nextRetryAt"
    record = waiting[0]
    assert record.status == "running"
    planned = ms(record.next_retry_at) - ms(record.attempts[0].completed_at)
    assert 98 <= planned < 150  # nextRetryAt is taken a moment before completedAt
    assert seen.steps["p"].next_retry_at is None
    assert ms(seen.steps["p"].attempts[1].started_at) >= ms(record.next_retry_at) - 5


def planned_waits(seen) -> list[int]:
    waits = []
    for record in seen.updates_of("p"):
        if record.next_retry_at is not None:
            wait = ms(record.next_retry_at) - ms(record.attempts[-1].completed_at)
            if not waits or record.attempt_no != waits[-1][0]:
                waits.append((record.attempt_no, wait))
    return [wait for _, wait in waits]


async def test_the_wait_is_capped_by_max_backoff(engine, sink):
    retry = {"maxAttempts": 3, "backoffMs": 60, "backoffMultiplier": 10, "maxBackoffMs": 90}
    seen = await run(engine, sink, blueprint(probe_node(fail=2, retry=retry)))
    first, second = planned_waits(seen)
    assert 58 <= first < 100
    assert 88 <= second < 130


async def test_jitter_keeps_the_wait_within_half_either_way(engine, sink):
    retry = {"maxAttempts": 4, "backoffMs": 80, "backoffMultiplier": 1, "jitter": True}
    seen = await run(engine, sink, blueprint(probe_node(fail=3, retry=retry)))
    waits = planned_waits(seen)
    assert len(waits) == 3
    assert all(38 <= wait <= 121 for wait in waits), waits


async def test_a_node_timeout_fails_the_attempt_with_timeout_and_is_retried(engine, sink, probe):
    node = probe_node(sleepMs=5000, timeoutMs=50, retry={"maxAttempts": 2})
    seen = await run(engine, sink, blueprint(node))
    step = seen.steps["p"]
    assert [a.error.code for a in step.attempts] == ["TIMEOUT", "TIMEOUT"]
    assert probe.calls["p"] == 2
    assert seen.status == "failed" and seen.execution.error.code == "TIMEOUT"


async def test_a_node_timeout_does_not_touch_a_quick_attempt(engine, sink):
    node = probe_node(sleepMs=10, timeoutMs=2000)
    seen = await run(engine, sink, blueprint(node))
    assert seen.status == "completed"


async def test_the_execution_timeout_fails_the_execution(engine, sink, probe):
    seen = await run(
        engine,
        sink,
        blueprint(probe_node(gate="never"), {"id": "after", "type": "noop", "dependsOn": ["p"]}),
        timeout_ms=100,
    )
    assert seen.status == "failed"
    assert seen.execution.error.code == "TIMEOUT"
    assert seen.execution.error.node_id is None
    assert seen.statuses() == {"p": "cancelled", "after": "cancelled"}
    assert seen.execution.end_time is not None
    assert ms(seen.execution.end_time) - ms(seen.execution.start_time) >= 95


async def test_an_output_that_is_not_json_data_fails_without_retry(registry, engine, sink):
    calls = []

    @registry.node_type("odd")
    async def odd(ctx, config):
        calls.append(1)
        return object()

    seen = await run(
        engine, sink, blueprint({"id": "o", "type": "odd", "retry": {"maxAttempts": 3}})
    )
    assert seen.steps["o"].error.code == "INVALID_OUTPUT"
    assert len(calls) == 1


async def test_a_handler_exception_is_a_retryable_node_error(registry, engine, sink):
    calls = []

    @registry.node_type("crash")
    async def crash(ctx, config):
        calls.append(ctx.attempt_no)
        raise KeyError("missing")

    seen = await run(
        engine, sink, blueprint({"id": "c", "type": "crash", "retry": {"maxAttempts": 2}})
    )
    assert calls == [1, 2]
    assert seen.steps["c"].error.code == "NODE_ERROR"
    assert "KeyError" in seen.steps["c"].error.message
