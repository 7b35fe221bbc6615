"""The transport: the fast path answers exactly as the ASGI path does, and HTTP/1.1 holds."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote, urlsplit

import httpx
import pytest

import tests.servers as servers
from rpc.cli import uvicorn_config
from tests import sample_router

TRPC = "/api/trpc"
REQUESTS = [
    ("GET", "/noinput", None),
    ("GET", "/greet?input=" + quote('{"json":{"name":"ann"}}'), None),
    ("GET", "/greet?input=" + quote('{"json":{"name":5}}'), None),
    ("GET", "/greet,noinput,forbidden?batch=1&input=" + quote('{"0":{"json":{"name":"b"}}}'), None),
    ("GET", "/nope", None),
    ("GET", "/math.add", None),
    ("POST", "/math.add", b'{"json":{"a":1,"b":2}}'),
    ("POST", "/noinput", b""),
    ("POST", "/math.add", b'{"json":'),
]


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory):
    from rpc.settings import Settings
    from tests.servers import running_server

    db = tmp_path_factory.mktemp("cors") / "bp.db"
    settings = Settings(db=str(db), cors_origins=("http://app.test",))
    with running_server(settings, sample_router.router) as url:
        yield url


@pytest.mark.parametrize(("method", "target", "body"), REQUESTS)
def test_the_fast_path_answers_as_the_asgi_path_does(cors_server, method, target, body):
    # With CORS on, a request with an Origin goes through Starlette; one without, the fast path.
    headers = {"content-type": "application/json"} if body is not None else {}
    fast = httpx.request(method, cors_server + TRPC + target, content=body, headers=headers)
    slow = httpx.request(
        method,
        cors_server + TRPC + target,
        content=body,
        headers={**headers, "origin": "http://app.test"},
    )
    assert "access-control-allow-origin" not in fast.headers
    assert slow.headers["access-control-allow-origin"] == "http://app.test"
    assert fast.status_code == slow.status_code
    assert fast.json() == slow.json()
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert fast.headers.get("allow") == slow.headers.get("allow")


def exchange(
    base: str, raw: bytes, expect: int = 1, timeout: float = 10
) -> list[tuple[int, dict, bytes]]:
    """Send raw bytes on one connection; read `expect` responses."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_responses(sock.makefile("rb"), expect)


def read_responses(reader, count: int) -> list[tuple[int, dict, bytes]]:
    responses = []
    for _ in range(count):
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append((status, headers, reader.read(length)))
    return responses


def test_pipelined_requests_are_answered_in_order(sample_server):
    requests = b"".join(
        f"GET {TRPC}/{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for path in ("sleep?input=" + quote('{"json":{"ms":150}}'), "noinput", "nope", "noinput")
    )
    responses = exchange(sample_server, requests, expect=4)
    assert [status for status, _, _ in responses] == [200, 200, 404, 200]
    assert json.loads(responses[0][2]) == {"result": {"data": {"json": 150}}}


def test_connection_close_and_http_1_0_close_after_the_answer(sample_server):
    for request in (
        f"GET {TRPC}/noinput HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        f"GET {TRPC}/noinput HTTP/1.0\r\n\r\n",
    ):
        [(status, headers, body)] = exchange(sample_server, request.encode())
        assert status == 200
        assert headers.get("connection") == "close"
        assert json.loads(body)["result"]["data"]["json"] == "ok"


def test_a_chunked_body_reaches_the_procedure(sample_server):
    body = b'{"json":{"a":2,"b":40}}'
    request = (
        f"POST {TRPC}/math.add HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    [(status, _, reply)] = exchange(sample_server, request)
    assert (status, json.loads(reply)) == (200, {"result": {"data": {"json": 42}}})


def test_a_chunked_body_over_the_limit_is_413_on_the_fast_path(make_server):
    url = make_server(sample_router.router, max_body_bytes=100)
    chunk = b"x" * 80
    request = (
        (
            f"POST {TRPC}/math.add HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            "transfer-encoding: chunked\r\n\r\n"
        ).encode()
        + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
        + b"0\r\n\r\n"
    )
    [(status, _, reply)] = exchange(url, request)
    assert status == 413
    assert json.loads(reply)["error"]["json"]["data"]["code"] == "PAYLOAD_TOO_LARGE"


def test_head_answers_no_body(sample_server):
    [(status, headers, body)] = exchange(
        sample_server, f"HEAD {TRPC}/noinput HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert (status, body) == (204, b"")
    assert "content-length" not in headers


def test_a_client_that_leaves_mid_call_does_not_hurt_the_server(sample_server):
    parts = urlsplit(sample_server)
    for _ in range(5):
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            target = f"{TRPC}/sleep?input=" + quote('{"json":{"ms":100}}')
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert httpx.get(sample_server + TRPC + "/noinput").status_code == 200


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *extra, "", ""]).encode()


def test_one_connection_moves_between_the_direct_path_and_uvicorn(sample_server):
    # Direct, uvicorn (HEAD, /healthz, a stream-accepting batch), then direct again: one socket.
    parts = urlsplit(sample_server)
    batch = f"{TRPC}/noinput?batch=1"
    steps = [
        (get(f"{TRPC}/noinput"), 200),
        (b"HEAD " + f"{TRPC}/noinput HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 204),
        (get("/healthz"), 200),
        (get(batch, "trpc-accept: application/jsonl"), 200),
        (get(f"{TRPC}/nope"), 404),
        (get(f"{TRPC}/noinput"), 200),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for raw, expected in steps:
            sock.sendall(raw)
            if b"jsonl" in raw:
                # A JSONL stream is chunked: read its head and chunks up to the last one.
                assert int(reader.readline().split()[1]) == expected
                while reader.readline() != b"\r\n":
                    pass
                while (size := int(reader.readline().strip(), 16)) != 0:
                    reader.read(size + 2)
                reader.readline()
                continue
            if raw.startswith(b"HEAD"):
                status = _read_head_only(reader)
            else:
                [(status, _, _)] = read_responses(reader, 1)
            assert status == expected, raw


def _read_head_only(reader) -> int:
    status = int(reader.readline().split()[1])
    while reader.readline() not in (b"\r\n", b""):
        pass
    return status


def test_a_request_split_across_packets_is_answered(sample_server):
    parts = urlsplit(sample_server)
    target = f"{TRPC}/greet?input=" + quote('{"json":{"name":"ann"}}')
    raw = get(target)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for cut in (5, len(raw) // 2, len(raw) - 2):
            sock.sendall(raw[:cut])
            time.sleep(0.05)
            sock.sendall(raw[cut:])
            [(status, _, body)] = read_responses(reader, 1)
            assert (status, json.loads(body)["result"]["data"]["json"]["greeting"]) == (
                200,
                "hi ann",
            )
        # and whole again afterwards, on the same connection
        sock.sendall(raw)
        assert read_responses(reader, 1)[0][0] == 200


def test_a_request_sent_while_a_direct_one_is_awaited_waits_its_turn(sample_server):
    parts = urlsplit(sample_server)
    slow = get(f"{TRPC}/sleep?input=" + quote('{"json":{"ms":200}}'))
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(slow)
        time.sleep(0.05)
        sock.sendall(get(f"{TRPC}/noinput") + get(f"{TRPC}/nope"))
        responses = read_responses(reader, 3)
    assert [status for status, _, _ in responses] == [200, 200, 404]
    assert json.loads(responses[0][2]) == {"result": {"data": {"json": 200}}}


def test_a_malformed_request_is_400_and_closes(sample_server):
    [(status, headers, _)] = exchange(
        sample_server, b"GET /api/trpc/noinput HTTP/1.1\r\nBad Header\r\n\r\n"
    )
    assert status == 400
    assert headers.get("connection") == "close"


def test_with_the_access_log_on_every_request_is_answered_by_uvicorn(make_server, capfd):
    # uvicorn's access log sees only what uvicorn serves, so with it on the direct path stands down.
    url = make_server(sample_router.router, access_log=True)
    reply = httpx.get(url + TRPC + "/noinput")
    assert reply.json() == {"result": {"data": {"json": "ok"}}}
    assert f'"GET {TRPC}/noinput HTTP/1.1" 200' in capfd.readouterr().out


@pytest.fixture
def quick_keep_alive_server(tmp_path, monkeypatch):
    """A server whose idle connections close after 0.5 s (uvicorn's default is 5 s)."""
    from rpc.settings import Settings

    def with_short_keep_alive(*args, **kwargs):
        config = uvicorn_config(*args, **kwargs)
        config.timeout_keep_alive = 0.5
        return config

    monkeypatch.setattr(servers, "uvicorn_config", with_short_keep_alive)
    settings = Settings(db=str(tmp_path / "bp.db"), rate_limit=None)
    with servers.running_server(settings, sample_router.router) as url:
        yield url


def test_an_idle_connection_is_closed_and_a_busy_one_is_not(quick_keep_alive_server):
    parts = urlsplit(quick_keep_alive_server)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for _ in range(8):  # 1.6 s of requests, one every 0.2 s: busy throughout
            sock.sendall(get(f"{TRPC}/noinput"))
            assert read_responses(reader, 1)[0][0] == 200
            time.sleep(0.2)
        # Then idle: closed within two periods of the timeout.
        started = time.monotonic()
        assert reader.read(1) == b""
        assert time.monotonic() - started < 2.0
