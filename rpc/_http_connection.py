"""Every HTTP connection's protocol: plain tRPC calls answered directly, the rest by uvicorn.

uvicorn's protocol does a lot per request that a poll does not need: it builds an ASGI scope,
a cycle, a task, and runs Python for every parser event. A connection here parses each chunk
with a parser of its own whose callbacks only collect what the resolver reads. A chunk that
holds exactly one complete plain call to the tRPC endpoint (GET or POST, not a stream, no
CORS, within the limits) goes to the Resolver and its answer is written at once; when the
resolver can answer from memory (a finished execution's status) no task is created at all.

Anything else (a partial or pipelined chunk, HEAD, a stream, /healthz, a malformed request)
is handed, as the very bytes received, to a uvicorn protocol (`BoundedHttpToolsProtocol`) made
for this connection on first need, which runs it through Starlette. While that protocol has a
request open, every chunk goes to it, so its framing, pipelining and streaming hold; once it is
idle again, chunks are tried on the direct path first. A request is never split between the two.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from rpc._http_protocol import PARSE_URL_LIMIT, BoundedHttpToolsProtocol, EdgeOptions
from rpc.errors import ErrorCode, RPCError, body_too_large
from rpc.resolver import JSON_HEADERS, HTTPRequest, HTTPResponse, Resolver

log = logging.getLogger("blueprint.rpc")

#: The headers the resolver and the context read; the direct path decodes only these.
_READ_HEADERS = frozenset(
    (b"content-type", b"accept", b"authorization", b"x-api-key", b"origin", b"last-event-id")
)
#: Headers that send a request to uvicorn: streams, upgrades and interim responses are its.
_SLOW_HEADERS = frozenset((b"trpc-accept", b"upgrade", b"expect"))
_METHODS = {b"GET": "GET", b"POST": "POST"}  #: the methods taken directly
_STATUS_LINES = {200: b"HTTP/1.1 200 OK\r\n", 207: b"HTTP/1.1 207 Multi-Status\r\n"}


class TRPCConnection(asyncio.Protocol):
    """Made by uvicorn per connection, with its Config (carrying our EdgeOptions as
    `trpc_edge`), its ServerState and the lifespan state."""

    # The request being read: reset by _reset_request, filled by the parser's callbacks.
    _headers: dict[str, str]
    _method: str | None  #: "GET" or "POST" (those taken directly), else None

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        options: EdgeOptions = getattr(config, "trpc_edge", None) or EdgeOptions()
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_event_loop()
        self._outbox = _outbox_of(self._loop)
        self._prefix = options.prefix.rstrip("/").encode() + b"/"
        self._cors = options.cors_enabled
        self._max_body = options.max_body_bytes
        self._max_url = min(options.max_url_bytes, PARSE_URL_LIMIT)
        self._max_head = BoundedHttpToolsProtocol.max_header_bytes
        # uvicorn's access log sees only what uvicorn serves: with it on, everything goes there.
        self._direct = not config.access_log
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client: str | None = None
        self._uvicorn: BoundedHttpToolsProtocol | None = None
        self._pending = False  #: a direct request's answer is being awaited
        self._held = b""  #: bytes that arrived meanwhile, read once it is answered
        self._close_after = False
        self._closed = False
        self._answered = 0  #: answers written on the direct path
        self._answered_at_check = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reset_request()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) and peer else None
        self._server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._pending:
            self._held += data  # pipelined behind a direct request: read after it
            self._transport.pause_reading()  # type: ignore[union-attr]
            return
        slow = self._uvicorn
        if slow is not None:
            if slow.busy:
                slow.data_received(data)
                return
            slow._unset_keepalive_if_required()
        if not self._direct or not self._take(data):
            self._to_uvicorn(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server_state.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._uvicorn is not None:
            self._uvicorn.connection_lost(exc)
        elif exc is None and self._transport is not None:
            self._transport.close()

    def eof_received(self) -> None:
        return None

    def pause_writing(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.pause_writing()

    def resume_writing(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.resume_writing()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close now if idle, else after the answer in flight."""
        if self._uvicorn is not None and self._uvicorn.busy:
            self._uvicorn.shutdown()
        elif self._pending:
            self._close_after = True
        elif self._transport is not None:
            self._outbox.flush()  # an answer queued this iteration goes out before the close
            self._transport.close()

    # httptools callbacks: collect one request, and note whether it may go the direct way

    def on_message_begin(self) -> None:
        self._messages += 1

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        name = name.lower()
        if name in _READ_HEADERS:
            key = name.decode()
            if key in self._headers or (name == b"origin" and self._cors):
                self._eligible = False  # repeated: let Starlette's reading of it decide
            elif name == b"accept" and b"jsonl" in value:
                self._eligible = False
            self._headers[key] = value.decode("latin-1")
        elif name in _SLOW_HEADERS:
            self._eligible = False

    def on_body(self, body: bytes) -> None:
        if len(self._body) + len(body) > self._max_body:
            self._too_large = True
        elif not self._too_large:
            self._body += body

    def on_message_complete(self) -> None:
        # Read now: the parser forgets both once the message is over.
        self._complete += 1
        self._method = _METHODS.get(self._parser.get_method())
        self._keep_alive = self._parser.should_keep_alive()

    # the direct path

    def _reset_request(self) -> None:
        self._messages = 0
        self._complete = 0
        self._url = b""
        self._headers = {}
        self._head_bytes = 0
        self._body = b""
        self._too_large = False
        self._eligible = True
        self._method = None
        self._keep_alive = False

    def _take(self, data: bytes) -> bool:
        """Answer `data` directly if it is one whole plain tRPC call; False leaves it for
        uvicorn, with this connection's parser ready for the next chunk."""
        self._reset_request()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._parser = httptools.HttpRequestParser(self)
            return False
        if self._messages != 1 or self._complete != 1:
            if self._complete != self._messages:  # stopped inside a request
                self._parser = httptools.HttpRequestParser(self)
            return False
        resolver: Resolver | None = self._app_state.get("resolver")
        request = None if resolver is None else self._request(resolver)
        if request is None or resolver is None:
            return False
        if self._too_large:
            answer: Any = resolver.reject(body_too_large(self._max_body))
        else:
            answer = resolver.start(request)
        if isinstance(answer, HTTPResponse):
            self._reply(answer, self._keep_alive)
        else:
            self._pending = True
            task = self._loop.create_task(self._reply_later(answer, request, self._keep_alive))
            task.add_done_callback(self._server_state.tasks.discard)
            self._server_state.tasks.add(task)
        return True

    def _request(self, resolver: Resolver) -> HTTPRequest | None:
        """The request as the resolver takes it, or None if it is not the direct path's."""
        url = self._url
        if (
            self._method is None
            or not self._eligible
            or self._head_bytes > self._max_head
            or len(url) > self._max_url
            or not url.startswith(self._prefix)
        ):
            return None
        raw_path, _, query = url.partition(b"?")
        path = raw_path[len(self._prefix) :].decode("latin-1")
        if "%" in path:
            path = unquote(path)
        if resolver.is_subscription(path):
            return None
        return HTTPRequest(self._method, path, query, self._headers, self._body, self._client)

    async def _reply_later(
        self,
        answer: Coroutine[Any, Any, HTTPResponse],
        request: HTTPRequest,
        keep_alive: bool,
    ) -> None:
        try:
            response = await answer
        except Exception:
            log.exception("the resolver failed on %s", request.path)
            error = RPCError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error")
            response = self._app_state["resolver"].reject(error)
        self._pending = False
        if not self._closed:
            self._reply(response, keep_alive)

    def _reply(self, response: HTTPResponse, keep_alive: bool) -> None:
        transport = self._transport
        assert transport is not None
        keep_alive = keep_alive and not self._close_after
        status = response.status
        head = [
            _STATUS_LINES.get(status) or _status_line(status),
            _default_head(self._server_state.default_headers),
            _encode_headers(response.headers),
        ]
        if status != 204:
            head.append(b"content-length: %d\r\n" % len(response.body))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        body = response.body if status != 204 else b""
        self._outbox.send(transport, b"".join(head), body, close=not keep_alive)
        self._server_state.total_requests += 1
        if not keep_alive:
            return
        held = self._held
        if held:
            self._held = b""
            transport.resume_reading()
            self.data_received(held)
        elif not self._pending:
            self._idle()

    def _to_uvicorn(self, data: bytes) -> None:
        self._outbox.flush()  # uvicorn writes directly: what this connection answered goes first
        slow = self._uvicorn
        if slow is None:
            slow = BoundedHttpToolsProtocol(
                self._config, self._server_state, self._app_state, self._loop
            )
            slow.connection_made(self._transport)  # type: ignore[arg-type]
            # This connection answers for both to the server (shutdown, the connection count).
            self._server_state.connections.discard(slow)
            self._uvicorn = slow
        slow.data_received(data)

    # Keep-alive: uvicorn arms a timer after every response and cancels it on the next request.
    # Here one timer per connection checks every `timeout_keep_alive` seconds whether anything
    # was answered since its last look, so an idle connection closes within one to two periods
    # and a request costs no clock read.

    def _idle(self) -> None:
        self._answered += 1
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_later(
                self._config.timeout_keep_alive, self._idle_check
            )

    def _idle_check(self) -> None:
        self._idle_timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        busy = self._pending or (self._uvicorn is not None and self._uvicorn.busy)
        if busy or self._answered != self._answered_at_check:
            self._answered_at_check = self._answered
            if not busy:
                self._idle_timer = self._loop.call_later(
                    self._config.timeout_keep_alive, self._idle_check
                )
            return  # busy: the next direct answer arms a new timer
        transport.close()


class _Outbox:
    """Answers written together once the loop has read every ready socket, not one by one.

    Each write to a client on this machine or a LAN wakes it; written back to back, a round of
    answers costs the client one wake-up rather than one each. That wake-up (an interrupt to
    another CPU, dear in a VM) was most of the system time per request: `make bench` went from
    about 14k to 21k req/s at N=1,000 and from 5k to 8k at N=100,000. A lone request is
    written as soon as it is answered, at the end of the same loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queued: list[tuple[asyncio.Transport, bytes, bytes, bool]] = []

    def send(self, transport: asyncio.Transport, head: bytes, body: bytes, close: bool) -> None:
        if not self._queued:
            self._loop.call_soon(self.flush)
        self._queued.append((transport, head, body, close))

    def flush(self) -> None:
        queued, self._queued = self._queued, []
        for transport, head, body, close in queued:
            if not transport.is_closing():
                # One buffer: uvloop's writelines costs a later, second pass through the loop.
                transport.write(head + body)
                if close:
                    transport.close()


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
    weakref.WeakKeyDictionary()
)


def _outbox_of(loop: asyncio.AbstractEventLoop) -> _Outbox:
    """One per event loop: each server (tests run several in threads) has its own."""
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = _Outbox(loop)
    return outbox


_default_cache: list[Any] = [None, b""]


def _default_head(defaults: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (the date), encoded once per change: it swaps the list every
    second."""
    if _default_cache[0] is not defaults:
        _default_cache[0] = defaults
        _default_cache[1] = b"".join(b"%s: %s\r\n" % (name, value) for name, value in defaults)
    return _default_cache[1]  # type: ignore[no-any-return]


_JSON_HEAD = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in JSON_HEADERS)


def _encode_headers(headers: list[tuple[str, str]]) -> bytes:
    if headers is JSON_HEADERS:
        return _JSON_HEAD
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)
