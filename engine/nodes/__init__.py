"""The built-in node types."""

from engine.nodes import basic, http, python
from engine.registry import NodeRegistry


def register_builtins(registry: NodeRegistry) -> None:
    basic.register(registry)
    http.register(registry)
    python.register(registry)


__all__ = ["register_builtins"]
