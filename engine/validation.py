"""Check a blueprint document, list every problem found, and compile what passes into a Plan.

Each check runs on whatever the others left standing, so one fault never hides another: a
missing name does not stop the node checks, a malformed node still counts as a known id for
its dependants, and an unknown dependency does not stop the search for cycles.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from engine.errors import BlueprintInvalid, Problem
from engine.model import Blueprint, Node
from engine.nodes.basic import ConditionConfig
from engine.plan import Plan
from engine.registry import NodeRegistry

DEFAULT_MAX_NODES = 10_000
MAX_CYCLES_REPORTED = 20
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TOP_LEVEL = {"name", "description", "nodes"}


def compile_blueprint(
    document: Any, registry: NodeRegistry, max_nodes: int = DEFAULT_MAX_NODES
) -> Plan:
    """The runnable plan, or BlueprintInvalid listing every problem."""
    plan, problems = find_problems(document, registry, max_nodes)
    if problems or plan is None:
        raise BlueprintInvalid(problems)
    return plan


def find_problems(
    document: Any, registry: NodeRegistry, max_nodes: int = DEFAULT_MAX_NODES
) -> tuple[Plan | None, list[Problem]]:
    problems, raw_nodes = _document_problems(document, max_nodes)
    if raw_nodes is None:
        return None, problems
    nodes: list[Node] = []
    known_ids: set[str] = set()
    for index, raw in enumerate(raw_nodes):
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            known_ids.add(raw["id"])
        node, node_problems = _parse_node(index, raw)
        problems += node_problems
        if node is not None:
            nodes.append(node)
    problems += _id_problems(nodes)
    configs, config_problems = _configs(nodes, registry)
    problems += config_problems
    problems += _dependency_problems(nodes, known_ids)
    problems += _cycle_problems(nodes)
    problems += _branch_problems(nodes, configs)
    if problems:
        return None, problems
    blueprint = Blueprint(
        name=document["name"], description=document.get("description"), nodes=tuple(nodes)
    )
    return Plan.build(blueprint, registry, configs), []


def _document_problems(
    document: Any, max_nodes: int
) -> tuple[list[Problem], list[Any] | tuple[Any, ...] | None]:
    """The document's own problems, and the nodes to check one by one: None when there are
    none, or too many to look at."""
    if not isinstance(document, dict):
        return [_problem(None, "", "a blueprint must be a JSON object")], None
    problems = [
        _problem(None, key, "unknown field (expected name, description, nodes)")
        for key in document
        if key not in _TOP_LEVEL
    ]
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(_problem(None, "name", "a non-empty string is required"))
    if document.get("description") is not None and not isinstance(document["description"], str):
        problems.append(_problem(None, "description", "must be a string"))
    nodes = document.get("nodes")
    if not isinstance(nodes, (list, tuple)) or not nodes:
        problems.append(_problem(None, "nodes", "a non-empty array of nodes is required"))
        return problems, None
    if len(nodes) > max_nodes:
        problems.append(_problem(None, "nodes", f"{len(nodes)} nodes; the limit is {max_nodes}"))
        return problems, None
    return problems, nodes


def _parse_node(index: int, raw: Any) -> tuple[Node | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [_problem(None, f"nodes[{index}]", "a node must be an object")]
    raw_id = raw.get("id")
    node_id = raw_id if isinstance(raw_id, str) else None
    try:
        node = msgspec.convert(raw, Node)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        where = field if node_id else f"nodes[{index}]{'.' + field if field else ''}"
        return None, [_problem(node_id, where, message)]
    problems = []
    if not _NODE_ID.fullmatch(node.id):
        problems.append(_problem(node.id, "id", "ids are 1-128 letters, digits, '-' or '_'"))
    if node.timeout_ms is not None and node.timeout_ms <= 0:
        problems.append(_problem(node.id, "timeoutMs", "must be a positive number of milliseconds"))
    retry = node.retry
    if retry.max_attempts < 1 or retry.backoff_ms < 0 or retry.max_backoff_ms < 0:
        message = "maxAttempts >= 1 and backoffs >= 0 are required"
        problems.append(_problem(node.id, "retry", message))
    if not math.isfinite(retry.backoff_multiplier):  # JSON has no NaN: the log could not keep it
        message = "must be a finite number"
        problems.append(_problem(node.id, "retry.backoffMultiplier", message))
    return (None if problems else node), problems


def _id_problems(nodes: list[Node]) -> list[Problem]:
    counts = Counter(node.id for node in nodes)
    return [_problem(node_id, "id", "duplicate id") for node_id, n in counts.items() if n > 1]


def _configs(nodes: list[Node], registry: NodeRegistry) -> tuple[dict[str, Any], list[Problem]]:
    """Each node's config parsed by its type, and the problems of those that do not parse."""
    configs: dict[str, Any] = {}
    problems: list[Problem] = []
    known_types = ", ".join(t.name for t in registry.types())
    for node in nodes:
        node_type = registry.get(node.type)
        if node_type is None:
            message = f"unknown node type {node.type!r} ({known_types})"
            problems.append(_problem(node.id, "type", message))
            continue
        try:
            config = node_type.parse_config(node.config)
        except msgspec.ValidationError as exc:
            field, message = split_validation_error(exc)
            problems.append(_problem(node.id, f"config{'.' + field if field else ''}", message))
            continue
        checked = node_type.check(config) if node_type.check else []
        problems += [_problem(node.id, f"config.{field}", message) for field, message in checked]
        configs[node.id] = config
    return configs, problems


def _dependency_problems(nodes: list[Node], known_ids: set[str]) -> list[Problem]:
    problems = []
    for node in nodes:
        for dep in node.depends_on:
            if dep not in known_ids:
                problems.append(_problem(node.id, "dependsOn", f"unknown node {dep!r}"))
        if len(set(node.depends_on)) != len(node.depends_on):
            problems.append(_problem(node.id, "dependsOn", "lists a node twice"))
    return problems


def _cycle_problems(nodes: list[Node]) -> list[Problem]:
    """Every cycle among the nodes that parsed (up to a cap), each named by its nodes."""
    ids = {node.id for node in nodes}
    graph = {node.id: [dep for dep in node.depends_on if dep in ids] for node in nodes}
    problems: list[Problem] = []
    for component in _strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        cycle = _cycle_within(graph, set(component))
        if len(problems) == MAX_CYCLES_REPORTED:
            problems.append(_problem(None, "nodes", "more cycles than are listed here"))
            break
        problems.append(_problem(cycle[0], "dependsOn", f"cycle: {' -> '.join(cycle)}"))
    return problems


def _strongly_connected(graph: dict[str, list[str]]) -> Iterable[list[str]]:
    """Tarjan's algorithm without recursion, so deep graphs cannot exhaust the stack."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in graph:
        if root in index_of:
            continue
        work = [(root, iter(graph[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index_of:
                    index_of[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index_of[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield component


def _cycle_within(graph: dict[str, list[str]], component: set[str]) -> list[str]:
    """A cycle through a strongly connected component: walk dependencies until one repeats."""
    walk: list[str] = []
    seen: dict[str, int] = {}
    node = min(component)
    while node not in seen:
        seen[node] = len(walk)
        walk.append(node)
        node = next(dep for dep in graph[node] if dep in component)
    return [*walk[seen[node] :], node]


def _branch_problems(nodes: list[Node], configs: dict[str, Any]) -> list[Problem]:
    dependants: dict[str, set[str]] = {node.id: set() for node in nodes}
    for node in nodes:
        for dep in node.depends_on:
            dependants.setdefault(dep, set()).add(node.id)
    problems = []
    for node in nodes:
        config = configs.get(node.id)
        if not isinstance(config, ConditionConfig):
            continue
        for branch, targets in (("then", config.then), ("else", config.else_)):
            for target in targets:
                if target not in dependants[node.id]:
                    message = f"{target!r} is not a direct dependant of this condition"
                    problems.append(_problem(node.id, f"config.{branch}", message))
    return problems


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `(?P<field>[^`]+)`")


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """`Expected int, got str - at $.retry.maxAttempts` -> ("retry.maxAttempts", "Expected ...")."""
    match = _AT.match(str(exc))
    assert match is not None
    message, path = match.group("message"), (match.group("path") or "").lstrip(".")
    named = _NAMED_FIELD.search(message)
    if named:
        path = f"{path}.{named.group('field')}" if path else named.group("field")
    return path.replace(".[", "["), message


def _problem(node_id: str | None, field: str, message: str) -> Problem:
    return Problem(node_id=node_id, field=field, message=message)
