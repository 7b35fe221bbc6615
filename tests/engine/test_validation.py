"""Validation lists every problem in a document as {nodeId, field, message} (API.md §3)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engine.errors import BlueprintInvalid, Problem
from engine.model import Blueprint
from engine.registry import NodeRegistry
from engine.validation import compile_blueprint, find_problems
from tests.engine.conftest import blueprint


def problems_of(document: Any, registry: NodeRegistry, max_nodes: int = 10_000) -> list[Problem]:
    with pytest.raises(BlueprintInvalid) as caught:
        compile_blueprint(document, registry, max_nodes)
    return caught.value.problems


def where(problems: list[Problem]) -> set[tuple[str | None, str]]:
    return {(p.node_id, p.field) for p in problems}


def test_a_valid_document_becomes_a_blueprint(registry):
    document = blueprint(
        {"id": "a", "type": "noop", "name": "First", "retry": {"maxAttempts": 2}},
        {"id": "b", "type": "delay", "dependsOn": ["a"], "config": {"ms": 1}},
        name="ok",
    )
    result = compile_blueprint(document, registry).blueprint
    assert isinstance(result, Blueprint)
    assert [n.id for n in result.nodes] == ["a", "b"]
    assert result.nodes[0].title == "First" and result.nodes[1].title == "b"
    assert result.nodes[0].retry.max_attempts == 2
    assert result.nodes[1].depends_on == ("a",)


def test_every_problem_is_listed_not_just_the_first(registry):
    problems = problems_of(
        blueprint(
            {"id": "a", "type": "noop"},
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "nope"},
            {"id": "c", "type": "delay", "config": {"ms": "soon"}},
            {"id": "d", "type": "noop", "dependsOn": ["ghost"]},
        ),
        registry,
    )
    assert where(problems) == {
        ("a", "id"),
        ("b", "type"),
        ("c", "config.ms"),
        ("d", "dependsOn"),
    }


def test_the_error_message_summarises_the_problems(registry):
    with pytest.raises(BlueprintInvalid) as caught:
        compile_blueprint(
            blueprint({"id": "a", "type": "nope"}, {"id": "b", "type": "nope"}), registry
        )
    assert "2 problems" in str(caught.value)
    assert "'a'" in str(caught.value)


def test_duplicate_ids(registry):
    problems = problems_of(
        blueprint({"id": "a", "type": "noop"}, {"id": "a", "type": "noop"}), registry
    )
    assert where(problems) == {("a", "id")}
    assert "duplicate" in problems[0].message


def test_unknown_dependency_names_it(registry):
    problems = problems_of(blueprint({"id": "a", "type": "noop", "dependsOn": ["ghost"]}), registry)
    assert where(problems) == {("a", "dependsOn")}
    assert "ghost" in problems[0].message


def test_a_dependency_listed_twice(registry):
    problems = problems_of(
        blueprint(
            {"id": "a", "type": "noop"}, {"id": "b", "type": "noop", "dependsOn": ["a", "a"]}
        ),
        registry,
    )
    assert where(problems) == {("b", "dependsOn")}


def test_a_cycle_names_its_nodes(registry):
    problems = problems_of(
        blueprint(
            {"id": "start", "type": "noop"},
            {"id": "x", "type": "noop", "dependsOn": ["start", "z"]},
            {"id": "y", "type": "noop", "dependsOn": ["x"]},
            {"id": "z", "type": "noop", "dependsOn": ["y"]},
        ),
        registry,
    )
    assert len(problems) == 1
    assert problems[0].field == "dependsOn"
    for node_id in ("x", "y", "z"):
        assert node_id in problems[0].message
    assert "start" not in problems[0].message


def test_a_node_depending_on_itself_is_a_cycle(registry):
    problems = problems_of(blueprint({"id": "a", "type": "noop", "dependsOn": ["a"]}), registry)
    assert where(problems) == {("a", "dependsOn")}
    assert "cycle" in problems[0].message


def test_unknown_node_type_names_the_known_ones(registry):
    problems = problems_of(blueprint({"id": "a", "type": "teleport"}), registry)
    assert where(problems) == {("a", "type")}
    assert "teleport" in problems[0].message and "noop" in problems[0].message


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"type": "delay", "config": {"ms": "soon"}}, "config.ms"),
        ({"type": "delay", "config": {"ms": 1, "extra": True}}, "config.extra"),
        ({"type": "condition", "config": {"then": []}}, "config.expression"),
        ({"type": "http", "config": {"method": "GET"}}, "config.url"),
        ({"type": "input", "config": {"schema": {}}}, "config.prompt"),
        ({"type": "noop", "config": {"anything": 1}}, "config.anything"),
    ],
)
def test_a_bad_config_names_the_field(registry, node, field):
    problems = problems_of(blueprint({"id": "n", **node}), registry)
    assert where(problems) == {("n", field)}


@pytest.mark.parametrize(
    "node",
    [
        {"type": "delay", "config": {"ms": -1}},
        {"type": "transform", "config": {}},
        {"type": "transform", "config": {"expression": "a", "template": "b"}},
        {"type": "http", "config": {"url": "ftp://example.com"}},
        {"type": "http", "config": {"url": "http://x", "method": "BREW"}},
    ],
)
def test_a_config_that_breaks_a_rule_is_a_config_problem(registry, node):
    problems = problems_of(blueprint({"id": "n", **node}), registry)
    assert [(p.node_id, p.field.split(".")[0]) for p in problems] == [("n", "config")]


@pytest.mark.parametrize("multiplier", [math.nan, math.inf, -math.inf])
def test_a_backoff_multiplier_json_cannot_hold_is_a_problem(registry, multiplier):
    """Found by tests/engine/test_fuzz_blueprints.py: a NaN multiplier (from a Python caller;
    JSON has none) passed, and the snapshot the log keeps (NaN written as null) could not be
    read back to resume or retry the execution."""
    node = {"id": "n", "type": "noop", "retry": {"backoffMultiplier": multiplier}}
    problems = problems_of(blueprint(node), registry)
    assert where(problems) == {("n", "retry.backoffMultiplier")}


@pytest.mark.parametrize("schema_type", [[[]], {}, [{}], ["string", ["null"]]])
def test_a_schema_type_that_is_not_a_name_is_a_problem_not_a_crash(registry, schema_type):
    """Found by tests/engine/test_fuzz_blueprints.py: `{"type": [[]]}` raised TypeError
    (`[] in set`) out of validation, a 500 for blueprint.create."""
    config = {"prompt": "?", "schema": {"type": schema_type}}
    problems = problems_of(blueprint({"id": "n", "type": "input", "config": config}), registry)
    assert where(problems) == {("n", "config.schema.type")}


@pytest.mark.parametrize("bound", ["minimum", "maximum"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_an_input_schema_bound_json_cannot_hold_is_a_problem(registry, bound, value):
    """Found by tests/engine/test_fuzz_blueprints.py: `"minimum": NaN` passed (and so does
    1e400 sent as JSON, which decodes to infinity), but the snapshot keeps it as null, which
    fails validation when the blueprint is compiled again to resume or retry."""
    config = {"prompt": "?", "schema": {"type": "number", bound: value}}
    problems = problems_of(blueprint({"id": "n", "type": "input", "config": config}), registry)
    assert where(problems) == {("n", f"config.schema.{bound}")}


@pytest.mark.parametrize(
    "config",
    [
        {"type": "transform", "config": {"expression": "items[?"}},
        {"type": "transform", "config": {"template": {"deep": ["{{ items[? }}"]}}},
        {"type": "condition", "config": {"expression": "a ==", "then": []}},
        {"type": "assert", "config": {"expression": "&&"}},
        {"type": "http", "config": {"url": "http://x/{{ a[ }}"}},
    ],
)
def test_bad_jmespath_is_a_config_problem(registry, config):
    problems = problems_of(blueprint({"id": "n", **config}), registry)
    assert len(problems) == 1
    assert problems[0].node_id == "n" and problems[0].field.startswith("config")
    assert "expression" in problems[0].message


def test_condition_branches_must_name_direct_dependants(registry):
    problems = problems_of(
        blueprint(
            {"id": "c", "type": "condition", "config": {"expression": "`true`", "then": ["far"]}},
            {"id": "near", "type": "noop", "dependsOn": ["c"]},
            {"id": "far", "type": "noop", "dependsOn": ["near"]},
            {"id": "d", "type": "condition", "config": {"expression": "`true`", "else": ["near"]}},
        ),
        registry,
    )
    assert where(problems) == {("c", "config.then"), ("d", "config.else")}
    assert any("far" in p.message for p in problems)


def test_over_the_node_limit(registry):
    nodes = [{"id": f"n{i}", "type": "noop"} for i in range(4)]
    problems = problems_of(blueprint(*nodes), registry, max_nodes=3)
    assert where(problems) == {(None, "nodes")}
    assert "3" in problems[0].message
    compile_blueprint(blueprint(*nodes[:3]), registry, max_nodes=3)


def test_the_engine_applies_its_node_limit(make_engine):
    engine = make_engine(max_nodes=2)
    with pytest.raises(BlueprintInvalid):
        engine.validate(blueprint(*[{"id": f"n{i}", "type": "noop"} for i in range(3)]))


@pytest.mark.parametrize("document", [[], "blueprint", 7, None, [{"name": "x"}]])
def test_a_document_that_is_not_an_object(registry, document):
    problems = problems_of(document, registry)
    assert len(problems) == 1 and problems[0].node_id is None
    assert "object" in problems[0].message


def test_missing_name_and_nodes_are_both_listed(registry):
    assert where(problems_of({}, registry)) == {(None, "name"), (None, "nodes")}


@pytest.mark.parametrize(
    "document",
    [
        {"name": "", "nodes": [{"id": "a", "type": "noop"}]},
        {"name": "x", "nodes": []},
        {"name": "x", "nodes": {"a": {"type": "noop"}}},
        {"name": "x", "nodes": [{"id": "a", "type": "noop"}], "owner": "me"},
    ],
)
def test_a_document_with_a_bad_top_level_field(registry, document):
    assert len(problems_of(document, registry)) == 1


@pytest.mark.parametrize("node_id", ["a b", "a.b", "ä", "", "a/b", "x" * 129])
def test_ids_are_letters_digits_dashes_and_underscores(registry, node_id):
    problems = problems_of(blueprint({"id": node_id, "type": "noop"}), registry)
    assert where(problems) == {(node_id, "id")}


def test_ids_may_use_every_allowed_character(registry):
    compile_blueprint(blueprint({"id": "Az09-_", "type": "noop"}), registry)


def test_a_node_that_is_not_an_object_is_located_by_position(registry):
    problems = problems_of({"name": "x", "nodes": [{"id": "a", "type": "noop"}, 3]}, registry)
    assert where(problems) == {(None, "nodes[1]")}


def test_node_fields_are_checked_by_name(registry):
    problems = problems_of(
        blueprint(
            {"id": "a", "type": "noop", "timeoutMs": 0},
            {"id": "b", "type": "noop", "retry": {"maxAttempts": 0}},
            {"id": "c", "type": "noop", "retry": {"maxAttempts": "3"}},
            {"id": "d", "type": "noop", "colour": "red"},
        ),
        registry,
    )
    assert where(problems) == {
        ("a", "timeoutMs"),
        ("b", "retry"),
        ("c", "retry.maxAttempts"),
        ("d", "colour"),
    }


def test_python_function_must_be_registered(registry):
    problems = problems_of(
        blueprint({"id": "p", "type": "python", "config": {"function": "missing"}}), registry
    )
    assert where(problems) == {("p", "config.function")}
    assert "missing" in problems[0].message


# Bugs found while writing these tests.


def test_an_id_ending_in_a_newline_is_rejected(registry):
    _, problems = find_problems(blueprint({"id": "a\n", "type": "noop"}), registry)
    assert where(problems) == {("a\n", "id")}


@pytest.mark.parametrize("then", [5, [["a"]]])
def test_a_condition_branch_that_is_not_a_list_of_ids_is_a_problem(registry, then):
    document = blueprint(
        {"id": "c", "type": "condition", "config": {"expression": "`true`", "then": then}},
        {"id": "a", "type": "noop", "dependsOn": ["c"]},
    )
    problems = problems_of(document, registry)
    assert ("c", "config.then") in where(problems) or ("c", "config.then[0]") in where(problems)


def test_a_missing_name_does_not_hide_node_problems(registry):
    problems = problems_of({"nodes": [{"id": "a", "type": "nope"}]}, registry)
    assert where(problems) == {(None, "name"), ("a", "type")}


def test_an_unknown_dependency_does_not_hide_a_cycle(registry):
    problems = problems_of(
        blueprint(
            {"id": "a", "type": "noop", "dependsOn": ["b"]},
            {"id": "b", "type": "noop", "dependsOn": ["a"]},
            {"id": "c", "type": "noop", "dependsOn": ["ghost"]},
        ),
        registry,
    )
    assert ("c", "dependsOn") in where(problems)
    assert any("cycle" in p.message for p in problems)


def test_two_separate_cycles_are_both_reported(registry):
    problems = problems_of(
        blueprint(
            {"id": "a", "type": "noop", "dependsOn": ["b"]},
            {"id": "b", "type": "noop", "dependsOn": ["a"]},
            {"id": "c", "type": "noop", "dependsOn": ["d"]},
            {"id": "d", "type": "noop", "dependsOn": ["c"]},
        ),
        registry,
    )
    assert len([p for p in problems if "cycle" in p.message]) == 2


def test_a_dependency_on_a_node_with_a_bad_field_is_not_unknown(registry):
    problems = problems_of(
        blueprint(
            {"id": "x", "type": "noop", "timeoutMs": 0},
            {"id": "y", "type": "noop", "dependsOn": ["x"]},
        ),
        registry,
    )
    assert where(problems) == {("x", "timeoutMs")}
