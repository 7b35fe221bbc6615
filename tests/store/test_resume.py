"""What a restart takes up again, loaded from the log."""

from __future__ import annotations

from engine.model import RunOptions
from store import Store
from tests.store._events import at, created, exec_id, execution, log, step, step_updated

ASKS = {
    "name": "asks",
    "nodes": [
        {"id": "start", "type": "noop"},
        {"id": "ask", "type": "input", "dependsOn": ["start"],
         "config": {"prompt": "Publish?", "schema": {"type": "object"}}},
        {"id": "after", "type": "noop", "dependsOn": ["ask"]},
    ],
}  # fmt: skip


async def test_a_paused_execution_comes_back_with_all_it_needs(store, engine, run_blueprint):
    options = RunOptions(debug=True, trace_logs=True, timeout_ms=60_000)
    execution_id = await run_blueprint(ASKS, input={"x": 1}, options=options)

    (item,) = await store.resume_source.load_unfinished()
    assert (item.execution.id, item.execution.status) == (execution_id, "paused")
    assert item.execution.paused_node_id == "ask"
    assert [(s.node_id, s.status) for s in item.steps] == [
        ("start", "succeeded"),
        ("ask", "waiting"),
        ("after", "queued"),
    ]
    assert item.outputs == {0: {"x": 1}}
    assert item.blueprint == engine.validate(ASKS)
    assert item.input == {"x": 1}
    assert item.options == options
    status = await store.executions.status(execution_id, 1000)
    assert item.last_seq == status.count(b'"seq":') > 0


async def test_queued_and_running_come_back_oldest_first_and_finished_ones_do_not(store):
    shapes = [("completed", 1), ("running", 2), ("failed", 3), ("queued", 4), ("cancelled", 5)]
    for status, n in shapes:
        store.writer.emit(created(execution(exec_id(n), status, at(10 - n))))
    await store.writer.flush()

    unfinished = await store.resume_source.load_unfinished()
    assert [(i.execution.id, i.execution.status) for i in unfinished] == [
        (exec_id(4), "queued"),
        (exec_id(2), "running"),
    ]


async def test_outputs_are_keyed_by_node_position(store):
    record = execution(exec_id(1), total_steps=3)
    store.writer.emit(created(record, ("a", "b", "c"), input=[1, 2]))
    store.writer.emit(step_updated(record.id, 0, step("a", 0, "succeeded"), output=None))
    store.writer.emit(step_updated(record.id, 2, step("c", 2, "succeeded"), output={"c": True}))
    store.writer.emit(log(record.id, 1))
    store.writer.emit(log(record.id, 2))
    await store.writer.flush()

    (item,) = await store.resume_source.load_unfinished()
    assert item.outputs == {0: None, 2: {"c": True}}
    assert [s.status for s in item.steps] == ["succeeded", "queued", "succeeded"]
    assert item.input == [1, 2]
    assert item.last_seq == 2


async def test_an_execution_without_logs_resumes_from_seq_zero(store):
    store.writer.emit(created(execution(exec_id(1), "queued")))
    await store.writer.flush()
    (item,) = await store.resume_source.load_unfinished()
    assert item.last_seq == 0
    assert item.options == RunOptions()


async def test_a_step_running_when_the_server_stopped_is_still_running_after_reopening(
    path, store, engine
):
    document = {"name": "slow", "nodes": [{"id": "wait", "type": "delay", "config": {"ms": 60000}}]}
    execution = await engine.start(
        engine.validate(document), blueprint_id="bp_1", blueprint_version=3
    )
    await store.writer.flush()
    await engine.close()
    await store.writer.flush()

    reopened = await Store.open(path)
    try:
        (item,) = await reopened.resume_source.load_unfinished()
    finally:
        await reopened.close()
    assert (item.execution.id, item.execution.status) == (execution.id, "running")
    assert (item.execution.blueprint_id, item.execution.blueprint_version) == ("bp_1", 3)
    assert [(s.node_id, s.status, s.attempt_no) for s in item.steps] == [("wait", "running", 1)]
    assert item.blueprint.nodes[0].config == {"ms": 60000}
