"""The one ASGI endpoint: read the request, hand it to the resolver, write its response."""

from __future__ import annotations

import asyncio
from typing import Any

from rpc._http_protocol import URL_TOO_LONG
from rpc.errors import ErrorCode, RPCError, body_too_large
from rpc.resolver import HTTPRequest, HTTPResponse, Resolver

Scope = dict[str, Any]
Receive = Any
Send = Any


class _ClientGone(Exception):
    pass


class TRPCEndpoint:
    """A raw ASGI app (no Request object on the hot path); resolver from lifespan state."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolver: Resolver = scope["state"]["resolver"]
        try:
            response = await self._respond(resolver, scope, receive)
        except _ClientGone:
            return
        if response.stream is None:
            # A 204 carries no body and, by RFC 9110, no Content-Length either.
            length = (
                () if response.status == 204 else ((b"content-length", b"%d" % len(response.body)),)
            )
            await _send_head(send, response, *length)
            await send({"type": "http.response.body", "body": response.body})
        else:
            await _send_head(send, response)
            await _send_stream(response, receive, send)

    async def _respond(self, resolver: Resolver, scope: Scope, receive: Receive) -> HTTPResponse:
        if scope.get("extensions", {}).get(URL_TOO_LONG):
            return resolver.reject(
                RPCError(
                    ErrorCode.PAYLOAD_TOO_LARGE, "Request URL too long: send the input by POST"
                )
            )
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        body = b""
        if scope["method"] == "POST":
            read = await _read_body(receive, self._max_body_bytes, headers.get("content-length"))
            if read is None:
                return resolver.reject(body_too_large(self._max_body_bytes))
            body = read
        client = scope.get("client")
        request = HTTPRequest(
            method=scope["method"],
            path=scope["path_params"]["path"],
            query=scope.get("query_string", b""),
            headers=headers,
            body=body,
            client=client[0] if client else None,
        )
        return await resolver.resolve(request)


async def _read_body(receive: Receive, limit: int, content_length: str | None) -> bytes | None:
    """The body, or None when it is over the limit (stated or actual)."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_head(send: Send, response: HTTPResponse, *extra: tuple[bytes, bytes]) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})


async def _send_stream(response: HTTPResponse, receive: Receive, send: Send) -> None:
    """Write the stream until it ends or the client leaves; either way the stream is closed."""
    stream = response.stream
    assert stream is not None

    async def pump() -> None:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(client_left())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]
    # A failure inside the stream (not a cancellation) is a bug: let the server log it.
    if isinstance(outcomes[0], Exception):
        raise outcomes[0]
