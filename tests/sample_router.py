"""A small router for wire-protocol tests, independent of the blueprint procedures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from rpc.errors import ErrorCode, RPCError
from rpc.router import Scope, Tracked, mutation, query, subscription


class GreetInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    at: datetime | None = None


class Greeting(msgspec.Struct, kw_only=True):
    greeting: str
    at: str | None


class AddInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    a: int
    b: int


class EchoInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str = "default"
    tags: list[str] = []
    extra: dict[str, Any] | None = None


class SleepInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ms: int


class TicksInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    count: int = 3
    lastEventId: str | None = None
    failAfter: int | None = None


class Tick(msgspec.Struct, kw_only=True):
    n: int


async def greet(ctx: Any, input: GreetInput) -> Greeting:
    """Says hello; echoes a Date input back as an ISO string."""
    at = None if input.at is None else input.at.isoformat()
    return Greeting(greeting=f"hi {input.name}", at=at)


async def add(ctx: Any, input: AddInput) -> int:
    return input.a + input.b


async def echo(ctx: Any, input: EchoInput) -> EchoInput:
    return input


async def noinput(ctx: Any, input: None) -> str:
    return "ok"


async def forbidden(ctx: Any, input: None) -> None:
    raise RPCError(ErrorCode.FORBIDDEN, "nope")


async def conflict(ctx: Any, input: None) -> None:
    raise RPCError(ErrorCode.CONFLICT, "already done")


async def boom(ctx: Any, input: None) -> None:
    raise RuntimeError("kaboom: internal detail")


async def sleep(ctx: Any, input: SleepInput) -> int:
    await asyncio.sleep(input.ms / 1000)
    return input.ms


async def ticks(ctx: Any, input: TicksInput) -> AsyncIterator[Tracked | Tick]:
    """Tracked ticks 1..count, resuming after lastEventId."""
    start = int(input.lastEventId) + 1 if input.lastEventId else 1
    for n in range(start, input.count + 1):
        if input.failAfter is not None and n > input.failAfter:
            raise RPCError(ErrorCode.CONFLICT, f"ticks failed after {input.failAfter}")
        await asyncio.sleep(0)
        yield Tracked(str(n), Tick(n=n))


async def forever(ctx: Any, input: None) -> AsyncIterator[Tick]:
    """Untracked ticks until the client leaves."""
    n = 0
    while True:
        n += 1
        yield Tick(n=n)
        await asyncio.sleep(0.05)


router = {
    "greet": query(greet, Scope.ANY_KEY),
    "echo": query(echo, Scope.ANY_KEY),
    "noinput": query(noinput, Scope.ANY_KEY),
    "forbidden": query(forbidden, Scope.ANY_KEY),
    "conflict": mutation(conflict, Scope.ANY_KEY),
    "boom": query(boom, Scope.ANY_KEY),
    "sleep": query(sleep, Scope.ANY_KEY),
    "math": {"add": mutation(add, Scope.ANY_KEY)},
    "nested": {"deep": {"noinput": query(noinput, Scope.ANY_KEY)}},
    "ticks": subscription(ticks, Scope.ANY_KEY),
    "forever": subscription(forever, Scope.ANY_KEY),
}
