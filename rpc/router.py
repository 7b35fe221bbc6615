"""Procedures as data, composed into namespaced routers and flattened to dotted paths.

A handler is `async def name(ctx, input: In) -> Out` (a subscription: an async generator of
`Out` or `Tracked`). Its input and output types are read from its annotations, so the handler
is the single source of its schema.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Union

import msgspec

from rpc.codec import InputCodec
from rpc.errors import ErrorCode, RPCError


class Kind(StrEnum):
    QUERY = "query"  #: read-only, GET
    MUTATION = "mutation"  #: changes state, POST
    SUBSCRIPTION = "subscription"  #: a stream of events over server-sent events, GET


class Scope(StrEnum):
    """What an API key must hold to call a procedure; ANY_KEY: any valid key."""

    ANY_KEY = "any"
    BLUEPRINTS_READ = "blueprints:read"
    BLUEPRINTS_WRITE = "blueprints:write"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_WRITE = "executions:write"
    ADMIN = "admin"


class Tracked(msgspec.Struct, frozen=True):
    """A subscription event with an id, sent as the SSE `id:` so a client can resume after it."""

    id: str
    data: Any


@dataclass(frozen=True, slots=True)
class Procedure:
    kind: Kind
    handler: Callable[..., Any]
    scope: Scope
    input_type: Any
    output_type: Any
    description: str
    codec: InputCodec = field(repr=False, compare=False)
    #: An answer from memory, or None to run the handler: lets a transport skip a task.
    peek: Callable[[Any, Any], Any] | None = None


def procedure(
    kind: Kind,
    handler: Callable[..., Any],
    scope: Scope,
    peek: Callable[[Any, Any], Any] | None = None,
) -> Procedure:
    """A Procedure whose types come from the handler's annotations."""
    hints = typing.get_type_hints(handler)
    params = list(inspect.signature(handler).parameters)
    if len(params) != 2:
        raise TypeError(f"{handler.__qualname__} must take (ctx, input)")
    input_type = hints.get(params[1])
    output_type = hints.get("return", Any)
    if input_type is type(None):
        input_type = None
    if kind is Kind.SUBSCRIPTION:
        output_type = _yielded_type(output_type)
    return Procedure(
        kind=kind,
        handler=handler,
        scope=scope,
        input_type=input_type,
        output_type=output_type,
        description=inspect.getdoc(handler) or "",
        codec=InputCodec(input_type),
        peek=peek,
    )


def query(
    handler: Callable[..., Any], scope: Scope, peek: Callable[[Any, Any], Any] | None = None
) -> Procedure:
    return procedure(Kind.QUERY, handler, scope, peek)


def mutation(handler: Callable[..., Any], scope: Scope) -> Procedure:
    return procedure(Kind.MUTATION, handler, scope)


def subscription(handler: Callable[..., Any], scope: Scope) -> Procedure:
    return procedure(Kind.SUBSCRIPTION, handler, scope)


def _yielded_type(annotation: Any) -> Any:
    """`AsyncIterator[Tracked | Event]` -> `Event`: what the data lines carry."""
    args = typing.get_args(annotation)
    if not args:
        return Any
    members = [m for m in typing.get_args(args[0]) or (args[0],) if m is not Tracked]
    if not members:
        return Any
    return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007


RouterTree = Mapping[str, "Procedure | RouterTree"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def merge(*routers: RouterTree) -> dict[str, Procedure | RouterTree]:
    """One namespace from several modules; a name two of them claim fails at startup."""
    merged: dict[str, Procedure | RouterTree] = {}
    for router in routers:
        for name, node in router.items():
            if name in merged:
                raise ValueError(f"Duplicate key: {name}")
            merged[name] = node
    return merged


def flatten(tree: RouterTree, prefix: str = "") -> dict[str, Procedure]:
    """Dotted paths to procedures. Names may not hold dots, so paths cannot collide; a malformed
    name fails at startup."""
    flat: dict[str, Procedure] = {}
    for name, node in tree.items():
        if not _NAME.match(name):
            raise ValueError(f"Invalid procedure name {name!r} under {prefix or 'the root'}")
        path = f"{prefix}{name}"
        if isinstance(node, Mapping):
            flat.update(flatten(node, f"{path}."))
        else:
            flat[path] = node
    return flat


class Caller:
    """Calls procedures by path with Python values, without HTTP (tRPC's createCaller)."""

    def __init__(self, procedures: Mapping[str, Procedure], ctx: Any) -> None:
        self._procedures = procedures
        self._ctx = ctx

    async def __call__(self, path: str, input: Any = None) -> Any:
        proc = self._lookup(path)
        if proc.kind is Kind.SUBSCRIPTION:
            raise RPCError(ErrorCode.BAD_REQUEST, f"{path} is a subscription: use subscribe()")
        return await proc.handler(self._ctx, self._input(proc, input))

    def subscribe(self, path: str, input: Any = None) -> AsyncIterator[Any]:
        proc = self._lookup(path)
        return proc.handler(self._ctx, self._input(proc, input))  # type: ignore[no-any-return]

    def _lookup(self, path: str) -> Procedure:
        proc = self._procedures.get(path)
        if proc is None:
            raise RPCError(ErrorCode.NOT_FOUND, f'No procedure found on path "{path}"')
        return proc

    @staticmethod
    def _input(proc: Procedure, value: Any) -> Any:
        if value is None:
            return proc.codec.absent()
        return proc.codec.from_python(msgspec.to_builtins(value))
