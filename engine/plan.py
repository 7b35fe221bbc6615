"""A validated blueprint compiled for running: nodes by position, edges as index lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from engine.model import Blueprint, Node
from engine.registry import NodeRegistry, NodeType


class PlannedNode(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    node: Node
    node_type: NodeType
    config: Any  #: the parsed config Struct
    dependencies: tuple[int, ...]
    dependants: tuple[int, ...]
    #: For a condition: the dependants run only when the expression is true / false.
    then_branch: frozenset[int] = frozenset()
    else_branch: frozenset[int] = frozenset()

    @property
    def is_leaf(self) -> bool:
        return not self.dependants


class Plan(msgspec.Struct, frozen=True):
    blueprint: Blueprint
    nodes: tuple[PlannedNode, ...]
    index_of: dict[str, int]

    @classmethod
    def build(
        cls, blueprint: Blueprint, registry: NodeRegistry, configs: Mapping[str, Any] | None = None
    ) -> Plan:
        """Assumes `blueprint` passed validation against `registry`; `configs` are the parsed
        configs by node id, when validation has them already."""
        index_of = {node.id: i for i, node in enumerate(blueprint.nodes)}
        dependants: list[list[int]] = [[] for _ in blueprint.nodes]
        for i, node in enumerate(blueprint.nodes):
            for dep in node.depends_on:
                dependants[index_of[dep]].append(i)
        planned = []
        for i, node in enumerate(blueprint.nodes):
            node_type = registry.get(node.type)
            if node_type is None:
                raise ValueError(f"node type {node.type!r} is not registered")
            config = configs[node.id] if configs else node_type.parse_config(node.config)
            branches = _branches(node, index_of)
            planned.append(
                PlannedNode(
                    index=i,
                    node=node,
                    node_type=node_type,
                    config=config,
                    dependencies=tuple(index_of[dep] for dep in node.depends_on),
                    dependants=tuple(dependants[i]),
                    then_branch=branches[0],
                    else_branch=branches[1],
                )
            )
        return cls(blueprint, tuple(planned), index_of)


def _branches(node: Node, index_of: dict[str, int]) -> tuple[frozenset[int], frozenset[int]]:
    if node.type != "condition":
        return frozenset(), frozenset()
    then = frozenset(index_of[target] for target in node.config.get("then", ()))
    otherwise = frozenset(index_of[target] for target in node.config.get("else", ()))
    return then, otherwise
