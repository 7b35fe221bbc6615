"""tRPC v11 HTTP semantics on plain values: parse the calls, run them, shape the response.

Knows nothing of Starlette or ASGI: it takes an HTTPRequest and returns an HTTPResponse, so it
is tested with plain values. Each call resolves to its own envelope, so one bad call never fails
its batch; only request-level faults (batch too large, mixed kinds) answer as a single error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import msgspec

from rpc import codec, streams
from rpc._percent import percent_decode
from rpc.codec import Transformer
from rpc.errors import ErrorCode, RPCError, shape_error, to_rpc_error
from rpc.router import Kind, Procedure


@dataclass(slots=True)
class HTTPRequest:
    method: str
    path: str  #: the procedure path(s) after the prefix, already URL-decoded
    query: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  #: lower-case names
    body: bytes = b""
    client: str | None = None


@dataclass(slots=True)
class HTTPResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


class WireOptions(msgspec.Struct, frozen=True, kw_only=True):
    transformer: Transformer = Transformer.SUPERJSON
    max_batch_size: int = 50
    max_input_bytes: int = 64 * 1024
    max_depth: int = 64
    allow_method_override: bool = False
    dev: bool = False
    sse_ping_seconds: float = 10.0


# (request, connectionParams) -> the context handlers receive; may raise RPCError.
ContextFactory = Callable[[HTTPRequest, Mapping[str, str]], Any]
# (context, procedure, path) -> None, or raises RPCError: the per-call guard (auth, limits).
CallGuard = Callable[[Any, Procedure, str], None]

JSON_HEADERS = [("content-type", "application/json"), ("vary", "trpc-accept, accept")]
_ALLOWED_METHODS = {
    Kind.QUERY: ("GET",),
    Kind.MUTATION: ("POST",),
    Kind.SUBSCRIPTION: ("GET",),
}
_OVERRIDE_METHODS = {
    **_ALLOWED_METHODS,
    Kind.QUERY: ("GET", "POST"),
    Kind.SUBSCRIPTION: ("GET", "POST"),
}


_RawInput = bytes | msgspec.Raw | RPCError | None  #: a call's input bytes, or why it has none


class _Prepared(NamedTuple):
    """A GET call as decoded and checked once: its procedure, input and connectionParams."""

    proc: Procedure
    value: Any
    connection_params: Mapping[str, str]


_PREPARED_LIMIT = 4096
_NO_CONNECTION_PARAMS: Mapping[str, str] = MappingProxyType({})


class _Outcome(NamedTuple):
    """One call's answer: its HTTP status, its envelope and the headers it asks for."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = []


def _no_guard(ctx: Any, proc: Procedure, path: str) -> None:
    return None


class Resolver:
    def __init__(
        self,
        procedures: Mapping[str, Procedure],
        options: WireOptions,
        make_context: ContextFactory,
        guard: CallGuard = _no_guard,
    ) -> None:
        self._procedures = procedures
        self._options = options
        self._make_context = make_context
        self._guard = guard
        self._methods = _OVERRIDE_METHODS if options.allow_method_override else _ALLOWED_METHODS
        self._transformer = options.transformer
        self._prepared: dict[tuple[str, bytes], _Prepared] = {}

    async def resolve(self, req: HTTPRequest) -> HTTPResponse:
        answer = self.start(req)
        return answer if isinstance(answer, HTTPResponse) else await answer

    def start(self, req: HTTPRequest) -> HTTPResponse | Coroutine[Any, Any, HTTPResponse]:
        """The synchronous half of a request: parsing, checks, input decoding, and any answer a
        procedure can give from memory (`peek`). Returns the response when that settles it,
        else a coroutine that finishes the work; a transport can skip a task for the former."""
        try:
            return self._start(req)
        except RPCError as err:
            return self.reject(err)

    def reject(self, err: RPCError, path: str | None = None) -> HTTPResponse:
        """A request-level error: one envelope, not an array."""
        outcome = self._failure(err, path, self._transformer)
        return HTTPResponse(outcome.status, [*JSON_HEADERS, *outcome.headers], outcome.body)

    def is_subscription(self, path: str) -> bool:
        proc = self._procedures.get(path)
        return proc is not None and proc.kind is Kind.SUBSCRIPTION

    def _start(self, req: HTTPRequest) -> HTTPResponse | Coroutine[Any, Any, HTTPResponse]:
        if req.method == "GET":
            known = self._prepared.get((req.path, req.query))
            if known is not None and not _accepts_jsonl(req.headers):
                ctx = self._make_context(req, known.connection_params)
                return self._single(ctx, "GET", req.path, known.proc, known.value, prepared=True)
            answer = self._plain_query(req)
            if answer is not None:
                return answer
        if req.method == "HEAD":
            return HTTPResponse(204, [])
        if req.method not in ("GET", "POST"):
            raise RPCError(
                ErrorCode.METHOD_NOT_SUPPORTED,
                f"Unsupported {req.method}-request: use GET for queries, POST for mutations",
                headers={"allow": "GET, POST, HEAD"},
            )
        params = _parse_query(req.query)
        is_batch = params.get("batch") == b"1"
        paths = req.path.split(",") if is_batch else [req.path]
        if len(paths) > self._options.max_batch_size:
            raise RPCError(
                ErrorCode.BAD_REQUEST,
                f"Batch call exceeds maximum size: {len(paths)} calls, "
                f"the limit is {self._options.max_batch_size}",
            )
        procs = [self._procedures.get(path) for path in paths]
        kind = _common_kind(procs)
        if kind is Kind.SUBSCRIPTION:
            return self._subscribe(req, params, paths, procs)
        wants_jsonl = _accepts_jsonl(req.headers)
        if wants_jsonl and not is_batch:
            raise RPCError(
                ErrorCode.BAD_REQUEST,
                "Streaming requests must be batched (you can do a batch of 1)",
            )
        if req.method == "POST":
            _require_json_content(req.headers)
        connection_params = _connection_params(params)
        ctx = self._make_context(req, connection_params)
        raw = self._raw_input(req, params, is_batch)
        inputs = self._split_inputs(raw, is_batch, len(paths))
        if wants_jsonl:
            return self._stream_batch(ctx, req.method, paths, procs, inputs)
        if not is_batch:
            memo = (req.path, req.query, connection_params) if req.method == "GET" else None
            return self._single(ctx, req.method, paths[0], procs[0], inputs[0], memo=memo)
        return self._batch(ctx, req.method, paths, procs, inputs)

    def _plain_query(
        self, req: HTTPRequest
    ) -> HTTPResponse | Coroutine[Any, Any, HTTPResponse] | None:
        """The shape nearly every GET has, one query call whose only parameter is its input,
        taken without the general parse; None for anything else. A poll of a URL not seen
        lately (one id among many) costs about a fifth less so."""
        query = req.query
        if not query.startswith(b"input=") or b"&" in query:
            return None
        proc = self._procedures.get(req.path)
        if proc is None or proc.kind is not Kind.QUERY or _accepts_jsonl(req.headers):
            return None
        ctx = self._make_context(req, _NO_CONNECTION_PARAMS)
        raw = self._checked_size(percent_decode(query[6:]))
        (value,) = self._split_inputs(raw, False, 1)
        memo = (req.path, query, _NO_CONNECTION_PARAMS)
        return self._single(ctx, "GET", req.path, proc, value, memo=memo)

    def _single(
        self,
        ctx: Any,
        method: str,
        path: str,
        proc: Procedure | None,
        raw: Any,
        *,
        prepared: bool = False,
        memo: tuple[str, bytes, Mapping[str, str]] | None = None,
    ) -> HTTPResponse | Coroutine[Any, Any, HTTPResponse]:
        """One call: `raw` is its input bytes, or its decoded value when `prepared`."""
        try:
            if prepared:
                assert proc is not None
                self._guard(ctx, proc, path)
                value = raw
            else:
                proc, value = self._prepare_call(ctx, method, path, proc, raw)
                if memo is not None:
                    self._remember((memo[0], memo[1]), _Prepared(proc, value, memo[2]))
            if proc.peek is not None:
                output = proc.peek(ctx, value)
                if output is not None:
                    return self._respond(
                        _Outcome(200, codec.encode_result(output, self._transformer))
                    )
        except Exception as exc:
            return self._respond(self._failure(exc, path, self._transformer))
        return self._finish_single(ctx, path, proc, value)

    def _remember(self, key: tuple[str, bytes], prepared: _Prepared) -> None:
        """Polls repeat the same URL: its parsed, checked input is kept, so a repeat skips
        decoding. Bounded; cleared when full (cheaper than keeping an order)."""
        if len(self._prepared) >= _PREPARED_LIMIT:
            self._prepared.clear()
        self._prepared[key] = prepared

    async def _finish_single(
        self, ctx: Any, path: str, proc: Procedure, value: Any
    ) -> HTTPResponse:
        try:
            output = await proc.handler(ctx, value)
            outcome = _Outcome(200, codec.encode_result(output, self._transformer))
        except Exception as exc:
            outcome = self._failure(exc, path, self._transformer)
        return self._respond(outcome)

    @staticmethod
    def _respond(outcome: _Outcome) -> HTTPResponse:
        headers = [*JSON_HEADERS, *outcome.headers] if outcome.headers else JSON_HEADERS
        return HTTPResponse(outcome.status, headers, outcome.body)

    async def _batch(self, ctx, method, paths, procs, inputs) -> HTTPResponse:  # type: ignore[no-untyped-def]
        transformer = self._transformer
        outcomes = await asyncio.gather(
            *(
                self._call(ctx, method, path, proc, raw, transformer)
                for path, proc, raw in zip(paths, procs, inputs, strict=True)
            )
        )
        statuses = {outcome.status for outcome in outcomes}
        status = statuses.pop() if len(statuses) == 1 else 207
        body = codec.encode_batch([outcome.body for outcome in outcomes])
        return HTTPResponse(status, JSON_HEADERS, body)

    def _stream_batch(self, ctx, method, paths, procs, inputs) -> HTTPResponse:  # type: ignore[no-untyped-def]
        async def run(index: int) -> bytes:
            # Each JSONL line is serialised whole, so the envelopes inside it are bare.
            outcome = await self._call(
                ctx, method, paths[index], procs[index], inputs[index], Transformer.NONE
            )
            return outcome.body

        body = streams.jsonl_body(len(paths), run, self._transformer)
        return HTTPResponse(200, streams.JSONL_HEADERS, stream=body)

    async def _call(
        self,
        ctx: Any,
        method: str,
        path: str,
        proc: Procedure | None,
        raw: _RawInput,
        transformer: Transformer,
    ) -> _Outcome:
        try:
            proc, value = self._prepare_call(ctx, method, path, proc, raw)
            output = await proc.handler(ctx, value)
            return _Outcome(200, codec.encode_result(output, transformer))
        except Exception as exc:
            return self._failure(exc, path, transformer)

    def _prepare_call(
        self, ctx: Any, method: str, path: str, proc: Procedure | None, raw: _RawInput
    ) -> tuple[Procedure, Any]:
        """The procedure, checked for this method and caller, and its decoded input."""
        proc = self._check_call(ctx, method, path, proc)
        if isinstance(raw, RPCError):
            raise raw
        return proc, codec.decode_input(raw, proc.codec, self._transformer)

    def _check_call(self, ctx: Any, method: str, path: str, proc: Procedure | None) -> Procedure:
        if proc is None:
            raise RPCError(ErrorCode.NOT_FOUND, f'No procedure found on path "{path}"')
        allowed = self._methods[proc.kind]
        if method not in allowed:
            raise RPCError(
                ErrorCode.METHOD_NOT_SUPPORTED,
                f'Unsupported {method}-request to {proc.kind} procedure at path "{path}"',
                headers={"allow": ", ".join(allowed)},
            )
        self._guard(ctx, proc, path)
        return proc

    def _failure(self, exc: BaseException, path: str | None, transformer: Transformer) -> _Outcome:
        err = to_rpc_error(exc, path)
        shape = shape_error(err, path, dev=self._options.dev)
        headers = list(err.headers.items())
        return _Outcome(err.http_status, codec.encode_error(shape, transformer), headers)

    def _raw_input(
        self, req: HTTPRequest, params: dict[str, bytes], is_batch: bool
    ) -> bytes | None:
        if req.method == "POST":
            raw: bytes | None = req.body
        else:
            raw = params.get("input")
            if raw is not None:
                self._checked_size(raw)
        return raw

    def _checked_size(self, raw: bytes) -> bytes:
        """A URL's input, or PAYLOAD_TOO_LARGE."""
        if len(raw) > self._options.max_input_bytes:
            raise RPCError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"Input is {len(raw)} bytes, over the limit of "
                f"{self._options.max_input_bytes}: send it by POST (methodOverride)",
            )
        return raw

    def _split_inputs(self, raw: bytes | None, is_batch: bool, count: int) -> list[_RawInput]:
        """Each call's raw input; a fault of the whole input becomes every call's error."""
        # The batch object and the superjson envelope are levels the client did not choose.
        wrappers = int(is_batch) + int(self._transformer is Transformer.SUPERJSON)
        try:
            if raw:
                codec.check_depth(raw, self._options.max_depth, wrappers)
            if not is_batch:
                return [raw]
            return list(codec.split_batch(raw, count))
        except RPCError as err:
            return [err] * count

    def _subscribe(self, req, params, paths, procs) -> HTTPResponse:  # type: ignore[no-untyped-def]
        if len(paths) != 1 or params.get("batch") == b"1":
            raise RPCError(ErrorCode.BAD_REQUEST, "Cannot batch subscription calls")
        path, proc = paths[0], procs[0]
        ctx = self._make_context(req, _connection_params(params))
        self._check_call(ctx, req.method, path, proc)
        raw = self._raw_input(req, params, False)
        last_event_id = _last_event_id(req.headers, params)

        def open_events() -> AsyncIterator[Any]:
            if raw:
                envelope = int(self._transformer is Transformer.SUPERJSON)
                codec.check_depth(raw, self._options.max_depth, envelope)
            value = codec.decode_value(raw, self._transformer)
            if last_event_id is not None and (value is None or value is codec.UNDEFINED):
                value = {"lastEventId": last_event_id}
            elif last_event_id is not None and isinstance(value, dict):
                value = {**value, "lastEventId": last_event_id}
            return proc.handler(ctx, proc.codec.from_python(value))  # type: ignore[no-any-return]

        def encode_error(exc: BaseException) -> bytes:
            err = to_rpc_error(exc, path)
            shape = shape_error(err, path, dev=self._options.dev)
            return codec.encode_value(shape, self._transformer)

        body = streams.sse_body(
            open_events, encode_error, self._transformer, self._options.sse_ping_seconds
        )
        return HTTPResponse(200, streams.SSE_HEADERS, stream=body)


def _parse_query(query: bytes) -> dict[str, bytes]:
    """First value of each parameter, form-decoded as URLSearchParams does (`+` is a space)."""
    params: dict[str, bytes] = {}
    if not query:
        return params
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        key = percent_decode(name).decode("utf-8", "replace")
        if key not in params:
            params[key] = percent_decode(value)
    return params


def _common_kind(procs: list[Procedure | None]) -> Kind | None:
    kinds = {proc.kind for proc in procs if proc is not None}
    if len(kinds) > 1:
        names = ", ".join(sorted(kinds))
        raise RPCError(ErrorCode.BAD_REQUEST, f"Cannot mix procedure types in call: {names}")
    return kinds.pop() if kinds else None


def _accepts_jsonl(headers: Mapping[str, str]) -> bool:
    trpc_accept = headers.get("trpc-accept")
    if trpc_accept is not None:
        return trpc_accept.strip() == "application/jsonl"
    accept = headers.get("accept")
    if not accept or "jsonl" not in accept:
        return False
    return "application/jsonl" in (part.split(";")[0].strip() for part in accept.split(","))


def _require_json_content(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type")
    if content_type is None:
        raise RPCError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Missing content-type header")
    if not content_type.lower().startswith("application/json"):
        raise RPCError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f'Unsupported content-type "{content_type}": send application/json',
        )


def _connection_params(params: dict[str, bytes]) -> Mapping[str, str]:
    raw = params.get("connectionParams")
    if not raw:
        return _NO_CONNECTION_PARAMS
    return codec.parse_json_object_of_strings(raw)


def _last_event_id(headers: Mapping[str, str], params: dict[str, bytes]) -> str | None:
    value = headers.get("last-event-id")
    if value is None:
        raw = params.get("lastEventId") or params.get("Last-Event-Id")
        value = raw.decode("utf-8", "replace") if raw else None
    return value or None
