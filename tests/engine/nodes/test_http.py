"""The http node type against a real HTTP server on 127.0.0.1 (API.md §3)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.engine.conftest import blueprint, run

Reply = tuple[int, str, bytes]  # status, content type, body


@dataclass
class Server:
    """Answers each path with its replies in turn (the last one repeats) and keeps requests."""

    replies: dict[str, list[Reply]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def on(self, path: str, *replies: Reply) -> str:
        self.replies[path] = list(replies)
        return self.url + path

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
        self.hits[path] += 1
        queue = self.replies.get(path, [(404, "text/plain", b"no such path")])
        status, content_type, payload = queue.pop(0) if len(queue) > 1 else queue[0]
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener:
        yield state


def json_reply(status: int, value: Any) -> Reply:
    return (status, "application/json; charset=utf-8", json.dumps(value).encode())


def http_node(url: str, **config: Any) -> dict[str, Any]:
    retry = config.pop("retry", None)
    node: dict[str, Any] = {"id": "h", "type": "http", "config": {"url": url, **config}}
    if retry:
        node["retry"] = retry
    return node


async def test_a_json_response_is_parsed(engine, sink, server):
    url = server.on("/data", json_reply(200, {"items": [1, 2]}))
    seen = await run(engine, sink, blueprint(http_node(url)))
    output = seen.outputs["h"]
    assert output["status"] == 200
    assert output["body"] == {"items": [1, 2]}
    assert output["headers"]["content-type"].startswith("application/json")


async def test_a_text_response_stays_text(engine, sink, server):
    url = server.on("/text", (200, "text/plain", b"hello"))
    seen = await run(engine, sink, blueprint(http_node(url)))
    assert seen.outputs["h"]["body"] == "hello"


async def test_method_headers_and_a_json_body_are_sent_with_templates(engine, sink, server):
    server.on("/items", json_reply(201, {"id": 7}))
    node = http_node(
        server.url + "/{{ input.path }}",
        method="POST",
        headers={"x-who": "{{ input.who }}"},
        body={"count": "{{ input.count }}"},
    )
    seen = await run(
        engine, sink, blueprint(node), input={"path": "items", "who": "ci", "count": 3}
    )
    request = server.requests[0]
    assert (request["method"], request["path"]) == ("POST", "/items")
    assert request["headers"]["x-who"] == "ci"
    assert json.loads(request["body"]) == {"count": 3}
    assert seen.outputs["h"]["status"] == 201


async def test_a_header_whose_template_gives_no_text_is_sent_as_json(engine, sink, server):
    """Found by tests/engine/test_fuzz_blueprints.py: `{"x-a": "{{ input }}"}` with input null
    handed None to httpx, whose TypeError failed the node as NODE_ERROR, retried."""
    url = server.on("/h", json_reply(200, {}))
    headers = {"x-null": "{{ input.none }}", "x-num": "{{ input.n }}", "x-obj": "{{ input }}"}
    seen = await run(
        engine, sink, blueprint(http_node(url, headers=headers)), input={"none": None, "n": 3}
    )
    assert seen.status == "completed", seen.steps["h"].error
    sent = server.requests[0]["headers"]
    assert (sent["x-null"], sent["x-num"]) == ("null", "3")
    assert json.loads(sent["x-obj"]) == {"none": None, "n": 3}


@pytest.mark.parametrize(
    ("url_path", "headers"),
    [("/", {"x-a": "caf\u00e9"}), ("/", {"x-a": "{{ input }}"}), ("/{{ input }}", {})],
    ids=["static-header", "templated-header", "templated-url"],
)
async def test_a_request_that_cannot_be_sent_fails_at_once(engine, sink, server, url_path, headers):
    """Found by tests/engine/test_fuzz_blueprints.py: a header that is not ASCII made httpx
    raise UnicodeEncodeError, a NODE_ERROR retried as if the network had failed."""
    url = server.on("/", json_reply(200, {})).rstrip("/") + url_path
    node = http_node(url, headers=headers, retry={"maxAttempts": 3})
    seen = await run(engine, sink, blueprint(node), input="\u00e9\n\x00 x")
    assert seen.status == "failed"
    assert [a.error.code for a in seen.steps["h"].attempts] == ["HTTP_INVALID_REQUEST"]
    assert server.requests == []


async def test_expect_status_accepts_a_listed_status(engine, sink, server):
    url = server.on("/gone", json_reply(404, {"missing": True}))
    seen = await run(engine, sink, blueprint(http_node(url, expectStatus=[404])))
    assert seen.status == "completed"
    assert seen.outputs["h"]["body"] == {"missing": True}


async def test_expect_status_rejects_an_unlisted_2xx(engine, sink, server):
    url = server.on("/ok", json_reply(200, {}))
    seen = await run(engine, sink, blueprint(http_node(url, expectStatus=[201])))
    assert seen.status == "failed"
    assert seen.steps["h"].error.code == "HTTP_STATUS"
    assert "200" in seen.steps["h"].error.message


async def test_a_5xx_is_retried(engine, sink, server):
    url = server.on("/flaky", (503, "text/plain", b"busy"), json_reply(200, {"ok": True}))
    seen = await run(engine, sink, blueprint(http_node(url, retry={"maxAttempts": 3})))
    assert seen.status == "completed"
    assert server.hits["/flaky"] == 2
    attempts = seen.steps["h"].attempts
    assert [a.error.code if a.error else None for a in attempts] == ["HTTP_STATUS", None]


async def test_a_429_is_retried(engine, sink, server):
    url = server.on("/slow-down", (429, "text/plain", b""), json_reply(200, {}))
    seen = await run(engine, sink, blueprint(http_node(url, retry={"maxAttempts": 2})))
    assert seen.status == "completed"
    assert server.hits["/slow-down"] == 2


async def test_a_404_is_not_retried(engine, sink, server):
    url = server.on("/missing", (404, "text/plain", b"nope"))
    seen = await run(engine, sink, blueprint(http_node(url, retry={"maxAttempts": 3})))
    assert seen.status == "failed"
    assert server.hits["/missing"] == 1
    assert len(seen.steps["h"].attempts) == 1
    assert seen.execution.error.code == "HTTP_STATUS"
    assert seen.execution.error.node_id == "h"


async def test_a_connection_error_is_retried(engine, sink):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    seen = await run(engine, sink, blueprint(http_node(url, retry={"maxAttempts": 2})))
    assert seen.status == "failed"
    assert [a.error.code for a in seen.steps["h"].attempts] == ["HTTP_ERROR", "HTTP_ERROR"]
