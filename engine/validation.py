"""Check a blueprint document and list every problem found, not just the first."""

from __future__ import annotations

import graphlib
import re
from collections import Counter
from typing import Any

import msgspec

from engine.errors import BlueprintInvalid, Problem
from engine.model import Blueprint, Node
from engine.registry import NodeRegistry

DEFAULT_MAX_NODES = 10_000
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TOP_LEVEL = {"name", "description", "nodes"}


def validate_blueprint(
    document: Any, registry: NodeRegistry, max_nodes: int = DEFAULT_MAX_NODES
) -> Blueprint:
    """The blueprint, or BlueprintInvalid listing every problem."""
    blueprint, problems = find_problems(document, registry, max_nodes)
    if problems or blueprint is None:
        raise BlueprintInvalid(problems)
    return blueprint


def find_problems(
    document: Any, registry: NodeRegistry, max_nodes: int = DEFAULT_MAX_NODES
) -> tuple[Blueprint | None, list[Problem]]:
    problems = _document_problems(document, max_nodes)
    if problems:
        return None, problems
    nodes: list[Node] = []
    for index, raw in enumerate(document["nodes"]):
        node, problem = _parse_node(index, raw)
        if problem is not None:
            problems.append(problem)
        else:
            nodes.append(node)  # type: ignore[arg-type]
    problems += _id_problems(nodes)
    problems += _type_and_config_problems(nodes, registry)
    problems += _graph_problems(nodes)
    if problems:
        return None, problems
    return Blueprint(
        name=document["name"], description=document.get("description"), nodes=tuple(nodes)
    ), []


def _document_problems(document: Any, max_nodes: int) -> list[Problem]:
    if not isinstance(document, dict):
        return [_problem(None, "", "a blueprint must be a JSON object")]
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
    elif len(nodes) > max_nodes:
        problems.append(_problem(None, "nodes", f"{len(nodes)} nodes; the limit is {max_nodes}"))
    return problems


def _parse_node(index: int, raw: Any) -> tuple[Node | None, Problem | None]:
    if not isinstance(raw, dict):
        return None, _problem(None, f"nodes[{index}]", "a node must be an object")
    raw_id = raw.get("id")
    node_id = raw_id if isinstance(raw_id, str) else None
    try:
        node = msgspec.convert(raw, Node)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        where = field if node_id else f"nodes[{index}]{'.' + field if field else ''}"
        return None, _problem(node_id, where, message)
    if not _NODE_ID.match(node.id):
        message = "ids are 1-128 letters, digits, '-' or '_'"
        return None, _problem(node.id, "id", message)
    if node.timeout_ms is not None and node.timeout_ms <= 0:
        return None, _problem(node.id, "timeoutMs", "must be a positive number of milliseconds")
    if node.retry.max_attempts < 1 or node.retry.backoff_ms < 0 or node.retry.max_backoff_ms < 0:
        return None, _problem(node.id, "retry", "maxAttempts >= 1 and backoffs >= 0 are required")
    return node, None


def _id_problems(nodes: list[Node]) -> list[Problem]:
    counts = Counter(node.id for node in nodes)
    return [_problem(node_id, "id", "duplicate id") for node_id, n in counts.items() if n > 1]


def _type_and_config_problems(nodes: list[Node], registry: NodeRegistry) -> list[Problem]:
    problems: list[Problem] = []
    for node in nodes:
        node_type = registry.get(node.type)
        if node_type is None:
            known = ", ".join(t.name for t in registry.types())
            problems.append(_problem(node.id, "type", f"unknown node type {node.type!r} ({known})"))
            continue
        try:
            config = node_type.parse_config(node.config)
        except msgspec.ValidationError as exc:
            field, message = split_validation_error(exc)
            problems.append(_problem(node.id, f"config{'.' + field if field else ''}", message))
            continue
        for message in node_type.check(config) if node_type.check else ():
            problems.append(_problem(node.id, "config", message))
    return problems


def _graph_problems(nodes: list[Node]) -> list[Problem]:
    ids = {node.id for node in nodes}
    problems: list[Problem] = []
    for node in nodes:
        for dep in node.depends_on:
            if dep not in ids:
                problems.append(_problem(node.id, "dependsOn", f"unknown node {dep!r}"))
        if len(set(node.depends_on)) != len(node.depends_on):
            problems.append(_problem(node.id, "dependsOn", "lists a node twice"))
    if problems:
        return problems
    sorter = graphlib.TopologicalSorter({node.id: node.depends_on for node in nodes})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        return [_problem(cycle[0], "dependsOn", f"cycle: {' -> '.join(cycle)}")]
    return _branch_problems(nodes)


def _branch_problems(nodes: list[Node]) -> list[Problem]:
    dependants: dict[str, set[str]] = {node.id: set() for node in nodes}
    for node in nodes:
        for dep in node.depends_on:
            dependants[dep].add(node.id)
    problems = []
    for node in nodes:
        if node.type != "condition":
            continue
        for branch in ("then", "else"):
            for target in node.config.get(branch, ()):
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
