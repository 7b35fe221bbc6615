"""uvicorn's httptools protocol, bounded, and with a fast path for plain tRPC calls.

Bounds. tRPC queries carry their input in the URL, and the contract promises a tRPC 413 for
inputs over our limit rather than an error from below. httptools parses URLs with 16-bit
offsets, so it rejects any URL over 64 KiB; and uvicorn buffers a URL or headers of any size.
This protocol splits long URLs itself, keeps at most `max_url_bytes` of one (flagging the scope
so the endpoint answers 413), and refuses header sections over `max_header_bytes`.

Fast path. Going through ASGI costs more per request than a status read does: the scope, the
cycle, a task, the middleware stack. A plain call to the tRPC endpoint on an idle connection
(GET or POST, not a stream, no CORS to apply) is instead handed to the same Resolver the
Starlette endpoint uses, and its answer written directly; when the resolver can answer without
waiting (a cached status), no task is created at all. Everything else, and every request
pipelined behind another, takes uvicorn's ordinary path to the Starlette app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rpc.errors import ErrorCode, RPCError, body_too_large
from rpc.resolver import JSON_HEADERS, HTTPRequest, HTTPResponse, Resolver

URL_TOO_LONG = "blueprint.url_too_long"
#: The headers the resolver and the context read; the fast path decodes only these.
_READ_HEADERS = frozenset(
    (
        b"content-type",
        b"accept",
        b"trpc-accept",
        b"authorization",
        b"x-api-key",
        b"origin",
        b"last-event-id",
    )
)
_PARSE_URL_LIMIT = 0xFFFF
_STATUS_LINES = {
    200: b"HTTP/1.1 200 OK\r\n",
    204: b"HTTP/1.1 204 No Content\r\n",
    207: b"HTTP/1.1 207 Multi-Status\r\n",
}
log = logging.getLogger("blueprint.rpc")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_url_bytes = 256 * 1024
    max_header_bytes = 64 * 1024

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_overflow = False
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.max_url_bytes:
            self._url_overflow = True
            return
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's own on_header, inlined: this runs for every header of every request.
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_header_bytes:
            raise ValueError("request headers too large")
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if len(self.url) <= _PARSE_URL_LIMIT and not self._url_overflow:
            super().on_headers_complete()
            return
        path, _, query = self.url.partition(b"?")
        if len(path) > _PARSE_URL_LIMIT:
            # Too long to parse; the prefix left is enough for the endpoint to answer 413.
            self._url_overflow = True
            path = path[:_PARSE_URL_LIMIT]
        self.url = path
        super().on_headers_complete()
        # The ASGI task was created but has not run yet, so the scope can still be completed.
        scope: Any = self.scope
        if "path" in scope:
            scope["query_string"] = b"" if self._url_overflow else query
            if self._url_overflow:
                scope.setdefault("extensions", {})[URL_TOO_LONG] = True


class _Exchange:
    """One request on the fast path. It stands in for uvicorn's cycle (`self.cycle`), so
    uvicorn's own bookkeeping (pipelining, disconnects, shutdown) sees a request in flight."""

    __slots__ = ("body", "disconnected", "keep_alive", "request", "response_complete", "too_large")

    def __init__(self, request: HTTPRequest, keep_alive: bool) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.too_large = False
        self.disconnected = False
        self.response_complete = False

    @property
    def message_event(self) -> _Exchange:
        return self

    def set(self) -> None:
        """uvicorn wakes its cycle's reader with `message_event.set()`; nothing waits here."""


class TRPCHttpToolsProtocol(BoundedHttpToolsProtocol):
    """Configured by the EdgeOptions on uvicorn's Config: the endpoint's prefix, whether CORS
    must see requests, and the size limits."""

    trpc_prefix = b"/api/trpc/"
    cors_enabled = False
    max_body_bytes = 1024 * 1024
    _default_cache: list[Any] = [None, b""]

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        options = getattr(config, "trpc_edge", None)
        if options is not None:
            self.trpc_prefix = options.prefix.rstrip("/").encode() + b"/"
            self.cors_enabled = options.cors_enabled
            self.max_body_bytes = options.max_body_bytes
            self.max_url_bytes = options.max_url_bytes
        super().__init__(config, *args, **kwargs)

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        exchange = self._fast_exchange()
        if exchange is None:
            super().on_headers_complete()
        else:
            self.cycle = exchange  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        exchange = self.cycle
        if not isinstance(exchange, _Exchange):
            super().on_body(body)
        elif len(exchange.body) + len(body) > self.max_body_bytes:
            exchange.too_large = True
        else:
            exchange.body += body

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if not isinstance(exchange, _Exchange):
            super().on_message_complete()
            return
        resolver: Resolver = self.app_state["resolver"]
        request = exchange.request
        if exchange.too_large:
            answer: HTTPResponse | Coroutine[Any, Any, HTTPResponse] = resolver.reject(
                body_too_large(self.max_body_bytes)
            )
        else:
            request.body = bytes(exchange.body)
            answer = resolver.start(request)
        if isinstance(answer, HTTPResponse):
            self._reply(exchange, answer)
        else:
            task = self.loop.create_task(self._reply_later(exchange, answer))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    def _fast_exchange(self) -> _Exchange | None:
        """An exchange for this request if the fast path can take it, else None."""
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a request in flight: keep uvicorn's ordering
        url = self.url
        if (
            self._url_overflow
            or len(url) > _PARSE_URL_LIMIT
            or not url.startswith(self.trpc_prefix)
        ):
            return None
        method = self.parser.get_method()
        if (method != b"GET" and method != b"POST") or self.expect_100_continue:
            return None
        headers: dict[str, str] = {}
        for name, value in self.headers:
            if name in _READ_HEADERS:
                if (
                    name == b"trpc-accept"
                    or (name == b"accept" and b"jsonl" in value)
                    or (name == b"origin" and self.cors_enabled)
                ):
                    return None  # streams and CORS are Starlette's
                headers[name.decode()] = value.decode("latin-1")
            elif name == b"upgrade":
                return None
        raw_path, _, query = url.partition(b"?")
        path = raw_path[len(self.trpc_prefix) :].decode("latin-1")
        if "%" in path:
            path = unquote(path)
        resolver: Resolver | None = self.app_state.get("resolver")
        if resolver is None or resolver.is_subscription(path):
            return None
        client = self.client[0] if self.client else None
        request = HTTPRequest(method.decode(), path, query, headers, b"", client)
        return _Exchange(request, self.parser.should_keep_alive())

    def _default_head(self) -> bytes:
        """uvicorn's default headers (the date), encoded once per change: it swaps the list
        every second."""
        defaults = self.server_state.default_headers
        cache = type(self)._default_cache
        if cache[0] is not defaults:
            cache[0] = defaults
            cache[1] = b"".join(b"%s: %s\r\n" % (name, value) for name, value in defaults)
        return cache[1]  # type: ignore[no-any-return]

    async def _reply_later(
        self, exchange: _Exchange, answer: Coroutine[Any, Any, HTTPResponse]
    ) -> None:
        try:
            response = await answer
        except Exception:
            log.exception("the resolver failed on %s", exchange.request.path)
            error = RPCError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error")
            response = self.app_state["resolver"].reject(error)
        if not exchange.disconnected:
            self._reply(exchange, response)

    def _reply(self, exchange: _Exchange, response: HTTPResponse) -> None:
        status_line = _STATUS_LINES.get(response.status) or b"HTTP/1.1 %d %s\r\n" % (
            response.status,
            _reason(response.status),
        )
        head = [status_line, self._default_head(), _encode_headers(response.headers)]
        if response.status != 204:
            head.append(b"content-length: %d\r\n" % len(response.body))
        if not exchange.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if response.status != 204 and exchange.request.method != "HEAD":
            head.append(response.body)
        self.transport.write(b"".join(head))
        exchange.response_complete = True
        if not exchange.keep_alive:
            self.transport.close()
        elif self.pipeline:
            self.on_response_complete()  # uvicorn starts the request waiting behind this one
        else:
            self._idle()

    # Keep-alive: uvicorn arms a timer after every response and cancels it on the next
    # request. For the fast path one timer per connection is armed lazily and re-armed when it
    # fires early; a request only notes that the connection is busy.

    def _idle(self) -> None:
        self.server_state.total_requests += 1
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._idle_since is None or self.transport.is_closing():
            return  # busy: the next response arms a new timer
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining <= 0:
            self.transport.close()
        else:
            self._idle_timer = self.loop.call_later(remaining, self._idle_check)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None
        if self.timeout_keep_alive_task is not None:
            super()._unset_keepalive_if_required()


_JSON_HEAD = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in JSON_HEADERS)


def _encode_headers(headers: list[tuple[str, str]]) -> bytes:
    if headers is JSON_HEADERS:
        return _JSON_HEAD
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class EdgeOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the protocol needs of the settings; set on uvicorn's Config as `trpc_edge` so it
    travels with the Config to worker processes."""

    prefix: str = "/api/trpc"
    cors_enabled: bool = False
    max_body_bytes: int = 1024 * 1024
    max_url_bytes: int = 256 * 1024
