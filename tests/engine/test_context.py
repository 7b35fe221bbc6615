"""What a node handler can do through its context: log, report metrics, attach artifacts
(API.md §3)."""

from __future__ import annotations

from tests.engine.conftest import blueprint, run

ARTIFACT = {"type": "file", "outputId": "o1", "url": "http://x/o1.csv", "mimeType": "text/csv"}


async def test_a_handler_logs_reports_metrics_and_attaches_artifacts(registry, engine, sink):
    @registry.node_type("report")
    async def report(ctx, config):
        ctx.log("made rows", "debug", {"rows": 3})
        ctx.log("careful", "warn")
        ctx.metric("rows", 3)
        ctx.metric("seconds", 0.5)
        ctx.artifact(ARTIFACT)
        return {"ok": True}

    seen = await run(engine, sink, blueprint({"id": "r", "type": "report"}))
    [done] = [e for e in seen.step_events if e.step.status == "succeeded"]
    assert done.metrics == {"rows": 3.0, "seconds": 0.5}
    assert done.artifacts == (ARTIFACT,)
    assert done.output == {"ok": True}
    mine = [(e.level.value, e.message, e.data) for e in seen.logs if e.node_id == "r"]
    assert ("debug", "made rows", {"rows": 3}) in mine
    assert ("warn", "careful", None) in mine


async def test_metrics_and_artifacts_belong_to_the_attempt_that_succeeded(registry, engine, sink):
    @registry.node_type("twice")
    async def twice(ctx, config):
        ctx.metric("attempt", ctx.attempt_no)
        ctx.artifact({"type": "note", "attempt": ctx.attempt_no})
        if ctx.attempt_no == 1:
            raise RuntimeError("first try")
        return None

    seen = await run(
        engine, sink, blueprint({"id": "t", "type": "twice", "retry": {"maxAttempts": 2}})
    )
    [done] = [e for e in seen.step_events if e.step.status == "succeeded"]
    assert done.metrics == {"attempt": 2.0}
    assert done.artifacts == ({"type": "note", "attempt": 2},)


async def test_an_artifact_without_a_type_fails_the_attempt(registry, engine, sink):
    @registry.node_type("bad-artifact")
    async def bad_artifact(ctx, config):
        ctx.artifact({"url": "http://x"})

    seen = await run(engine, sink, blueprint({"id": "b", "type": "bad-artifact"}))
    assert seen.steps["b"].error.code == "NODE_ERROR"
    assert "type" in seen.steps["b"].error.message


async def test_a_handler_sees_its_execution_and_attempt(registry, engine, sink):
    seen_by_handler = {}

    @registry.node_type("look")
    async def look(ctx, config):
        seen_by_handler.update(
            execution_id=ctx.execution_id,
            attempt=ctx.attempt_no,
            deps=ctx.dependencies,
            input=ctx.input,
            metadata=ctx.metadata,
            a=ctx.output_of("a"),
        )

    seen = await run(
        engine,
        sink,
        blueprint({"id": "a", "type": "noop"}, {"id": "l", "type": "look", "dependsOn": ["a"]}),
        input=5,
        metadata={"k": "v"},
    )
    assert seen_by_handler == {
        "execution_id": seen.execution.id,
        "attempt": 1,
        "deps": ("a",),
        "input": 5,
        "metadata": {"k": "v"},
        "a": 5,
    }


async def test_a_long_log_message_is_cut(registry, make_engine, sink):
    engine = make_engine(log_message_bytes=100)

    @registry.node_type("chatty")
    async def chatty(ctx, config):
        ctx.log("x" * 500)

    seen = await run(engine, sink, blueprint({"id": "c", "type": "chatty"}))
    [entry] = [e for e in seen.logs if e.node_id == "c" and e.message.startswith("x")]
    assert entry.message.startswith("x" * 100) and "x" * 101 not in entry.message
    assert len(entry.message) < 150


async def test_a_long_log_message_is_cut_by_its_size_in_bytes(registry, make_engine, sink):
    engine = make_engine(log_message_bytes=100)

    @registry.node_type("chatty")
    async def chatty(ctx, config):
        ctx.log("é" * 100)

    seen = await run(engine, sink, blueprint({"id": "c", "type": "chatty"}))
    [entry] = [e for e in seen.logs if e.node_id == "c" and e.message.startswith("é")]
    assert len(entry.message.split("...")[0].encode()) <= 100
