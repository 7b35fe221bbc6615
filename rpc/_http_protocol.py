"""uvicorn's httptools protocol, taught to carry long URLs and to bound what it buffers.

tRPC queries carry their input in the URL, and the contract promises a tRPC 413 for inputs
over our limit rather than an error from below. httptools parses URLs with 16-bit offsets, so
it rejects any URL over 64 KiB; and uvicorn buffers a URL or headers of any size. This subclass
splits long URLs itself, keeps at most `max_url_bytes` of one (flagging the scope so the
endpoint answers 413), and refuses header sections over `max_header_bytes`.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

URL_TOO_LONG = "blueprint.url_too_long"
_PARSE_URL_LIMIT = 0xFFFF


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
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_header_bytes:
            raise ValueError("request headers too large")
        super().on_header(name, value)

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


def bounded_protocol(
    max_url_bytes: int, max_header_bytes: int = 64 * 1024
) -> type[HttpToolsProtocol]:
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_url_bytes": max_url_bytes, "max_header_bytes": max_header_bytes},
    )
