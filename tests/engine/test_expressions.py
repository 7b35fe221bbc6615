"""JMESPath expressions and `{{ }}` templates over the execution context (API.md §3)."""

from __future__ import annotations

import pytest

from engine.expressions import (
    ExpressionError,
    check_template,
    compile_expression,
    evaluate,
    is_truthy,
    render,
)

CONTEXT = {"input": {"n": 2, "name": "ada", "list": [1, 2]}, "metadata": {}, "nodes": {}}


def test_an_expression_reads_the_context():
    assert evaluate("input.list[-1]", CONTEXT) == 2
    assert evaluate("nodes.missing.output", CONTEXT) is None


@pytest.mark.parametrize("source", ["", "   ", "a[", "a ==", "foo[?"])
def test_a_bad_expression_is_an_expression_error(source):
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_an_expression_failing_on_its_data_is_an_expression_error():
    with pytest.raises(ExpressionError, match="failed"):
        evaluate("length(input.n)", CONTEXT)


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("input[::0]", [1, 2]),
        ("input[?a > `1`]", [{"a": 2}, {"a": "b"}]),
        ("max_by(input, &a)", [{"a": 1}, {"a": "b"}]),
        ("min_by(input, &a)", [{"a": 1}, {"a": "b"}]),
    ],
)
def test_jmespaths_own_errors_on_odd_data_are_expression_errors(source, data):
    """Found by tests/engine/test_fuzz_blueprints.py: jmespath raises ValueError or TypeError
    here, which failed a transform as a retryable NODE_ERROR (and escaped the trace log of
    its resolved config)."""
    with pytest.raises(ExpressionError, match="failed"):
        evaluate(source, {"input": data, "metadata": {}, "nodes": {}})


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (0, True),
        ("x", True),
        ([0], True),
        (True, True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
    ],
)
def test_truth_is_jmespaths(value, truth):
    assert is_truthy(value) is truth


def test_render_fills_in_templates_at_any_depth():
    template = {"a": ["{{ input.n }}", {"b": "hi {{ input.name }}!"}], "c": 1, "d": None}
    assert render(template, CONTEXT) == {"a": [2, {"b": "hi ada!"}], "c": 1, "d": None}


def test_a_whole_string_template_keeps_its_type_even_with_spaces_around():
    assert render("  {{ input.list }} ", CONTEXT) == [1, 2]


def test_a_string_without_templates_is_left_alone():
    assert render("plain {not a template}", CONTEXT) == "plain {not a template}"


def test_check_template_finds_a_bad_expression_anywhere():
    check_template({"ok": ["{{ input.n }}"]})
    with pytest.raises(ExpressionError):
        check_template({"ok": ["fine", {"deep": "x {{ a[ }}"}]})


def test_a_string_that_starts_and_ends_with_a_template_renders_both():
    assert render("{{ input.name }} and {{ input.n }}", CONTEXT) == "ada and 2"
