"""Node types by name: each declares its config schema and its handler. Plugins add more."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from engine.records import PauseReason

if TYPE_CHECKING:
    from engine.context import NodeContext

Handler = Callable[["NodeContext", Any], Any]  #: async, or a plain def for inline types
PythonFunction = Callable[[dict[str, Any]], Any]


class NoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


@dataclass(frozen=True, slots=True)
class NodeType:
    name: str
    description: str
    config_type: type[Any]
    handler: Handler | None  #: None for types the scheduler handles itself (they pause)
    waits: PauseReason | None = None
    #: Problems a config schema cannot express, as (field within config, message).
    check: Callable[[Any], list[tuple[str, str]]] | None = None
    #: The handler returns plain JSON data already (built-ins do), so it is not converted.
    plain_output: bool = False
    #: A plain function that returns at once: run on the event loop, with no task of its own.
    inline: bool = False

    def parse_config(self, raw: dict[str, Any]) -> Any:
        """The config as its Struct; raises msgspec.ValidationError naming the field."""
        return msgspec.convert(raw, self.config_type)

    def config_schema(self) -> dict[str, Any]:
        return msgspec.json.schema(self.config_type)


class NodeRegistry:
    """The node types and `python` functions this server knows; one per engine."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}
        self._functions: dict[str, PythonFunction] = {}

    def add(self, node_type: NodeType) -> None:
        if node_type.name in self._types:
            raise ValueError(f"node type {node_type.name!r} is already registered")
        self._types[node_type.name] = node_type

    def node_type(
        self,
        name: str,
        *,
        config: type[Any] = NoConfig,
        description: str = "",
        check: Callable[[Any], list[tuple[str, str]]] | None = None,
        plain_output: bool = False,
        inline: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator: register `async def handler(ctx, config) -> output` as node type `name`.

        `inline=True` takes a plain `def` instead, run on the event loop without a task: only
        for work that never blocks or waits (built-ins like transform use it)."""

        def register(handler: Handler) -> Handler:
            if inspect.iscoroutinefunction(handler) == inline:
                kind = "a plain def (inline=True)" if inline else "an async def"
                raise TypeError(f"node type {name!r}: the handler must be {kind}")
            summary = (handler.__doc__ or "").strip().split("\n", 1)[0]
            self.add(
                NodeType(
                    name,
                    description or summary,
                    config,
                    handler,
                    check=check,
                    plain_output=plain_output,
                    inline=inline,
                )
            )
            return handler

        return register

    def function(self, name: str) -> Callable[[PythonFunction], PythonFunction]:
        """Decorator: make `fn(context) -> value` callable from `python` nodes as `name`."""

        def register(fn: PythonFunction) -> PythonFunction:
            if name in self._functions:
                raise ValueError(f"python function {name!r} is already registered")
            self._functions[name] = fn
            return fn

        return register

    def get(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def types(self) -> list[NodeType]:
        return sorted(self._types.values(), key=lambda t: t.name)

    def python_function(self, name: str) -> PythonFunction | None:
        return self._functions.get(name)

    def function_names(self) -> list[str]:
        return sorted(self._functions)

    def load_plugin(self, module_name: str) -> None:
        """Import `module_name` and call its `register(registry)`."""
        module = importlib.import_module(module_name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise ValueError(f"plugin {module_name!r} has no register(registry) function")
        register(self)
