"""The built-in node types noop, delay, transform, condition and assert (API.md §3)."""

from __future__ import annotations

import pytest

from tests.engine.conftest import blueprint, ms, run, start, wait_logged


async def test_noop_without_dependencies_outputs_the_input(engine, sink):
    seen = await run(engine, sink, blueprint({"id": "a", "type": "noop"}), input={"n": 1})
    assert seen.status == "completed"
    assert seen.outputs == {"a": {"n": 1}}


async def test_noop_outputs_its_dependencies_outputs_by_id(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "transform", "config": {"expression": "`[1, 2]`"}},
            {"id": "c", "type": "noop", "dependsOn": ["a", "b"]},
        ),
        input="in",
    )
    assert seen.outputs["c"] == {"a": "in", "b": [1, 2]}


async def test_delay_sleeps_and_reports_it(engine, sink):
    seen = await run(engine, sink, blueprint({"id": "d", "type": "delay", "config": {"ms": 60}}))
    assert seen.outputs == {"d": {"sleptMs": 60}}
    step = seen.steps["d"]
    assert ms(step.completed_at) - ms(step.started_at) >= 55
    assert step.duration_ms is not None and step.duration_ms >= 55


async def test_transform_expression_reads_input_metadata_and_nodes(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "a", "type": "transform", "config": {"expression": "input.items"}},
            {
                "id": "b",
                "type": "transform",
                "dependsOn": ["a"],
                "config": {
                    "expression": "{n: length(nodes.a.output), who: metadata.who, "
                    "status: nodes.a.status}"
                },
            },
        ),
        input={"items": [1, 2, 3]},
        metadata={"who": "ci"},
    )
    assert seen.outputs["b"] == {"n": 3, "who": "ci", "status": "succeeded"}


async def test_transform_template_fills_in_nested_strings(engine, sink):
    template = {"greeting": "hello {{ input.name }}", "tags": ["{{ input.tag }}", "fixed", 3]}
    seen = await run(
        engine,
        sink,
        blueprint({"id": "t", "type": "transform", "config": {"template": template}}),
        input={"name": "ada", "tag": "x"},
    )
    assert seen.outputs["t"] == {"greeting": "hello ada", "tags": ["x", "fixed", 3]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ([1, "a"], [1, "a"]), ({"k": True}, {"k": True}), (None, None), (False, False)],
)
async def test_a_whole_string_template_keeps_the_type(engine, sink, value, expected):
    seen = await run(
        engine,
        sink,
        blueprint({"id": "t", "type": "transform", "config": {"template": "{{ input.v }}"}}),
        input={"v": value},
    )
    assert seen.outputs["t"] == expected


async def test_a_template_inside_text_writes_json_for_non_strings(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {
                "id": "t",
                "type": "transform",
                "config": {"template": "n={{ input.n }};o={{ input.o }}"},
            }
        ),
        input={"n": 5, "o": {"a": [1]}},
    )
    assert seen.outputs["t"] == 'n=5;o={"a":[1]}'


async def test_a_string_that_starts_and_ends_with_templates_fills_in_both(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "t", "type": "transform", "config": {"template": "{{ input.a }}-{{ input.b }}"}}
        ),
        input={"a": "x", "b": "y"},
    )
    assert seen.outputs.get("t") == "x-y"


async def test_an_expression_that_fails_on_its_data_fails_without_retry(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {
                "id": "t",
                "type": "transform",
                "config": {"expression": "length(input)"},
                "retry": {"maxAttempts": 3},
            }
        ),
        input=5,
    )
    assert seen.status == "failed"
    assert seen.steps["t"].error.code == "EXPRESSION_ERROR"
    assert len(seen.steps["t"].attempts) == 1


@pytest.mark.parametrize(
    "config", [{"expression": "nodes"}, {"expression": "@"}, {"template": {"all": "{{ nodes }}"}}]
)
async def test_an_output_of_the_context_is_a_copy_the_log_can_write(durable, config):
    """Found by tests/engine/test_fuzz_blueprints.py: `{"expression": "nodes"}` output the
    context's own `nodes` map, which then held the output, which held the map...: the log
    writer failed on the cycle and, retrying, wrote nothing more for any execution."""
    engine = await durable.boot()
    document = blueprint(
        {"id": "a", "type": "noop"},
        {"id": "t", "type": "transform", "config": config, "dependsOn": ["a"]},
        {"id": "z", "type": "noop", "dependsOn": ["t"]},
    )
    execution_id = await start(engine, document, input=1)
    seen = await wait_logged(durable.store, execution_id)
    assert seen.status == "completed"
    a = {"output": 1, "status": "succeeded"}
    assert seen.outputs["t"] in ({"a": a}, {"input": 1, "metadata": {}, "nodes": {"a": a}},
                                 {"all": {"a": a}})  # fmt: skip


@pytest.mark.parametrize("trace_logs", [False, True])
async def test_an_expression_jmespath_itself_trips_on_fails_the_node(engine, sink, trace_logs):
    """Found by tests/engine/test_fuzz_blueprints.py: jmespath raises ValueError for a slice
    step of 0; with trace logs on it escaped engine.start (rendering the config to log it)."""
    node = {"id": "t", "type": "transform", "config": {"template": "{{ input[::0] }}"}}
    seen = await run(engine, sink, blueprint(node), input=[1], trace_logs=trace_logs)
    assert seen.status == "failed"
    assert seen.steps["t"].error.code == "EXPRESSION_ERROR"


def branching(expression: str) -> dict:
    return blueprint(
        {
            "id": "check",
            "type": "condition",
            "config": {"expression": expression, "then": ["yes"], "else": ["no"]},
        },
        {"id": "yes", "type": "noop", "dependsOn": ["check"]},
        {"id": "no", "type": "noop", "dependsOn": ["check"]},
        {"id": "either", "type": "noop", "dependsOn": ["check"]},
    )


async def test_condition_true_runs_then_and_skips_else(engine, sink):
    seen = await run(engine, sink, branching("input.n > `0`"), input={"n": 1})
    assert seen.outputs["check"] == {"result": True, "branch": "then"}
    assert seen.statuses() == {
        "check": "succeeded",
        "yes": "succeeded",
        "no": "skipped",
        "either": "succeeded",
    }
    assert seen.status == "completed"


async def test_condition_false_runs_else_and_skips_then(engine, sink):
    seen = await run(engine, sink, branching("input.n > `0`"), input={"n": 0})
    assert seen.outputs["check"] == {"result": False, "branch": "else"}
    assert seen.statuses()["yes"] == "skipped" and seen.statuses()["no"] == "succeeded"


@pytest.mark.parametrize(
    ("value", "branch"), [(0, "then"), ("", "else"), ([], "else"), ({}, "else"), (None, "else")]
)
async def test_condition_uses_jmespath_truth(engine, sink, value, branch):
    seen = await run(engine, sink, branching("input.v"), input={"v": value})
    assert seen.outputs["check"]["branch"] == branch


async def test_skipping_spreads_to_nodes_whose_dependencies_are_all_skipped(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`false`", "then": ["t"]}},
            {"id": "t", "type": "noop", "dependsOn": ["c"]},
            {"id": "t2", "type": "noop", "dependsOn": ["t"]},
            {"id": "t3", "type": "noop", "dependsOn": ["t2"]},
        ),
    )
    assert seen.statuses() == {
        "c": "succeeded",
        "t": "skipped",
        "t2": "skipped",
        "t3": "skipped",
    }
    assert seen.status == "completed"
    assert seen.execution.skipped_steps == 3


async def test_a_node_with_one_dependency_not_skipped_runs(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`false`", "then": ["t"]}},
            {"id": "t", "type": "noop", "dependsOn": ["c"]},
            {"id": "other", "type": "noop"},
            {"id": "join", "type": "noop", "dependsOn": ["t", "other"]},
        ),
        input="in",
    )
    assert seen.statuses()["join"] == "succeeded"
    assert seen.outputs["join"] == {"t": None, "other": "in"}


async def test_a_node_with_all_dependencies_skipped_on_two_branches_is_skipped(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`true`", "else": ["x"]}},
            {"id": "d", "type": "condition", "config": {"expression": "`false`", "then": ["y"]}},
            {"id": "x", "type": "noop", "dependsOn": ["c"]},
            {"id": "y", "type": "noop", "dependsOn": ["d"]},
            {"id": "join", "type": "noop", "dependsOn": ["x", "y"]},
        ),
    )
    assert seen.statuses()["join"] == "skipped"


async def test_assert_true_outputs_true(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint({"id": "a", "type": "assert", "config": {"expression": "input.ok"}}),
        input={"ok": True},
    )
    assert seen.outputs == {"a": True}
    assert seen.status == "completed"


async def test_assert_false_fails_with_its_message_and_no_retry(engine, sink):
    seen = await run(
        engine,
        sink,
        blueprint(
            {
                "id": "a",
                "type": "assert",
                "config": {"expression": "input.ok", "message": "not ok"},
                "retry": {"maxAttempts": 3},
            }
        ),
        input={"ok": False},
    )
    step = seen.steps["a"]
    assert step.status == "failed"
    assert (step.error.code, step.error.message) == ("ASSERTION_FAILED", "not ok")
    assert len(step.attempts) == 1
    assert seen.status == "failed"
    assert seen.execution.error.code == "ASSERTION_FAILED"
    assert seen.execution.error.node_id == "a"
