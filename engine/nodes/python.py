"""python: call a function the operator registered; blueprints can name it, never define it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import msgspec

from engine.context import NodeContext
from engine.errors import NodeError
from engine.registry import NodeRegistry

_copy = msgspec.json.Encoder()


class PythonConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    function: str


def register(registry: NodeRegistry) -> None:
    async def python(ctx: NodeContext, config: PythonConfig) -> Any:
        """Calls a registered function with a copy of the execution context."""
        function = registry.python_function(config.function)
        if function is None:
            raise NodeError(
                "UNKNOWN_FUNCTION", f"no python function {config.function!r}", retryable=False
            )
        # A copy, so a function cannot change what later nodes see.
        context = msgspec.json.decode(_copy.encode(ctx.context))
        if inspect.iscoroutinefunction(function):
            return await function(context)
        return await asyncio.to_thread(function, context)

    def check(config: PythonConfig) -> list[tuple[str, str]]:
        if registry.python_function(config.function) is None:
            known = ", ".join(registry.function_names()) or "none are registered"
            return [("function", f"unknown python function {config.function!r} (known: {known})")]
        return []

    registry.node_type("python", config=PythonConfig, check=check)(python)
