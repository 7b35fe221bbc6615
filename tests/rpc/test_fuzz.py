"""Property-based fuzzing of the real server over real sockets.

Whatever arrives (random bytes, random JSON, random query strings, batch shapes, paths, methods,
non-UTF-8 bytes, deep nesting, oversized inputs), the answer is a well-formed tRPC success or
a well-formed tRPC error envelope with a 4xx status that matches `data.httpStatus` (207 for a
mixed batch), never a 5xx, and the server stays healthy afterwards.

The oracle below is written from API.md section 1 and TRPC-PROTOCOL.md sections 3, 4, 8 and 9,
not from the server's code: its own table of codes, its own knowledge of the sample router.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rpc.codec import Transformer
from rpc.settings import Settings
from tests import sample_router
from tests._logs import ErrorRecords, error_records
from tests.rpc._codes import TRPC_CODES
from tests.servers import running_server

pytestmark = pytest.mark.slow

PREFIX = "/api/trpc/"
MAX_BATCH = 50
MAX_INPUT = 64 * 1024
MAX_BODY = 1024 * 1024
MAX_DEPTH = 64

CODES = TRPC_CODES

QUERY, MUTATION, SUBSCRIPTION = "query", "mutation", "subscription"
# The sample router, flattened. `boom` raises on purpose (its 500 is expected) and `sleep`
# sleeps for as long as its input says, so neither is ever generated.
KINDS = {
    "greet": QUERY,
    "echo": QUERY,
    "noinput": QUERY,
    "forbidden": QUERY,
    "conflict": MUTATION,
    "boom": QUERY,
    "sleep": QUERY,
    "math.add": MUTATION,
    "nested.deep.noinput": QUERY,
    "ticks": SUBSCRIPTION,
    "forever": SUBSCRIPTION,
}
NEVER_GENERATED = {"boom", "sleep"}
KNOWN = sorted(set(KINDS) - NEVER_GENERATED)
NEAR_MISSES = [
    "",
    "nope",
    "math",
    "nested",
    "nested.deep",
    "echo.",
    ".echo",
    "Echo",
    "math.add.x",
    "math..add",
    "__class__",
    "__proto__",
    "toString",
    "constructor",
    "echo ",
    " echo",
    "echo\r",
    "echo\t",
    "echo\x00",
    "echo/",
    "/echo",
    "nested/deep/noinput",
    "é",
    "💥",
]
# Field names of the sample router's inputs and of the wire envelopes, so random objects
# reach past "unknown field" into the validators.
FIELDS = [
    "json",
    "meta",
    "values",
    "v",
    "name",
    "at",
    "a",
    "b",
    "text",
    "tags",
    "extra",
    "count",
    "lastEventId",
    "failAfter",
    "0",
    "1",
    "2",
    "",
]
PROBE_TIMEOUT = httpx.Timeout(15.0)
SSE_MAX_EVENTS = 4  #: enough to see a stream is well formed; `forever` never ends
SSE_MAX_BYTES = 256 * 1024

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# FUZZ_SCALE=10 multiplies every example count, for a longer hunt than the suite's default.
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=max(1, round(examples * SCALE)))


# --------------------------------------------------------------------------------------------
# Servers and clients


@dataclass(frozen=True)
class Server:
    url: str
    transformer: str  #: "superjson" or "none"
    override: bool  #: allowMethodOverride: queries may come by POST

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample router without a transformer, with method override on."""
    db = tmp_path_factory.mktemp("fuzz-plain") / "blueprint.db"
    config = Settings(
        db=str(db),
        sse_ping_seconds=0.2,
        transformer=Transformer.NONE,
        allow_method_override=True,
        rate_limit=None,
    )
    with running_server(config, sample_router.router) as url:
        yield url


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=PROBE_TIMEOUT) as c:
        yield c


@pytest.fixture(params=["superjson", "none"])
def server(
    request: pytest.FixtureRequest, client: httpx.Client, sample_server: str
) -> Iterator[Server]:
    """Each property runs against both transformers (the second with method override)."""
    if request.param == "superjson":
        yield Server(sample_server, "superjson", override=False)
        return
    chosen = Server(request.getfixturevalue("plain_server"), "none", override=True)
    yield chosen
    assert_healthy(client, chosen.url, "none")


@pytest.fixture
def sj(sample_server: str) -> Server:
    """The default server: superjson, no method override."""
    return Server(sample_server, "superjson", override=False)


@pytest.fixture(scope="module")
def server_errors() -> Iterator[ErrorRecords]:
    with error_records("uvicorn", "blueprint") as handler:
        yield handler


def expected_error_log(record: logging.LogRecord) -> bool:
    """Errors the sample router causes on purpose, and the known superjson bugs."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None or exc.__traceback__ is None:
        return False
    frame = exc.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    code = frame.tb_frame.f_code
    if code.co_filename.endswith("sample_router.py"):
        return code.co_name in ("boom", "ticks")  # boom raises; ticks does int(lastEventId)
    return code.co_filename.endswith("_superjson.py") and code.co_name in ("_transform", "_index")


@pytest.fixture(autouse=True)
def still_healthy(
    client: httpx.Client, sample_server: str, server_errors: ErrorRecords
) -> Iterator[None]:
    """After every test the server answers /healthz and a normal query, and logged no error
    (such as an exception inside a stream, after its 200 went out)."""
    seen = len(server_errors.records)
    yield
    assert_healthy(client, sample_server)
    logged = [r for r in server_errors.records[seen:] if not expected_error_log(r)]
    assert not logged, [(r.getMessage(), r.exc_info) for r in logged]


def assert_healthy(client: httpx.Client, base: str, transformer: str = "superjson") -> None:
    health = client.get(f"{base}/healthz")
    assert health.status_code == 200, health.text
    ok = client.get(f"{base}{PREFIX}noinput")
    assert ok.status_code == 200, ok.text
    expected = {"json": "ok"} if transformer == "superjson" else "ok"
    assert ok.json() == {"result": {"data": expected}}


# --------------------------------------------------------------------------------------------
# Replies: one shape for httpx and raw-socket answers, SSE read with a cap


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[dict[str, str]] = field(default_factory=list)  #: SSE, when a stream

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def is_sse(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    def describe(self) -> str:
        return f"{self.status} {self.headers} {self.body[:600]!r} {self.events[:8]}"


def parse_sse(buffer: bytes) -> list[dict[str, str]]:
    """Complete events of an SSE buffer (an unfinished tail is left out)."""
    blocks = buffer.split(b"\n\n")
    if not buffer.endswith(b"\n\n"):
        blocks = blocks[:-1]
    events = []
    for block in blocks:
        lines = [line for line in block.split(b"\n") if line]
        if not lines:
            continue
        event: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(b":")
            assert sep, f"SSE line without a colon: {line!r}"
            event[name.decode()] = value.removeprefix(b" ").decode()
        events.append(event)
    return events


def sse_finished(buffer: bytes, max_events: int = SSE_MAX_EVENTS) -> bool:
    events = parse_sse(buffer)
    return (
        len(events) >= max_events
        or len(buffer) >= SSE_MAX_BYTES
        or any(e.get("event") in ("return", "serialized-error") for e in events)
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_events: int = SSE_MAX_EVENTS,
) -> Reply:
    """One request through the shared client; an SSE answer is read up to a few events."""
    with client.stream(method, url, content=body, headers=headers) as response:
        reply = Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()})
        if reply.is_sse:
            buffer = b""
            for chunk in response.iter_raw():
                buffer += chunk
                if sse_finished(buffer, max_events):
                    break
            reply.body = buffer
            reply.events = parse_sse(buffer)
        else:
            reply.body = response.read()
    return reply


def send_raw(server: Server, request: bytes, *, method: str = "GET") -> Reply:
    """Exact bytes on a fresh socket (for what httpx would re-encode); Connection: close."""
    with socket.create_connection(server.address, timeout=15) as sock:
        # The server may answer (and close) before it reads a body it refuses.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()})
            if reply.is_sse:
                buffer = b""
                while not sse_finished(buffer):
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    buffer += chunk
                reply.body = buffer
                reply.events = parse_sse(buffer)
            else:
                reply.body = response.read()
        finally:
            response.close()
    return reply


def get_long(server: Server, path: str, query: str) -> Reply:
    """A GET whose URL may be longer than httpx allows (it refuses URLs over 64 KiB)."""
    return send_raw(server, raw_request(b"GET", f"{PREFIX}{path}?{query}".encode()))


def raw_request(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"host: 127.0.0.1", b"connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method == b"POST":
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --------------------------------------------------------------------------------------------
# The oracle


def check_shape(shape: Any, where: str) -> tuple[int, str, str | None]:
    """A tRPC error shape; returns (httpStatus, code name, path)."""
    assert isinstance(shape, dict), where
    assert {"message", "code", "data"} <= shape.keys(), where
    assert isinstance(shape["message"], str), where
    assert type(shape["code"]) is int, where
    data = shape["data"]
    assert isinstance(data, dict), where
    assert {"code", "httpStatus", "path"} <= data.keys(), where
    assert "stack" not in data, f"stack trace outside dev mode: {where}"
    name, status, path = data["code"], data["httpStatus"], data["path"]
    assert name in CODES, where
    assert type(status) is int, where
    assert (shape["code"], status) == CODES[name], f"code/status do not match {name}: {where}"
    assert path is None or isinstance(path, str), where
    return status, name, path


def check_envelope(item: Any, transformer: str, where: str) -> tuple[int, str | None, str | None]:
    """One response envelope; returns (status it maps to, error code name, error path)."""
    assert isinstance(item, dict) and len(item) == 1, where
    if "result" in item:
        result = item["result"]
        assert isinstance(result, dict) and set(result) == {"data"}, where
        if transformer == "superjson":
            data = result["data"]
            assert isinstance(data, dict) and set(data) in ({"json"}, {"json", "meta"}), where
        return 200, None, None
    assert "error" in item, where
    shape = item["error"]
    if transformer == "superjson":
        assert isinstance(shape, dict) and set(shape) == {"json"}, where
        shape = shape["json"]
    status, name, path = check_shape(shape, where)
    return status, name, path


@dataclass
class Expect:
    """What a request may get, beyond being well formed."""

    method: str
    paths: list[str] | None = None  #: the calls, decoded, when the test knows them
    batch: bool = False
    lenient_ticks: bool = False  #: ticks may fail with 500 (sample router: int(lastEventId))

    def allows(self, status: int, name: str | None) -> bool:
        return status < 500


@dataclass
class Outcome:
    status: int
    kind: str  #: "head", "sse", "single" (one envelope), "batch" (an array), "jsonl"
    items: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    body: Any = None


def assert_trpc(reply: Reply, transformer: str, expect: Expect) -> Outcome:
    """The one property: a well-formed tRPC answer, never a 5xx."""
    where = reply.describe()
    assert reply.status < 500, f"5xx: {where}"
    if expect.method == "HEAD":
        assert reply.status == 204 and reply.body == b"", where
        return Outcome(204, "head")
    if reply.is_sse:
        return Outcome(200, "sse", items=check_sse(reply, transformer, expect, where))
    assert reply.content_type.startswith("application/json"), where
    try:
        body = json.loads(reply.body)
    except ValueError:
        return check_jsonl(reply, transformer, expect, where)
    if isinstance(body, dict):
        status, name, path = check_envelope(body, transformer, where)
        assert reply.status == status, f"status differs from the envelope: {where}"
        assert status >= 200 and expect.allows(status, name), f"5xx: {where}"
        if status == 200:
            assert expect.paths is None or (
                len(expect.paths) == 1 and not expect.batch and expect.paths[0] in KINDS
            ), f"success for an unknown call: {where}"
        elif path is not None and expect.paths is not None and not expect.batch:
            assert [path] == expect.paths, f"error names another path: {where}"
        return Outcome(reply.status, "single", [(status, name, path)], body)
    assert isinstance(body, list) and body, where
    items = [check_envelope(item, transformer, where) for item in body]
    statuses = {status for status, _, _ in items}
    assert all(expect.allows(status, name) for status, name, _ in items), f"5xx: {where}"
    assert reply.status == (statuses.pop() if len(statuses) == 1 else 207), where
    check_batch_items(items, expect, where)
    return Outcome(reply.status, "batch", items, body)


def check_batch_items(
    items: list[tuple[int, str | None, str | None]], expect: Expect, where: str
) -> None:
    """One answer per call, in order, each naming its own path."""
    if expect.paths is None:
        return
    assert expect.batch, f"an array for a single call: {where}"
    assert len(items) == len(expect.paths), where
    for (status, _, path), sent in zip(items, expect.paths, strict=True):
        if status == 200:
            assert sent in KINDS, f"success for unknown path {sent!r}: {where}"
        else:
            assert path == sent, f"item path {path!r} is not {sent!r}: {where}"


def check_sse(reply: Reply, transformer: str, expect: Expect, where: str) -> list[Any]:
    assert reply.status == 200 and expect.method in ("GET", "POST"), where
    assert expect.paths is None or (
        len(expect.paths) == 1 and KINDS.get(expect.paths[0]) == SUBSCRIPTION
    ), f"a stream for a non-subscription: {where}"
    events = reply.events
    assert events, where
    assert events[0].get("event") == "connected", where
    assert isinstance(json.loads(events[0]["data"]), dict), where
    items = []
    for index, event in enumerate(events[1:], start=1):
        kind = event.get("event", "message")
        assert set(event) <= {"event", "data", "id"}, where
        if kind == "ping" or kind == "return":
            assert event.get("data", "") == "", where
        elif kind == "message":
            value = json.loads(event["data"])
            if transformer == "superjson":
                assert isinstance(value, dict) and "json" in value, where
        elif kind == "serialized-error":
            shape = json.loads(event["data"])
            if transformer == "superjson":
                assert isinstance(shape, dict) and set(shape) == {"json"}, where
                shape = shape["json"]
            status, name, path = check_shape(shape, where)
            if status >= 500:
                # The sample router's `ticks` does int(lastEventId): a non-numeric resume id
                # is its 500, not the server's.
                lenient = expect.lenient_ticks
                assert lenient and name == "INTERNAL_SERVER_ERROR", where
            items.append((status, name, path))
        else:
            raise AssertionError(f"unknown SSE event {kind!r}: {where}")
        if kind in ("return", "serialized-error"):
            assert index == len(events) - 1, f"events after the end: {where}"
    return items


def check_jsonl(reply: Reply, transformer: str, expect: Expect, where: str) -> Outcome:
    """A streamed batch (httpBatchStreamLink): a head line, then one line per call."""
    assert reply.status == 200, where
    lines = [json.loads(line) for line in reply.body.splitlines() if line]
    if transformer == "superjson":
        assert all(isinstance(line, dict) and set(line) == {"json"} for line in lines), where
        lines = [line["json"] for line in lines]
    head, rest = lines[0], lines[1:]
    # Form B of TRPC-PROTOCOL.md 5.4: one promise per call in the head, one line per call.
    assert isinstance(head, dict) and len(rest) == len(head), where
    chunk_ids = {}
    for index, encoded in head.items():
        assert encoded[0] == [0] and len(encoded[1]) == 3, where
        chunk_ids[encoded[1][2]] = index
    by_index = {}
    for line in rest:
        chunk, status, payload = line
        assert chunk in chunk_ids and status == 0, where
        by_index[int(chunk_ids.pop(chunk))] = check_envelope(payload[0][0], "none", where)
    items = [by_index[index] for index in sorted(by_index)]
    assert list(sorted(by_index)) == list(range(len(items))), where
    assert all(expect.allows(status, name) for status, name, _ in items), f"5xx: {where}"
    check_batch_items(items, expect, where)
    return Outcome(200, "jsonl", items)


# --------------------------------------------------------------------------------------------
# Strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["2024-05-06T00:00:00.000Z", "1", "-1", "x", "NaN", "Infinity"])
)
keys = st.sampled_from(FIELDS) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)
meta_paths = st.sampled_from(
    ["", "0", "1", "a", "a.b", "text", "extra", "extra.k", "tags.0", "name", "at", "²", "-1"]
) | st.text(alphabet="ab01.\\", max_size=5)
SUPERJSON_TYPES = ["undefined", "Date", "bigint", "number", "set", "map", "regexp", "URL", "Error"]
annotations = (
    st.sampled_from(SUPERJSON_TYPES)
    | st.sampled_from(
        ["symbol", ["typed-array", "Uint8Array"], ["class", "X"], ["custom", "y"], "Map"]
    )
    | json_values
)
meta_nodes = st.recursive(
    st.tuples(annotations).map(list),
    lambda inner: (
        st.tuples(annotations, st.dictionaries(meta_paths, inner, max_size=2)).map(list)
        | json_values
    ),
    max_leaves=4,
)
metas = (
    st.fixed_dictionaries(
        {},
        optional={
            "values": meta_nodes
            | st.dictionaries(meta_paths, meta_nodes, max_size=3)
            | json_values,
            "v": st.sampled_from([1, 0, 2, None, "1"]),
            "referentialEqualities": json_values,
        },
    )
    | json_values
)


def value_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path into a JSON value, as superjson names them (keys, array indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from value_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from value_paths(item, (*prefix, str(index)))


def superjson_path(parts: tuple[str, ...]) -> str:
    return ".".join(p.replace("\\", "\\\\").replace(".", "\\.") for p in parts)


@st.composite
def superjson_inputs(draw: st.DrawFn, value: st.SearchStrategy[Any] = json_values) -> Any:
    """An envelope whose meta annotates paths that exist in its json (or nearly exist), with
    any annotation: what a buggy or hostile client could send."""
    value = draw(value)
    paths = list(value_paths(value))

    def a_path() -> str:
        parts = draw(st.sampled_from(paths))
        tweak = draw(st.sampled_from(["as-is", "as-is", "as-is", "deeper", "sibling"]))
        if tweak == "deeper":
            parts = (*parts, draw(st.sampled_from(["x", "0", "\u00b2", "-1", ""])))
        elif tweak == "sibling" and parts:
            odd = draw(st.sampled_from(["\u00b2", "\u0661", "01", "-1", "99", "x", " 0"]))
            parts = (*parts[:-1], odd)
        return superjson_path(parts)

    def a_node(depth: int = 0) -> list[Any]:
        annotation = draw(annotations)
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            return [annotation, {a_path(): a_node(depth + 1)}]
        return [annotation]

    shape = draw(st.sampled_from(["root", "paths", "paths", "tree"]))
    if shape == "root":
        values: Any = a_node()
    elif shape == "paths":
        values = {a_path(): a_node() for _ in range(draw(st.integers(1, 3)))}
    else:
        values = [draw(annotations), {a_path(): a_node(1)}]
    meta: dict[str, Any] = {"values": values}
    version = draw(st.sampled_from([1, 1, 0, None]))
    if version is not None:
        meta["v"] = version
    return {"json": value, "meta": meta}


@st.composite
def envelopes(draw: st.DrawFn, transformer: str = "superjson") -> Any:
    """One call's input value as a client might send it, or nearly."""
    value = draw(json_values)
    if transformer == "none":
        return value
    forms = ["json", "json+meta", "superjson", "superjson", "bare", "meta-only", "undefined"]
    form = draw(st.sampled_from(forms))
    if form == "superjson":
        return draw(superjson_inputs(st.just(value)))
    if form == "json":
        return {"json": value}
    if form == "json+meta":
        return {"json": value, "meta": draw(metas)}
    if form == "meta-only":
        return {"meta": draw(metas)}
    if form == "undefined":
        return {"json": None, "meta": {"values": ["undefined"], "v": 1}}
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON; NaN/Infinity come out as JavaScript would not send them (invalid JSON)."""
    return json.dumps(value, separators=(",", ":")).encode()


def input_bytes(transformer: str) -> st.SearchStrategy[bytes]:
    return (
        envelopes(transformer).map(dumps)
        | st.binary(max_size=40)
        | st.text(max_size=20).map(str.encode)
        | st.sampled_from([b"", b"null", b"{}", b"[]", b'{"json":', b"\xff\xfe", b"{}}", b"1e400"])
    )


def enc(raw: bytes) -> str:
    return urllib.parse.quote_from_bytes(raw, safe="")


def enc_path(path: str) -> str:
    """One path for the URL; "." and ".." encoded, or the client would resolve them away."""
    if path in (".", ".."):
        return "%2E" * len(path)
    return urllib.parse.quote(path, safe="")


def enc_all(raw: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in raw)


def invalid_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return True
    return False


# A path segment (no comma).
random_names = st.text(
    alphabet=st.characters(exclude_characters=",", exclude_categories=("Cs",)), max_size=12
).filter(lambda p: p not in NEVER_GENERATED)
path_names = st.sampled_from(KNOWN) | st.sampled_from(NEAR_MISSES) | random_names
call_paths = st.sampled_from([p for p in KNOWN if p != "forever"]) | st.sampled_from(NEAR_MISSES)


def url(server: Server, path: str, query: str = "") -> str:
    return f"{server.url}{PREFIX}{path}" + (f"?{query}" if query else "")


def resumes(query: bytes, headers: dict[str, str], body: bytes | None) -> bool:
    """Whether a request carries a resume id anywhere (see Expect.lenient_ticks)."""
    decoded = urllib.parse.unquote_to_bytes(query.replace(b"+", b" "))
    return (
        b"astEventId" in decoded
        or b"ast-Event-Id" in decoded
        or b"lastEventId" in (body or b"")
        or "last-event-id" in headers
    )


# --------------------------------------------------------------------------------------------
# Properties


@fuzz(60)
@given(data=st.data())
def test_random_json_inputs_by_get(client: httpx.Client, server: Server, data: st.DataObject):
    """Random JSON values (and random bytes) as `input` of a single GET."""
    path = data.draw(path_names, label="path")
    raw = data.draw(input_bytes(server.transformer), label="input")
    omit = not raw and data.draw(st.booleans(), label="omit input")
    query = "" if omit else f"input={enc(raw)}"
    reply = send(client, "GET", url(server, enc_path(path), query))
    expect = Expect("GET", [path], lenient_ticks=b"lastEventId" in raw)
    outcome = assert_trpc(reply, server.transformer, expect)
    if path not in KINDS:
        assert (outcome.status, outcome.items[0][1]) == (404, "NOT_FOUND"), reply.describe()
    elif KINDS[path] == MUTATION:
        assert outcome.status == 405, reply.describe()


input_shaped = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars,
        "at": scalars,
        "a": scalars,
        "b": scalars,
        "text": scalars,
        "tags": st.lists(scalars, max_size=3) | scalars,
        "extra": json_values,
        "count": st.integers(-2, 5) | scalars,
        "lastEventId": st.sampled_from(["1", "2"]),
        "failAfter": st.integers(0, 3) | scalars,
    },
)


@fuzz(150)
@given(
    path=st.sampled_from(["echo", "greet", "noinput", "math.add", "ticks", "nope"]),
    sent=superjson_inputs(input_shaped | json_values),
)
def test_superjson_meta(client: httpx.Client, sj: Server, path: str, sent: Any):
    """Envelopes whose `meta` annotates real (or nearly real) paths with any annotation: the
    input is revived or refused as PARSE_ERROR/BAD_REQUEST, never a 500."""
    raw = dumps(sent)
    if KINDS.get(path) == MUTATION:
        headers = {"content-type": "application/json"}
        reply = send(client, "POST", url(sj, path), body=raw, headers=headers)
        method = "POST"
    else:
        reply = send(client, "GET", url(sj, path, f"input={enc(raw)}"))
        method = "GET"
    # Known 500s are tolerated here, so that the search goes on past them.
    lenient = b"lastEventId" in raw
    expect = Expect(method, [path], lenient_ticks=lenient)
    assert_trpc(reply, sj.transformer, expect)


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "text/plain;charset=UTF-8",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "",
]
# Header values as they can travel (printable ASCII, no surrounding space); other bytes in
# headers go through a raw socket in test_non_utf8_bytes_in_url_and_headers.
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
).map(str.strip)
content_types = st.sampled_from(CONTENT_TYPES) | header_values


@fuzz(60)
@given(data=st.data())
def test_random_post_bodies(client: httpx.Client, server: Server, data: st.DataObject):
    """Random bytes and random JSON as POST bodies, with and without a JSON content type."""
    path = data.draw(path_names, label="path")
    body = data.draw(input_bytes(server.transformer) | st.binary(max_size=300), label="body")
    content_type = data.draw(content_types, label="content-type")
    headers = {} if content_type is None else {"content-type": content_type}
    reply = send(client, "POST", url(server, enc_path(path)), body=body, headers=headers)
    lenient = b"lastEventId" in body
    expect = Expect("POST", [path], lenient_ticks=lenient)
    outcome = assert_trpc(reply, server.transformer, expect)
    kind = KINDS.get(path)
    if kind == SUBSCRIPTION and not server.override:
        assert outcome.status == 405, reply.describe()
    elif kind == QUERY and not server.override:
        assert outcome.status in (405, 415), reply.describe()
    json_type = content_type is not None and content_type.lower().startswith("application/json")
    if kind in (MUTATION, None) and not json_type:
        assert outcome.status in (404, 415), reply.describe()


QUERY_KEYS = ["batch", "input", "connectionParams", "lastEventId", "Last-Event-Id"]
query_keys = (
    st.sampled_from(QUERY_KEYS) | st.text(max_size=8).map(str.encode) | st.binary(max_size=6)
)
query_values = (
    st.sampled_from([b"1", b"0", b"", b"true", b"null", b"{}", b"[]", b'{"apiKey":"k"}', b"7"])
    | envelopes().map(dumps)
    | st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_values).map(dumps)
    | st.binary(max_size=30)
    | st.text(max_size=20).map(str.encode)
)


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """A query string built from arbitrary pairs, percent-encoded or nearly raw."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(query_keys)
        key = key.encode() if isinstance(key, str) else key
        value = draw(query_values)
        style = draw(st.sampled_from(["encoded", "loose", "no-equals"]))
        if style == "encoded":
            parts.append(f"{enc(key)}={enc(value)}")
        elif style == "loose":
            # Only what httpx leaves alone: '+', bare '%', '%zz', '=' and '&' inside values.
            loose = urllib.parse.quote_from_bytes(value, safe="+%=&:,")
            parts.append(f"{enc(key)}={loose}")
        else:
            parts.append(enc(key))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["%", "%zz", "&&", "=", "==", "a=%ff%fe", "+=+"])))
    order = draw(st.permutations(parts))
    return "&".join(order).encode()


header_sets = st.fixed_dictionaries(
    {},
    optional={
        "trpc-accept": st.sampled_from(["application/jsonl", "application/json", "x"]),
        "accept": st.sampled_from(["text/event-stream", "application/jsonl", "*/*", "x"]),
        "last-event-id": header_values,
        "content-type": st.sampled_from(["application/json", "text/plain"]),
    },
)


@fuzz(80)
@given(data=st.data())
def test_random_query_strings(client: httpx.Client, server: Server, data: st.DataObject):
    """Arbitrary query keys and values (batch, input, connectionParams, lastEventId, ...)."""
    paths = data.draw(st.lists(path_names, min_size=1, max_size=4), label="paths")
    query = data.draw(query_strings(), label="query")
    method = data.draw(st.sampled_from(["GET", "GET", "POST", "HEAD"]), label="method")
    headers = data.draw(header_sets, label="headers")
    body = data.draw(input_bytes(server.transformer), label="body") if method == "POST" else None
    target = url(server, ",".join(enc_path(p) for p in paths), query.decode())
    reply = send(client, method, target, body=body, headers=headers)
    expect = Expect(method, lenient_ticks=resumes(query, headers, body))
    assert_trpc(reply, server.transformer, expect)


@st.composite
def batch_inputs(draw: st.DrawFn, transformer: str, count: int) -> tuple[str, bytes | None]:
    """(shape, raw input) for a batch: an object keyed by index, or not an object at all."""
    shape = draw(st.sampled_from(["object", "object", "object", "absent", "scalar", "invalid"]))
    if shape == "absent":
        return shape, None
    if shape == "scalar":
        return shape, dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    if shape == "invalid":
        return shape, draw(
            st.sampled_from([b"{", b"{]", b"\xff", b'{"0":}', b"[", b'{"0":{"json":1}'])
        )
    index_keys = st.integers(0, count + 1).map(str) | st.sampled_from(["-1", "01", " 0", "x"])
    inputs = draw(st.dictionaries(index_keys, envelopes(transformer), max_size=count + 2))
    return shape, dumps(inputs)


def allowed(kind: str, method: str, server: Server) -> bool:
    if kind == MUTATION:
        return method == "POST"
    return method == "GET" or server.override


@fuzz(80)
@given(data=st.data())
def test_random_batches(client: httpx.Client, server: Server, data: st.DataObject):
    """Random batch shapes, checked against what the contract says of each shape."""
    many = st.lists(call_paths, min_size=MAX_BATCH - 2, max_size=MAX_BATCH + 8)
    paths = data.draw(
        st.lists(path_names.filter(lambda p: "," not in p), min_size=1, max_size=6) | many,
        label="paths",
    )
    method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
    batch_flag = data.draw(st.sampled_from(["1", "1", "1", "0", "true", None]), label="batch")
    shape, raw = data.draw(batch_inputs(server.transformer, len(paths)), label="input")
    comma = data.draw(st.sampled_from([",", "%2C"]), label="comma")
    json_type = data.draw(st.booleans() | st.just(True), label="json content-type")
    stream = data.draw(st.sampled_from([None, None, "trpc-accept", "accept"]), label="jsonl")
    query = [] if batch_flag is None else [f"batch={batch_flag}"]
    headers = {}
    if stream == "trpc-accept":
        headers["trpc-accept"] = "application/jsonl"
    elif stream == "accept":
        headers["accept"] = "application/json, application/jsonl;q=0.9"
    body = None
    if method == "GET" and raw is not None:
        query.append(f"input={enc(raw)}")
    if method == "POST":
        body = raw or b""
        headers["content-type"] = "application/json" if json_type else "text/plain"
    target = url(server, comma.join(enc_path(p) for p in paths), "&".join(query))
    reply = send(client, method, target, body=body, headers=headers)
    is_batch = batch_flag == "1"
    calls = paths if is_batch else [",".join(paths)]
    expect = Expect(method, calls, batch=is_batch)
    outcome = assert_trpc(reply, server.transformer, expect)
    bad_ct = method == "POST" and not json_type
    where = reply.describe()

    if not is_batch:
        assert outcome.kind in ("single", "sse"), where
        return
    kinds = {KINDS[p] for p in paths if p in KINDS}
    if len(paths) > MAX_BATCH or len(kinds) > 1 or SUBSCRIPTION in kinds:
        assert outcome.kind == "single", where
        assert outcome.items[0][1:] == ("BAD_REQUEST", None) or (
            bad_ct and outcome.items[0][1] == "UNSUPPORTED_MEDIA_TYPE"
        ), where
        return
    if bad_ct:
        assert outcome.kind == "single" and outcome.items[0][1] == "UNSUPPORTED_MEDIA_TYPE", where
        return
    assert outcome.kind == ("batch" if stream is None else "jsonl"), where
    for (status, name, _), path in zip(outcome.items, paths, strict=True):
        if path not in KINDS:
            assert name == "NOT_FOUND", where
        elif not allowed(KINDS[path], method, server):
            assert name == "METHOD_NOT_SUPPORTED", where
        elif shape in ("scalar", "invalid"):
            assert name in ("BAD_REQUEST", "PARSE_ERROR"), where
        else:
            assert status == 200 or 400 <= status < 500, where


@fuzz(60)
@given(
    raw_path=st.binary(max_size=24)
    | st.text(max_size=16).map(str.encode)
    | st.sampled_from([b"..", b"../..", b"//", b"%", b"%zz", b"?", b"#", b";x", b"\\"]),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
)
def test_random_paths(client: httpx.Client, sj: Server, raw_path: bytes, method: str):
    """Any path under the prefix, percent-encoded byte by byte: a tRPC 404 unless it is known."""
    assume(raw_path.decode("utf-8", "replace") not in NEVER_GENERATED)
    headers = {"content-type": "application/json"} if method == "POST" else {}
    body = b"" if method == "POST" else None
    reply = send(client, method, url(sj, enc_all(raw_path)), headers=headers, body=body)
    decoded = raw_path.decode("utf-8", "replace")
    outcome = assert_trpc(reply, sj.transformer, Expect(method, [decoded]))
    if method != "HEAD" and decoded not in KINDS:
        assert (outcome.status, outcome.items[0][1:]) == (404, ("NOT_FOUND", decoded))


# Methods the HTTP parser knows (CONNECT left out: its target is an authority).
HTTP_METHODS = [
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "REPORT",
    "PURGE",
    "LINK",
    "UNLINK",
]


@fuzz(40)
@given(
    method=st.sampled_from(HTTP_METHODS),
    path=st.sampled_from(KNOWN + NEAR_MISSES[:4]),
    body=st.sampled_from([b"", b'{"json":{"a":1,"b":2}}', b"\xff"]),
)
def test_other_http_methods(client: httpx.Client, sj: Server, method: str, path: str, body: bytes):
    """Every other method: METHOD_NOT_SUPPORTED (405) as a tRPC envelope, with Allow."""
    headers = {"content-type": "application/json"}
    reply = send(client, method, url(sj, enc_path(path)), body=body, headers=headers)
    outcome = assert_trpc(reply, sj.transformer, Expect(method, [path]))
    assert outcome.items[0][1] == "METHOD_NOT_SUPPORTED", reply.describe()
    assert "allow" in reply.headers, reply.describe()


@fuzz(25)
@given(method=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-_!#$%&'*+.^`|~0123456789", min_size=1))
def test_arbitrary_method_tokens(sj: Server, method: str):
    """Any method token: a tRPC 405, or the HTTP parser's own 400 for one it does not know."""
    assume(method not in ("GET", "POST", "HEAD", "CONNECT"))
    reply = send_raw(sj, raw_request(method.encode(), b"/api/trpc/noinput"), method=method)
    assert reply.status < 500, reply.describe()
    if reply.content_type.startswith("application/json"):
        outcome = assert_trpc(reply, sj.transformer, Expect(method, ["noinput"]))
        assert outcome.items[0][1] == "METHOD_NOT_SUPPORTED", reply.describe()
    else:
        assert reply.status == 400, reply.describe()


@fuzz(50)
@given(
    path=st.sampled_from(["noinput", "echo", "greet", "ticks", "math.add", "nope"]),
    junk=st.binary(min_size=1, max_size=12).filter(lambda b: any(c >= 0x80 for c in b)),
    where=st.sampled_from(["input", "key", "connectionParams", "lastEventId", "batch", "path"]),
    header=st.lists(st.integers(0x20, 0xFF).filter(lambda c: c != 0x7F), max_size=8).map(bytes),
)
def test_non_utf8_bytes_in_url_and_headers(
    sj: Server, path: str, junk: bytes, where: str, header: bytes
):
    """Percent-encoded non-UTF-8 bytes reach the server: it answers in tRPC, never 5xx."""
    pct = enc(junk).encode()
    target = b"/api/trpc/" + path.encode()
    if where == "path":
        target += pct
    elif where == "key":
        target += b"?" + pct + b"=1&input=" + pct
    else:
        target += b"?" + where.encode() + b"=" + pct
    request = raw_request(b"GET", target, [(b"last-event-id", header)] if header else [])
    reply = send_raw(sj, request)
    expect = Expect("GET", lenient_ticks=True)
    assert_trpc(reply, sj.transformer, expect)


@fuzz(25)
@given(
    junk=st.binary(min_size=1, max_size=8).filter(lambda b: any(c >= 0x80 for c in b)),
    into=st.sampled_from(["path", "query"]),
)
def test_raw_non_ascii_bytes_in_request_line(sj: Server, junk: bytes, into: str):
    """Unencoded bytes >= 0x80 in the request target: some 4xx, never 5xx, nothing breaks."""
    junk = bytes(b for b in junk if b not in b" \r\n\t#?") or b"\xff"
    target = b"/api/trpc/noinput" + (junk if into == "path" else b"?input=" + junk)
    reply = send_raw(sj, raw_request(b"GET", target))
    assert 400 <= reply.status < 500, reply.describe()
    if reply.content_type.startswith("application/json"):
        assert_trpc(reply, sj.transformer, Expect("GET"))


@fuzz(40)
@given(
    body=st.binary(min_size=1, max_size=200).filter(invalid_utf8),
    path=st.sampled_from(["math.add", "conflict", "echo", "nope", "math.add,conflict"]),
    batch=st.booleans(),
)
def test_non_utf8_bodies(client: httpx.Client, sj: Server, body: bytes, path: str, batch: bool):
    """Invalid UTF-8 as a JSON body, alone and inside otherwise valid JSON strings."""
    for payload in (body, b'{"json":{"a":"' + body + b'","b":1}}', b'{"0":' + body + b"}"):
        target = url(sj, path, "batch=1" if batch else "")
        headers = {"content-type": "application/json"}
        reply = send(client, "POST", target, body=payload, headers=headers)
        paths = path.split(",") if batch else [path]
        outcome = assert_trpc(reply, sj.transformer, Expect("POST", paths, batch=batch))
        assert outcome.status >= 400 or outcome.kind == "batch", reply.describe()


def nested(depth: int, style: str) -> str:
    """JSON text nesting `depth` containers ("mixed": `depth` arrays, every other one holding
    an object, so value_depth(depth) levels in all)."""
    if style == "array":
        return "[" * depth + "1" + "]" * depth
    if style == "object":
        return '{"k":' * depth + "1" + "}" * depth
    opening = "".join('[{"k":' if i % 2 else "[" for i in range(depth))
    closing = "".join("}]" if i % 2 else "]" for i in reversed(range(depth)))
    return opening + "1" + closing


def value_depth(depth: int, style: str) -> int:
    return depth if style != "mixed" else depth + depth // 2


@fuzz(60)
@given(
    depth=st.integers(1, 140),
    style=st.sampled_from(["array", "object", "mixed"]),
    form=st.sampled_from(["single", "batch"]),
)
def test_nesting_depth_limit(
    client: httpx.Client, server: Server, depth: int, style: str, form: str
):
    """An input nesting at most 64 levels is served; one level more is a BAD_REQUEST."""
    inner = nested(depth, style)
    value = f'{{"extra":{{"k":{inner}}}}}'  # echo's input: 2 levels + the nested value
    levels = 2 + value_depth(depth, style)
    call = f'{{"json":{value}}}' if server.transformer == "superjson" else value
    raw = call if form == "single" else f'{{"0":{call}}}'
    query = f"input={enc(raw.encode())}" + ("&batch=1" if form == "batch" else "")
    reply = send(client, "GET", url(server, "echo", query))
    outcome = assert_trpc(reply, server.transformer, Expect("GET", ["echo"], form == "batch"))
    status, name, _ = outcome.items[0]
    if levels <= MAX_DEPTH:
        assert status == 200, reply.describe()
    else:
        assert (status, name) == (400, "BAD_REQUEST"), reply.describe()


@fuzz(12)
@given(
    depth=st.sampled_from([65, 100, 1000, 20_000, 200_000]),
    style=st.sampled_from(["array", "object", "mixed", "open"]),
    where=st.sampled_from(["body", "batch-body", "meta", "get", "connectionParams"]),
)
def test_very_deep_inputs(client: httpx.Client, sj: Server, depth: int, style: str, where: str):
    """Far deeper than the limit, balanced or not, anywhere: a 4xx, quickly, never a 5xx."""
    inner = "[" * depth if style == "open" else nested(depth, style)
    if where == "get":
        inner = inner[: MAX_INPUT - 100]
        reply = get_long(sj, "echo", f"input={enc(inner.encode())}")
    elif where == "connectionParams":
        reply = get_long(sj, "ticks", f"connectionParams={enc(inner.encode())}")
    else:
        body = {
            "body": f'{{"json":{{"a":{inner},"b":1}}}}',
            "batch-body": f'{{"0":{{"json":{inner}}}}}',
            "meta": f'{{"json":{{"a":1,"b":2}},"meta":{{"values":{inner}}}}}',
        }[where]
        query = "batch=1" if where == "batch-body" else ""
        headers = {"content-type": "application/json"}
        reply = send(
            client, "POST", url(sj, "math.add", query), body=body.encode(), headers=headers
        )
    outcome = assert_trpc(reply, sj.transformer, Expect(reply_method(where)))
    assert outcome.items[0][0] in (400, 413), reply.describe()


def reply_method(where: str) -> str:
    return "GET" if where in ("get", "connectionParams") else "POST"


@fuzz(40)
@given(
    text=st.text(alphabet=st.sampled_from('[]{}"\\ax\u00e9\U0001f4a5'), max_size=300),
    tags=st.lists(st.text(alphabet="[]{}\\\"'", max_size=80), max_size=3),
)
def test_brackets_in_strings_are_not_nesting(
    client: httpx.Client, server: Server, text: str, tags: list[str]
):
    """Brackets, quotes and backslashes inside strings do not count as depth: echo round-trips."""
    value = {"text": text, "tags": tags}
    call = {"json": value} if server.transformer == "superjson" else value
    reply = send(client, "GET", url(server, "echo", f"input={enc(dumps(call))}"))
    outcome = assert_trpc(reply, server.transformer, Expect("GET", ["echo"]))
    assert outcome.status == 200, reply.describe()
    data = outcome.body["result"]["data"]
    output = data["json"] if server.transformer == "superjson" else data
    assert output == {"text": text, "tags": tags, "extra": None}


@fuzz(12)
@given(
    size=st.integers(MAX_INPUT + 1, 4 * MAX_INPUT),
    encoding=st.sampled_from(["plain", "percent-all"]),
)
def test_oversized_get_input(client: httpx.Client, sj: Server, size: int, encoding: str):
    """A GET input over 64 KiB (decoded) is PAYLOAD_TOO_LARGE, however long its URL."""
    raw = b'{"json":{"text":"' + b"a" * (size - 20) + b'"}}'
    assert len(raw) > MAX_INPUT
    query = "input=" + (raw.decode() if encoding == "plain" else enc_all(raw))
    reply = get_long(sj, "echo", query)
    outcome = assert_trpc(reply, sj.transformer, Expect("GET", ["echo"]))
    assert (outcome.status, outcome.items[0][1]) == (413, "PAYLOAD_TOO_LARGE"), reply.describe()


@fuzz(8)
@given(size=st.integers(MAX_INPUT - 2000, MAX_INPUT))
def test_get_input_just_under_the_limit(client: httpx.Client, sj: Server, size: int):
    """Just under 64 KiB, even fully percent-encoded (a ~192 KiB URL), is served."""
    raw = b'{"json":{"text":"' + b"a" * (size - 20) + b'"}}'
    assert len(raw) <= MAX_INPUT
    query = "input=" + enc_all(raw)
    reply = get_long(sj, "echo", query)
    outcome = assert_trpc(reply, sj.transformer, Expect("GET", ["echo"]))
    assert outcome.status == 200, reply.describe()


@fuzz(8)
@given(
    size=st.integers(MAX_BODY + 1, MAX_BODY + 512 * 1024),
    chunked=st.booleans(),
    path=st.sampled_from(["math.add", "nope", "math.add,conflict"]),
)
def test_oversized_body(client: httpx.Client, sj: Server, size: int, chunked: bool, path: str):
    """A body over 1 MiB is PAYLOAD_TOO_LARGE, declared or chunked, known path or not."""
    body = b'{"json":{"a":1,"b":2,"pad":"' + b"x" * size + b'"}}'
    content: Any = (
        iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    )
    query = "batch=1" if "," in path else ""
    with client.stream(
        "POST", url(sj, path, query), content=content, headers={"content-type": "application/json"}
    ) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        reply = Reply(response.status_code, headers, response.read())
    outcome = assert_trpc(reply, sj.transformer, Expect("POST"))
    assert (outcome.status, outcome.items[0][1]) == (413, "PAYLOAD_TOO_LARGE"), reply.describe()


def expected_ticks(value: Any, resume_id: str | None) -> list[dict[str, Any]] | None:
    """The events `ticks` sends for a plain, valid input (None when the input is not one)."""
    if not isinstance(value, dict) or not set(value) <= {"count", "failAfter", "lastEventId"}:
        return None
    count, fail_after = value.get("count", 3), value.get("failAfter")
    last = resume_id or value.get("lastEventId")
    if (
        type(count) is not int
        or count > 12
        or (fail_after is not None and type(fail_after) is not int)
    ):
        return None
    events: list[dict[str, Any]] = [{"event": "connected", "data": {}}]
    for n in range(int(last) + 1 if last else 1, count + 1):
        if fail_after is not None and n > fail_after:
            error = {
                "message": f"ticks failed after {fail_after}",
                "code": -32009,
                "data": {"code": "CONFLICT", "httpStatus": 409, "path": "ticks"},
            }
            return [*events, {"event": "serialized-error", "data": {"json": error}}]
        events.append({"data": {"json": {"n": n}}, "id": str(n)})
    return [*events, {"event": "return", "data": ""}]


@fuzz(40)
@given(
    path=st.sampled_from(["ticks", "ticks", "ticks", "forever"]),
    value=st.fixed_dictionaries(
        {},
        optional={
            "count": st.integers(-2, 8) | st.integers(),
            "failAfter": st.none() | st.integers(-1, 5),
            "lastEventId": st.none() | st.sampled_from(["", "0", "2", "5"]),
        },
    )
    | json_values,
    form=st.sampled_from(["json", "json", "bare", "meta", "absent"]),
    resume=st.sampled_from([None, None, "query", "header"]),
    resume_id=st.sampled_from(["1", "3", "0", ""]),
    params=st.none() | st.sampled_from([b'{"apiKey":"k"}', b"{}", b'{"a":1}', b"[]", b"x"]),
)
def test_subscriptions(
    client: httpx.Client,
    sj: Server,
    path: str,
    value: Any,
    form: str,
    resume: str | None,
    resume_id: str,
    params: bytes | None,
):
    """Subscriptions with random inputs, resume ids and connectionParams: a well-formed SSE
    stream (connected, data with ids, pings, then return or serialized-error) or a tRPC error
    before it; for a plain valid `ticks` input, exactly the events the contract implies."""
    query = []
    sent: Any = None
    if form != "absent":
        sent = {"json": value}
        if form == "bare":
            sent = value
        elif form == "meta":
            sent = {"json": value, "meta": {"values": {"count": ["bigint"]}, "v": 1}}
        query.append(f"input={enc(dumps(sent))}")
    headers = {}
    if resume == "query":
        query.append(f"lastEventId={resume_id}")
    elif resume == "header":
        headers["last-event-id"] = resume_id
    if params is not None:
        query.append(f"connectionParams={enc(params)}")
    events = 16 if path == "ticks" else 4
    reply = send(client, "GET", url(sj, path, "&".join(query)), headers=headers, max_events=events)
    expect = Expect("GET", [path], lenient_ticks=b"lastEventId" in dumps(sent))
    outcome = assert_trpc(reply, sj.transformer, expect)
    if params not in (None, b'{"apiKey":"k"}', b"{}"):
        assert (outcome.kind, outcome.items[0][1]) == ("single", "PARSE_ERROR"), reply.describe()
        return
    assert outcome.kind == "sse", reply.describe()
    if path == "forever" and form in ("json", "absent"):  # its input is none: anything goes
        assert [e.get("event") for e in reply.events[1:]] == [None] * 3, reply.describe()
        return
    if path == "forever":
        return
    plain = value if form == "json" else {} if form == "absent" else None
    if form == "meta" and isinstance(value, dict) and "count" in value:
        plain = value
    expected = expected_ticks(plain, resume_id if resume else None)
    if expected is not None:
        events = [
            {**e, "data": json.loads(e["data"]) if e["data"] else ""}
            for e in reply.events
            if e.get("event") != "ping"
        ]
        assert events == expected, reply.describe()


FULL_REQUESTS = [
    raw_request(b"GET", b"/api/trpc/echo?input=%7B%22json%22%3A%7B%22text%22%3A%22hi%22%7D%7D"),
    raw_request(
        b"POST",
        b"/api/trpc/math.add,conflict?batch=1",
        [(b"content-type", b"application/json")],
        b'{"0":{"json":{"a":1,"b":2}},"1":{"json":null}}',
    ),
    raw_request(b"GET", b"/api/trpc/ticks?input=%7B%22json%22%3A%7B%22count%22%3A2%7D%7D"),
    raw_request(b"GET", b"/api/trpc/forever"),
    raw_request(b"POST", b"/api/trpc/math.add", [(b"transfer-encoding", b"chunked")], b""),
]


@fuzz(40)
@given(
    request=st.binary(max_size=120)
    | st.tuples(st.sampled_from(FULL_REQUESTS), st.floats(0, 1)).map(
        lambda pair: pair[0][: int(len(pair[0]) * pair[1])]
    )
    | st.sampled_from(FULL_REQUESTS),
    read=st.booleans(),
)
def test_garbage_and_abandoned_requests(sj: Server, request: bytes, read: bool):
    """Random bytes on a connection, a request cut short, or a stream the client walks away
    from: whatever comes back is not a 5xx, and the server logs no error (checked after)."""
    with socket.create_connection(sj.address, timeout=3) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        if not read:
            return  # the client leaves at once, perhaps in the middle of a stream
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(OSError):
            while len(answer) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    if answer.startswith(b"HTTP/"):
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:500]


# --------------------------------------------------------------------------------------------
# Bugs found by the properties above, each reduced to one request. They fail until fixed.


@pytest.mark.parametrize(
    ("raw_path", "decoded"),
    [("a%0Ab", "a\nb"), ("noinput%0A", "noinput\n"), ("%0A", "\n"), ("boom%0A", "boom\n")],
)
def test_a_newline_is_part_of_the_path(
    client: httpx.Client, sj: Server, raw_path: str, decoded: str
):
    """A path holding a newline is an unknown procedure: a tRPC NOT_FOUND naming that path.

    The route `{path:path}` is a regex whose `.` does not match "\\n" and whose `$` also
    matches before a final "\\n": `a\\nb` falls through to Starlette's plain-text 404, and
    `noinput\\n` (or `boom\\n`) silently runs `noinput` (or `boom`).
    """
    reply = send(client, "GET", url(sj, raw_path))
    assert reply.content_type.startswith("application/json"), reply.describe()
    outcome = assert_trpc(reply, sj.transformer, Expect("GET", [decoded]))
    assert (outcome.status, outcome.items[0][1:]) == (404, ("NOT_FOUND", decoded))


def test_batch_depth_limit_matches_single_calls(client: httpx.Client, server: Server):
    """A batch item nesting 65 levels is refused like the same input in a single call.

    The resolver allows a batch two wrapper levels (`wrappers = 2 if is_batch`), but the
    batch object `{"0": ...}` adds only one, so a batch accepts 65 levels where a single
    call stops at 64.
    """
    transformer = server.transformer
    value = '{"extra":{"k":' + "[" * 63 + "1" + "]" * 63 + "}}"  # 65 levels
    call = f'{{"json":{value}}}' if transformer == "superjson" else value
    single = send(client, "GET", url(server, "echo", f"input={enc(call.encode())}"))
    assert single.status == 400, single.describe()
    batch = f'{{"0":{call}}}'
    reply = send(client, "GET", url(server, "echo", f"batch=1&input={enc(batch.encode())}"))
    outcome = assert_trpc(reply, transformer, Expect("GET", ["echo"], batch=True))
    assert outcome.items[0][:2] == (400, "BAD_REQUEST"), reply.describe()


@pytest.mark.parametrize(
    "sent",
    [
        # `number` on an array: `value not in _NUMBERS` hashes the list -> TypeError.
        {"json": [], "meta": {"values": ["number"], "v": 1}},
        {"json": {"text": "x", "tags": []}, "meta": {"values": {"tags": ["number"]}, "v": 1}},
        {"json": {"text": "x", "extra": {}}, "meta": {"values": {"extra": ["number"]}}},
        # "²".isdigit() is True but int("²") raises ValueError (array index in a meta path).
        {"json": [1, 2], "meta": {"values": {"\u00b2": ["undefined"]}, "v": 1}},
        {"json": {"text": "x", "tags": ["a"]}, "meta": {"values": {"tags.\u00b2": ["Date"]}}},
    ],
)
def test_malformed_superjson_meta_is_a_parse_error(client: httpx.Client, sj: Server, sent: Any):
    """A malformed superjson `meta` is a PARSE_ERROR (400), never a 500 (API.md section 1:
    "No input, however malformed or large, produces a 500")."""
    raw = dumps(sent)
    reply = send(client, "GET", url(sj, "echo", f"input={enc(raw)}"))
    outcome = assert_trpc(reply, sj.transformer, Expect("GET", ["echo"]))
    assert outcome.items[0][:2] in ((400, "PARSE_ERROR"), (400, "BAD_REQUEST")), reply.describe()


@pytest.mark.parametrize(
    "paths",
    [
        ["x" * 65530, "noinput", "echo"],  # three calls, one answer
        ["noinput", "y" * 66000],  # the second call's path is cut
        ["z" * 70000],  # a single call, answered for a shorter path
    ],
    ids=["calls-dropped", "batch-path-cut", "single-path-cut"],
)
def test_paths_past_64_kib_are_refused_whole(sj: Server, paths: list[str]):
    """A request path over 64 KiB (the URL limit is 224 KiB) is answered in full or refused
    with one clear error; it is never cut short in silence.

    rpc/_http_protocol.py keeps only the first 65,535 bytes of a long path
    (`self.url = path[:_PARSE_URL_LIMIT]`), so later calls of a batch vanish from the answer
    and the last one kept is answered under a truncated name.
    """
    batch = len(paths) > 1
    target = PREFIX + ",".join(paths) + ("?batch=1" if batch else "")
    reply = send_raw(sj, raw_request(b"GET", target.encode()))
    outcome = assert_trpc(reply, sj.transformer, Expect("GET", None, batch=batch))
    if outcome.kind == "single" and outcome.items[0][2] is None:
        assert outcome.status in (400, 413, 414), reply.describe()  # one request-level error
        return
    sent = paths if batch else [paths[0]]
    answered = [path for _, _, path in outcome.items]
    assert len(answered) == len(sent), f"{len(sent)} calls, {len(answered)} answers"
    for path, call in zip(answered, sent, strict=True):
        assert path in (None, call), f"answered for {len(path or '')} chars, sent {len(call)}"
