"""Streamed response bodies: server-sent events for subscriptions, JSON Lines for stream batches.

Both are async generators of bytes that the endpoint writes as they come. Framing follows
tRPC v11 (`connected`, data with `id:`, `ping`, `return`, `serialized-error`; a JSONL head of
one promise per call, then one line per call as it settles).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from rpc.codec import Transformer, encode_raw, encode_value
from rpc.router import Tracked

SSE_HEADERS = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
    ("vary", "trpc-accept, accept"),
]
JSONL_HEADERS = [("content-type", "application/json"), ("vary", "trpc-accept, accept")]

_PING = object()


def sse_event(data: bytes = b"", *, event: str | None = None, event_id: str | None = None) -> bytes:
    parts = []
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    parts.append(b"data: " + data + b"\n")
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    return b"".join(parts) + b"\n\n"


async def sse_body(
    open_events: Callable[[], AsyncIterator[Any]],
    encode_error: Callable[[BaseException], bytes],
    transformer: Transformer,
    ping_seconds: float,
) -> AsyncIterator[bytes]:
    """`connected`, the events with pings between, then `return` or `serialized-error`."""
    yield sse_event(b"{}", event="connected")
    events: AsyncIterator[Any] | None = None
    pinged: AsyncIterator[Any] | None = None
    try:
        events = open_events()
        pinged = _with_pings(events, ping_seconds)
        async for item in pinged:
            if item is _PING:
                yield sse_event(event="ping")
            elif isinstance(item, Tracked):
                yield sse_event(encode_value(item.data, transformer), event_id=_clean_id(item.id))
            else:
                yield sse_event(encode_value(item, transformer))
    except Exception as exc:
        yield sse_event(encode_error(exc), event="serialized-error")
        return
    finally:
        # Closed explicitly, inner first: `async for` leaves an abandoned generator open.
        for opened in (pinged, events):
            if opened is not None and hasattr(opened, "aclose"):
                await opened.aclose()
    yield sse_event(event="return")


def _clean_id(event_id: str) -> str:
    if not event_id or any(c in event_id for c in "\r\n\0"):
        raise ValueError(f"tracked event id {event_id!r} cannot travel in an SSE id field")
    return event_id


async def _with_pings(events: AsyncIterator[Any], ping_seconds: float) -> AsyncIterator[Any]:
    """The events, with _PING whenever none came for ping_seconds; never cancels a pending one."""
    iterator = aiter(events)
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=ping_seconds)
            if not done:
                yield _PING
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


CallRunner = Callable[[int], Awaitable[bytes]]


async def jsonl_body(
    count: int, run_call: CallRunner, transformer: Transformer
) -> AsyncIterator[bytes]:
    """A head with one promise per call, then each call's envelope as soon as it settles."""
    head = encode_raw({str(i): [[0], [None, 0, i]] for i in range(count)})
    yield _jsonl_line(head, transformer)
    tasks = [asyncio.ensure_future(_indexed(i, run_call)) for i in range(count)]
    try:
        for finished in asyncio.as_completed(tasks):
            index, envelope = await finished
            chunk = b"[" + str(index).encode() + b",0,[[" + envelope + b"]]]"
            yield _jsonl_line(chunk, transformer)
    finally:
        _cancel_all(tasks)


async def _indexed(index: int, run_call: CallRunner) -> tuple[int, bytes]:
    return index, await run_call(index)


def _jsonl_line(value: bytes, transformer: Transformer) -> bytes:
    if transformer is Transformer.SUPERJSON:
        return b'{"json":' + value + b"}\n"
    return value + b"\n"


def _cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
