"""Property-based fuzzing of blueprint documents: validation, then runs on a real log.

Whatever arrives (near-valid DAGs of the built-in node types with faults sown at every level,
documents past the node limit, deep nesting, or any value at all), `Engine.compile` returns a
plan or raises BlueprintInvalid whose problems each say where and what; nothing else escapes.
A valid document, run on a real SQLite log and steered through its pauses by random commands,
ends in a final state or pauses cleanly: no exception escapes the engine, nothing is logged at
ERROR, no built-in node fails for a reason of the engine's own (codes NODE_ERROR, INTERNAL),
and what the log holds adds up (`assert_consistent`).

Nothing here reaches the network: `http` nodes point at port 1 of the loopback (refused at
once) with tiny timeouts, and the engine's client refuses any other host. `python` nodes may
only name `echo`, a harmless function registered here.

A longer hunt: `FUZZ_SCALE=20 pytest --timeout=0 tests/engine/test_fuzz_blueprints.py`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from engine import control
from engine.engine import Engine, EngineLimits
from engine.errors import BlueprintInvalid, InputInvalid, Problem
from engine.model import Blueprint, RunOptions
from engine.nodes import register_builtins
from engine.plan import Plan
from engine.registry import NodeRegistry
from engine.validation import find_problems
from tests._logs import ErrorRecords, error_records
from tests.engine.conftest import Durable, ListSink, assert_consistent, logged

pytestmark = pytest.mark.slow

MAX_NODES = 12  #: a small node limit, so documents around it stay cheap
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  #: FUZZ_SCALE=10 for a longer hunt
NOWHERE = "http://127.0.0.1:1"  #: refused at once: nothing listens on port 1

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=max(1, round(examples * SCALE)))


# --------------------------------------------------------------------------------------------
# Values

IDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
WEIRD_IDS = [
    "",
    " ",
    "a b",
    "a.b",
    "é",
    "💥",
    "x" * 128,
    "y" * 129,
    "../a",
    "nodes",
    "__proto__",
    "a\n",
    "-",
    "_",
    "A" * 5000,
]
FIELD_NAMES = [
    "id",
    "type",
    "name",
    "config",
    "dependsOn",
    "retry",
    "timeoutMs",
    "breakpoint",
    "continueOnError",
    "maxAttempts",
    "backoffMs",
    "backoffMultiplier",
    "maxBackoffMs",
    "jitter",
    "expression",
    "template",
    "then",
    "else",
    "ms",
    "url",
    "x",
    "",
]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["a", "1", "true", "{{ input }}", "{{", "}}", "\x00", "\ud7ff"])
)
keys = st.sampled_from(FIELD_NAMES + IDS) | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)
# Python values JSON cannot carry (documents come as JSON, but the engine takes any value).
odd_values = st.sampled_from([math.nan, math.inf, -math.inf, (), ("a",), 10**400])
any_values = json_values | odd_values | st.lists(odd_values, max_size=2)
# Values for inputs and metadata: shaped to meet the expressions below.
inputs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-5, 5)
    | st.sampled_from(["", "a", "b", "1"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)

GOOD_EXPRESSIONS = [
    "input",
    "metadata",
    "nodes",
    "@",
    "nodes.a.output",
    "nodes.b.status",
    "nodes.*.status",
    "length(nodes)",
    "`true`",
    "`false`",
    "`0`",
    "`null`",
    "''",
    "input.a",
    "input[0]",
    "input[*].a",
    "input[-1]",
    "input[1:3]",
    "input[::-1]",
    "input[::0]",
    "input[?a > `1`]",
    "input[?a == 'b']",
    "input | [0]",
    "input.*",
    "input == `1`",
    "input > `0`",
    "nodes.a.output > `0`",
    "to_number(input)",
    "to_string(input)",
    "to_array(input)",
    "abs(input)",
    "ceil(input)",
    "floor(input)",
    "length(input)",
    "keys(input)",
    "values(input)",
    "type(input)",
    "max(input)",
    "min(input)",
    "sum(input)",
    "avg(input)",
    "sort(input)",
    "reverse(input)",
    "join(',', input)",
    "contains(input, 'a')",
    "starts_with(input, 'a')",
    "ends_with(input, 'a')",
    "merge(input, metadata)",
    "not_null(input, `1`)",
    "map(&a, input)",
    "sort_by(input, &a)",
    "max_by(input, &a)",
    "min_by(input, &a)",
    "{x: input, y: nodes}",
    "[input, metadata]",
    "input && metadata",
    "input || `1`",
    "!input",
]
BAD_EXPRESSIONS = [
    "",
    " ",
    "[",
    "input[",
    "nodes..a",
    "length(",
    "nope(input)",
    "length(input, input)",
    "`",
    "'",
    "&",
    "input[?]",
    "a ||",
    "{{ input }}",
    "\x00",
]
# Expressions that parse but that jmespath may trip on, given the data `inputs` make.
TRICKY_EXPRESSIONS = [
    "input[::0]",
    "input[?a > `1`]",
    "max_by(input, &a)",
    "sort_by(input, &a)",
    "sort(input)",
    "max(input)",
    "nodes",
    "@",
    "{n: nodes}",
]
good_expressions = st.sampled_from(GOOD_EXPRESSIONS) | st.sampled_from(TRICKY_EXPRESSIONS)
expressions = (
    good_expressions
    | st.sampled_from(BAD_EXPRESSIONS)
    | st.text(alphabet="inputa.[]*?&@`'|(),:01 ><=!{}-", max_size=14)
)


def as_template(expression: str) -> str:
    return "{{ " + expression + " }}"


def template_strings(expressions: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        expressions.map(as_template)
        | st.tuples(st.text(max_size=3), expressions, st.text(max_size=3)).map(
            lambda t: f"{t[0]}{{{{ {t[1]} }}}}{t[2]}"
        )
        | st.sampled_from(["}}", "{{ input }}-{{ metadata }}", "{{ '}}' }}", "plain"])
    )


def templates(expressions: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars | template_strings(expressions),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=6,
    )


SCHEMA_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]


def schemas(loose: bool) -> st.SearchStrategy[Any]:
    """Schemas of the supported subset; `loose` ones hold wrong values at every keyword."""
    wrong = json_values if loose else st.nothing()
    types = st.sampled_from(SCHEMA_TYPES) | st.lists(st.sampled_from(SCHEMA_TYPES), max_size=2)
    if loose:
        types |= st.sampled_from(["date", "", "Object"]) | json_values
    leaves = st.fixed_dictionaries(
        {},
        optional={
            "type": types,
            "enum": st.lists(json_scalars, max_size=3) | wrong,
            "minimum": st.integers(-3, 3) | st.floats(-3, 3) | wrong,
            "maximum": st.integers(-3, 3) | wrong,
            "minLength": st.integers(0, 3) | (st.just(-1) if loose else st.nothing()) | wrong,
            "maxLength": st.integers(0, 3) | wrong,
            "title": st.text(max_size=4),
            "required": st.lists(st.sampled_from(["x", "y"]), max_size=2) | wrong,
            **({"format": st.just("email")} if loose else {}),
        },
    )
    return (
        st.recursive(
            leaves,
            lambda inner: st.fixed_dictionaries(
                {"type": st.sampled_from(["object", "array"])},
                optional={
                    "properties": st.dictionaries(
                        st.sampled_from(["x", "y", "z"]), inner, max_size=3
                    ),
                    "items": inner,
                    "required": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
                },
            ),
            max_leaves=5,
        )
        | wrong
    )


# Data for an input node: shaped like the schemas above, or anything.
input_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3)
    ),
    max_leaves=6,
)


# --------------------------------------------------------------------------------------------
# Documents

NODE_TYPES = ["noop", "delay", "transform", "condition", "assert", "input", "pause", "http"]
NODE_TYPES += ["python"]
UNKNOWN_TYPES = ["", "Noop", "nope", "http ", "__init__"]


def subset(draw: st.DrawFn, ids: list[str], max_size: int = 3) -> list[str]:
    if not ids:
        return []
    return draw(st.lists(st.sampled_from(ids), max_size=max_size, unique=True))


@st.composite
def configs(draw: st.DrawFn, node_type: str, dependants: list[str], loose: bool) -> Any:
    """A config the type accepts; a `loose` one may break its rules (bad expressions, bad
    schemas, unknown methods and functions)."""
    expression = expressions if loose else good_expressions
    if node_type == "delay":
        return {"ms": draw(st.integers(0, 30))}
    if node_type == "transform":
        if draw(st.booleans()):
            return {"expression": draw(expression)}
        return {"template": draw(templates(expression))}
    if node_type in ("condition", "assert"):
        config = {"expression": draw(expression)}
        if node_type == "assert":
            return {**config, "message": draw(st.text(max_size=10))}
        return {**config, "then": subset(draw, dependants), "else": subset(draw, dependants)}
    if node_type == "input":
        return {"prompt": draw(st.text(max_size=10)), "schema": draw(schemas(loose))}
    if node_type == "pause":
        return draw(st.just({}) | st.fixed_dictionaries({"message": st.text(max_size=10)}))
    if node_type == "http":
        return draw(http_configs(loose, expression))
    if node_type == "python":
        names = ["echo", "nope", ""] if loose else ["echo"]
        return {"function": draw(st.sampled_from(names))}
    return {}


METHODS = ["GET", "post", "PUT", "DELETE", "HEAD"]


@st.composite
def http_configs(draw: st.DrawFn, loose: bool, expression: st.SearchStrategy[str]) -> Any:
    """Always to port 1 of the loopback; the path, headers and body may hold templates."""
    path = draw(st.sampled_from(["/", "/x", "/{{ input }}", "/{{ input.a }}?q={{ nodes }}"]))
    config: dict[str, Any] = {"url": NOWHERE + path, "timeoutMs": draw(st.integers(1, 50))}
    methods = [*METHODS, "TRACE", ""] if loose else METHODS
    optional = {
        "method": st.sampled_from(methods),
        "headers": st.dictionaries(
            st.sampled_from(["x-a", "accept", "bad header"]),
            template_strings(expression),
            max_size=2,
        ),
        "body": templates(expression),
        "expectStatus": st.lists(st.integers(100, 599), max_size=2),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            config[name] = draw(strategy)
    return config


retries = st.fixed_dictionaries(
    {"maxBackoffMs": st.integers(0, 20)},
    optional={
        "maxAttempts": st.integers(1, 4),
        "backoffMs": st.integers(0, 5),
        "backoffMultiplier": st.sampled_from([0.0, 0.5, 1.0, 2.0, -3.0, 1e200, 1e308]),
        "jitter": st.booleans(),
    },
)


@st.composite
def dags(
    draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 6, loose: bool = False
) -> dict[str, Any]:
    """A document whose nodes form a DAG (each depends only on earlier ones), with configs
    that validate unless `loose`, and every value bounded so a run ends within a second."""
    count = draw(st.integers(min_nodes, max_nodes))
    ids = IDS[:count] if count <= len(IDS) else [f"n{i}" for i in range(count)]
    depends_on = [subset(draw, ids[:i]) for i in range(count)]
    dependants = [[ids[j] for j in range(count) if ids[i] in depends_on[j]] for i in range(count)]
    nodes = []
    for i, node_id in enumerate(ids):
        node_type = draw(st.sampled_from(NODE_TYPES))
        node: dict[str, Any] = {"id": node_id, "type": node_type}
        node["config"] = draw(configs(node_type, dependants[i], loose))
        if depends_on[i] or draw(st.booleans()):
            node["dependsOn"] = depends_on[i]
        extras = st.fixed_dictionaries(
            {},
            optional={
                "name": st.text(max_size=6),
                "retry": retries,
                "timeoutMs": st.integers(1, 40),
                "breakpoint": st.booleans(),
                "continueOnError": st.booleans(),
            },
        )
        node.update(draw(extras))
        nodes.append(node)
    document: dict[str, Any] = {"name": draw(st.text(min_size=1, max_size=8)), "nodes": nodes}
    if draw(st.booleans()):
        document["description"] = draw(st.none() | st.text(max_size=8))
    return document


def value_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document down to 8 levels, as a tuple of keys and indexes."""
    yield prefix
    if len(prefix) == 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from value_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from value_paths(item, (*prefix, index))


# Deeper than the wire lets through (64 levels), well within Python's default recursion limit:
# the wire and the blueprint files refuse deeper documents before the engine sees them.
DEEP = 200


def nested(depth: int, leaf: Any = "{{ input }}") -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


SOWN = ["replace", "replace", "delete", "add-field", "nest"]
MUTATIONS = [
    *SOWN,
    "duplicate-node",
    "self-loop",
    "cycle",
    "unknown-dependency",
    "duplicate-dependency",
    "weird-id",
    "non-string-id",
    "unknown-type",
]


@st.composite
def mutated(
    draw: st.DrawFn, document: dict[str, Any], values: st.SearchStrategy[Any] = any_values
) -> Any:
    """The document with one to three faults sown in it: a wrong value, a field gone or added,
    ids and dependencies that break the graph, deep nesting."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        nodes = document.get("nodes")
        graph = isinstance(nodes, list) and bool(nodes) and all(isinstance(n, dict) for n in nodes)
        kind = draw(st.sampled_from(MUTATIONS if graph else SOWN))
        if kind in SOWN:
            sow(draw, document, kind, values)
        else:
            break_graph(draw, nodes, kind, values)
    return document


def sow(draw: st.DrawFn, document: dict[str, Any], kind: str, values: Any) -> None:
    path = draw(st.sampled_from(list(value_paths(document))[1:] or [("name",)]))
    *parents, last = path
    holder: Any = document
    for part in parents:
        holder = holder[part]
    if kind == "replace" or last not in holder if isinstance(holder, dict) else False:
        holder[last] = draw(values | st.sampled_from(WEIRD_IDS))
    elif kind == "delete":
        del holder[last]
    elif kind == "nest":
        holder[last] = nested(draw(st.integers(1, 66) | st.just(DEEP)))
    elif isinstance(holder[last], dict):
        holder[last][draw(keys)] = draw(values)
    else:
        holder[last] = {draw(keys): draw(values)}


def break_graph(draw: st.DrawFn, nodes: list[dict[str, Any]], kind: str, values: Any) -> None:
    node = draw(st.sampled_from(nodes))

    def depends_on(target: dict[str, Any]) -> list[Any]:
        listed = target.get("dependsOn")
        return list(listed) if isinstance(listed, list) else []

    if kind == "duplicate-node":
        nodes.append(dict(node))
    elif kind == "self-loop":
        node["dependsOn"] = [*depends_on(node), node.get("id")]
    elif kind == "cycle":
        first, last = nodes[0], nodes[-1]
        first["dependsOn"] = [*depends_on(first), last.get("id")]
        last["dependsOn"] = [*depends_on(last), first.get("id")]
    elif kind == "unknown-dependency":
        unknown = draw(st.sampled_from(["zz", *WEIRD_IDS]) | values)
        node["dependsOn"] = [*depends_on(node), unknown]
    elif kind == "duplicate-dependency":
        node["dependsOn"] = (depends_on(node) or ["a"]) * 2
    elif kind == "weird-id":
        node["id"] = draw(st.sampled_from(WEIRD_IDS) | st.text(max_size=6))
    elif kind == "non-string-id":
        node["id"] = draw(values.filter(lambda v: not isinstance(v, str)))
    else:
        node["type"] = draw(st.sampled_from(UNKNOWN_TYPES))


@st.composite
def many_nodes(draw: st.DrawFn) -> dict[str, Any]:
    """A chain, a fan-in or a pile of noops, just under, at or over the node limit."""
    count = draw(st.sampled_from([0, 1, MAX_NODES - 1, MAX_NODES, MAX_NODES + 1, 3 * MAX_NODES]))
    shape = draw(st.sampled_from(["chain", "fan-in", "pile"]))
    nodes: list[dict[str, Any]] = [{"id": f"n{i}", "type": "noop"} for i in range(count)]
    for i, node in enumerate(nodes):
        if shape == "chain" and i:
            node["dependsOn"] = [f"n{i - 1}"]
        elif shape == "fan-in" and i == count - 1:
            node["dependsOn"] = [f"n{j}" for j in range(i)]
    return {"name": "many", "nodes": nodes}


@st.composite
def top_level_faults(draw: st.DrawFn) -> Any:
    document: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.text(max_size=5) | any_values,
                "description": st.text(max_size=5) | any_values,
                "nodes": st.lists(
                    st.dictionaries(st.sampled_from(FIELD_NAMES), any_values, max_size=4)
                    | any_values,
                    max_size=4,
                )
                | any_values,
            },
        )
    )
    if draw(st.booleans()):
        document[draw(keys)] = draw(any_values)
    return document


documents = (
    dags(loose=True)
    | dags(loose=True).flatmap(mutated)
    | dags().flatmap(mutated)
    | many_nodes()
    | top_level_faults()
    | any_values
)


# --------------------------------------------------------------------------------------------
# Validation


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    """The built-in node types, and one harmless `python` function."""
    registry = NodeRegistry()
    register_builtins(registry)

    @registry.function("echo")
    async def echo(context: dict[str, Any]) -> Any:
        return {"input": context["input"]}

    return registry


def one_node(node: dict[str, Any]) -> dict[str, Any]:
    return {"name": "found", "nodes": [node]}


def node_ids(document: Any) -> set[str]:
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, (list, tuple)):
        return set()
    return {n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)}


def check_problems(document: Any, problems: list[Problem]) -> None:
    """Each problem names the node (one the document has) or the document, the field (unless
    the document is not an object at all), and says what is wrong."""
    assert problems, "BlueprintInvalid without a problem"
    ids = node_ids(document)
    for problem in problems:
        assert isinstance(problem, Problem), problem
        assert isinstance(problem.message, str) and problem.message.strip(), problem
        assert isinstance(problem.field, str), problem
        assert names_a_place(problem, document), problem
        assert problem.node_id is None or problem.node_id in ids, problem
    msgspec.json.encode(problems)  # what blueprint.validate sends must encode


def names_a_place(problem: Problem, document: Any) -> bool:
    """A node or a field; the field "" only for a document that is not an object, or for a
    field whose name is "" (an unknown field called "")."""
    if problem.field or problem.node_id is not None or not isinstance(document, dict):
        return True
    return "" in document and "unknown field" in problem.message


def check_plan(document: dict[str, Any], plan: Plan, registry: NodeRegistry) -> None:
    """What validation let through is what was sent, and survives the round trip a retry
    makes (the snapshot from the log is compiled again)."""
    blueprint = plan.blueprint
    assert isinstance(blueprint, Blueprint)
    assert [n.id for n in blueprint.nodes] == [n["id"] for n in document["nodes"]]
    assert len(blueprint.nodes) <= MAX_NODES
    assert len({n.id for n in blueprint.nodes}) == len(blueprint.nodes)
    assert [p.node.id for p in plan.nodes] == [n.id for n in blueprint.nodes]
    snapshot = msgspec.json.decode(msgspec.json.encode(blueprint))
    assert find_problems(snapshot, registry, MAX_NODES)[1] == []


ASKS_BADLY = {"prompt": "?", "schema": {"type": [[]]}}  #: a TypeError out of validation, once
NAN_BACKOFF = {"backoffMultiplier": math.nan}  #: valid once, yet no log could keep it


@fuzz(400)
@given(document=documents)
@example(document=one_node({"id": "a", "type": "input", "config": ASKS_BADLY}))
@example(document=one_node({"id": "a", "type": "noop", "retry": NAN_BACKOFF}))
def test_validation_answers_a_plan_or_every_problem(registry: NodeRegistry, document: Any):
    """`compile` returns a plan or raises BlueprintInvalid (never anything else), and agrees
    with `find_problems`, which `blueprint.validate` answers with."""
    engine = Engine(registry, ListSink(), EngineLimits(max_nodes=MAX_NODES))
    try:
        plan = engine.compile(document)
    except BlueprintInvalid as exc:
        check_problems(document, exc.problems)
        assert str(exc).startswith("Invalid blueprint: ")
        assert find_problems(document, registry, MAX_NODES)[1] == exc.problems
        return
    check_plan(document, plan, registry)
    assert engine.validate(document) == plan.blueprint


@fuzz(60)
@given(document=many_nodes())
def test_the_node_limit_is_one_problem_on_nodes(registry: NodeRegistry, document: Any):
    """Past the limit the answer is one problem on `nodes` naming the limit, however many
    nodes there are; at or under it the document is valid."""
    count = len(document["nodes"])
    plan, problems = find_problems(document, registry, MAX_NODES)
    if 0 < count <= MAX_NODES:
        assert plan is not None and not problems
    elif count == 0:
        assert [(p.node_id, p.field) for p in problems] == [(None, "nodes")]
    else:
        assert [(p.node_id, p.field) for p in problems] == [(None, "nodes")]
        assert str(MAX_NODES) in problems[0].message


# --------------------------------------------------------------------------------------------
# Runs


@pytest.fixture
def engine_errors() -> Iterator[ErrorRecords]:
    with error_records("blueprint", "asyncio") as handler:
        yield handler


class GuardedTransport(httpx.AsyncBaseTransport):
    """Sends only to NOWHERE: a template that made the URL point elsewhere fails the test."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert (request.url.host, request.url.port) == ("127.0.0.1", 1), request.url
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def fuzz_engine(durable: Durable) -> Engine:
    engine = await durable.boot(max_nodes=MAX_NODES, control_wait_seconds=5)
    engine._http = httpx.AsyncClient(transport=GuardedTransport())
    return engine


options = st.fixed_dictionaries(
    {},
    optional={
        "debug": st.booleans(),
        "trace_logs": st.booleans(),
        "timeout_ms": st.none() | st.integers(1, 200),
    },
)
commands = st.lists(
    st.sampled_from(
        [
            control.Continue(),
            control.SkipBreakpoint(),
            control.ContinueWithoutBreakpoint(),
            control.Pause(),
            control.SetTraceLogs(enabled=True),
            control.SetTraceLogs(enabled=False),
        ]
    )
    | st.builds(control.ProvideInput, node_id=st.none() | st.sampled_from(IDS), data=input_data),
    max_size=4,
)
ENGINE_FAULTS = {"NODE_ERROR", "INTERNAL"}  #: what a built-in node fails with only on a bug
SETTLE_SECONDS = 10
FINAL = {"completed", "failed", "cancelled"}


def http_to_nowhere(headers: dict[str, str]) -> dict[str, Any]:
    config = {"url": NOWHERE + "/", "timeoutMs": 1, "headers": headers}
    return one_node({"id": "a", "type": "http", "config": config})


# The bugs this property found, each the smallest document that showed it.
FOUND = [
    # The output aliased the context's `nodes`, a cycle that wedged the log writer.
    (one_node({"id": "a", "type": "transform", "config": {"expression": "nodes"}}), None, {}),
    # jmespath's ValueError, out of engine.start when trace logs render the config.
    (
        one_node({"id": "a", "type": "transform", "config": {"template": "{{ input[::0] }}"}}),
        [1],
        {"trace_logs": True},
    ),
    # Headers httpx cannot send: None, and text that is not ASCII.
    (http_to_nowhere({"x-a": "{{ input }}"}), None, {}),
    (http_to_nowhere({"x-a": "{{ input }}\x80"}), None, {}),
    # 1e200 ** 2 overflowed when the third retry's wait was computed.
    (
        one_node(
            {
                "id": "a",
                "type": "delay",
                "config": {"ms": 30},
                "timeoutMs": 1,
                "retry": {"maxAttempts": 4, "backoffMultiplier": 1e200, "maxBackoffMs": 2},
            }
        ),
        None,
        {},
    ),
]


def found_examples(test: Any) -> Any:
    for document, input, start_options in reversed(FOUND):
        test = example(
            document=document, input=input, metadata={}, start_options=start_options, commands=[]
        )(test)
    return test


@fuzz(150)
@given(
    document=dags() | dags() | dags(loose=True) | dags().flatmap(lambda d: mutated(d, json_values)),
    input=inputs,
    metadata=st.dictionaries(st.sampled_from(["a", "x"]), inputs, max_size=2),
    start_options=options,
    commands=commands,
)
@found_examples
async def test_valid_blueprints_run_to_an_end_or_a_clean_pause(
    durable: Durable,
    engine_errors: ErrorRecords,
    document: Any,
    input: Any,
    metadata: dict[str, Any],
    start_options: dict[str, Any],
    commands: list[control.AnyCommand],
):
    """A valid document runs to a final state or pauses; each pause is answered with the next
    of a few random commands, then the execution is stopped if still active. What the log
    holds adds up, no built-in node fails for the engine's own reasons, and nothing is logged
    at ERROR."""
    engine = durable.engines[0] if durable.engines else await fuzz_engine(durable)
    try:
        plan = engine.compile(document)
    except BlueprintInvalid as exc:
        check_problems(document, exc.problems)
        event("invalid")
        return
    seen = len(engine_errors.records)
    execution = await engine.start(
        plan,
        blueprint_id=None,
        blueprint_version=None,
        input=input,
        metadata=metadata,
        options=RunOptions(**start_options),
    )
    execution_id = execution.id
    for command in commands:
        if await settled_status(engine, durable, execution_id) in FINAL:
            break
        try:
            await engine.control(execution_id, command)
        except InputInvalid as exc:
            assert isinstance(command, control.ProvideInput) and exc.problems
    if await settled_status(engine, durable, execution_id) not in FINAL:
        # Refused only if it ended meanwhile (its own timeout may fire at any moment).
        await engine.control(execution_id, control.Stop())
    await durable.store.writer.flush()
    seen_log = await logged(durable.store, execution_id)
    assert seen_log.status in FINAL, seen_log.statuses()
    event(f"ended {seen_log.status}")
    for step in seen_log.steps.values():
        event(f"a step {step.status}" + (f" ({step.error.code})" if step.error else ""))
    assert_consistent(seen_log)
    faults = {
        step.node_id: step.error
        for step in seen_log.steps.values()
        if step.error is not None and step.error.code in ENGINE_FAULTS
    }
    assert not faults, faults
    errors = engine_errors.records[seen:]
    assert not errors, [(r.getMessage(), r.exc_info) for r in errors]


async def settled_status(engine: Engine, durable: Durable, execution_id: str) -> str:
    """The status once the execution has ended or paused (it must, within a few seconds)."""
    await engine.wait_settled(execution_id, SETTLE_SECONDS)
    await durable.store.writer.flush()
    status = (await logged(durable.store, execution_id)).status
    assert status in FINAL or status == "paused", f"{execution_id} still {status}"
    return status
