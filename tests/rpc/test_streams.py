import asyncio
from collections.abc import AsyncIterator

from rpc.codec import Transformer
from rpc.router import Tracked
from rpc.streams import sse_body, sse_event


async def test_pings_fill_silences_without_losing_the_pending_event():
    async def slow() -> AsyncIterator[Tracked]:
        await asyncio.sleep(0.3)
        yield Tracked("1", {"n": 1})

    chunks = [
        chunk async for chunk in sse_body(slow, lambda exc: b"{}", Transformer.SUPERJSON, 0.05)
    ]
    assert chunks[0] == sse_event(b"{}", event="connected")
    assert sse_event(event="ping") in chunks
    assert sse_event(b'{"json":{"n":1}}', event_id="1") in chunks
    assert chunks[-1] == sse_event(event="return")


async def test_closing_the_stream_closes_the_subscription():
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(10)
                yield 1
        finally:
            closed.set()

    stream = sse_body(endless, lambda exc: b"{}", Transformer.NONE, 0.01)
    assert await anext(stream) == sse_event(b"{}", event="connected")
    assert await anext(stream) == sse_event(event="ping")
    await stream.aclose()
    assert closed.is_set()


async def test_an_id_that_cannot_travel_in_sse_is_an_error_event():
    async def bad() -> AsyncIterator[Tracked]:
        yield Tracked("a\nb", 1)

    chunks = [chunk async for chunk in sse_body(bad, lambda exc: b'"err"', Transformer.NONE, 1)]
    assert chunks[-1] == sse_event(b'"err"', event="serialized-error")
