"""uvicorn's httptools protocol, bounded: the way every request not taken directly goes.

tRPC queries carry their input in the URL, and the contract promises a tRPC 413 for inputs over
our limit rather than an error from below. httptools parses URLs with 16-bit offsets, so it
rejects any URL over 64 KiB; and uvicorn buffers a URL or headers of any size. This protocol
splits long URLs itself, keeps at most `max_url_bytes` of one (flagging the scope so the
endpoint answers 413), and refuses header sections over `max_header_bytes`.

It runs inside a TRPCConnection (rpc/_http_connection.py), which hands it the chunks it does not
answer itself and asks it, through `busy`, whether a request of its own is still open.
"""

from __future__ import annotations

from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

URL_TOO_LONG = "blueprint.url_too_long"
#: httptools parses URLs with 16-bit offsets: longer ones must be split before parsing.
PARSE_URL_LIMIT = 0xFFFF


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_url_bytes = 256 * 1024
    max_header_bytes = 64 * 1024

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        options = getattr(config, "trpc_edge", None)
        if options is not None:
            self.max_url_bytes = options.max_url_bytes
        super().__init__(config, *args, **kwargs)

    _in_message = False

    @property
    def busy(self) -> bool:
        """Whether a request is still being read, answered or queued behind another."""
        cycle = self.cycle
        return (
            self._in_message
            or bool(self.pipeline)
            or (cycle is not None and not cycle.response_complete)
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
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
        if len(self.url) <= PARSE_URL_LIMIT and not self._url_overflow:
            super().on_headers_complete()
            return
        path, _, query = self.url.partition(b"?")
        if len(path) > PARSE_URL_LIMIT:
            # Too long to parse; the prefix left is enough for the endpoint to answer 413.
            self._url_overflow = True
            path = path[:PARSE_URL_LIMIT]
        self.url = path
        super().on_headers_complete()
        # The ASGI task was created but has not run yet, so the scope can still be completed.
        scope: Any = self.scope
        if "path" in scope:
            scope["query_string"] = b"" if self._url_overflow else query
            if self._url_overflow:
                scope.setdefault("extensions", {})[URL_TOO_LONG] = True

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()


class EdgeOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the protocol needs of the settings; set on uvicorn's Config as `trpc_edge` so it
    travels with the Config to worker processes."""

    prefix: str = "/api/trpc"
    cors_enabled: bool = False
    max_body_bytes: int = 1024 * 1024
    max_url_bytes: int = 256 * 1024
