"""Errors of the tRPC edge, their wire codes, and the one table mapping domain errors to them.

    RPCError                  a tRPC error: a code name, a message, optional problems and headers
    DOMAIN_ERRORS             engine/store exception class -> tRPC code, looked up along the MRO

Handlers raise RPCError or a domain error; `to_rpc_error` turns anything into an RPCError and
`shape_error` into the wire shape `{message, code, data: {code, httpStatus, path, ...}}`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec

from engine import errors as engine_errors
from store import errors as store_errors

log = logging.getLogger("blueprint.rpc")


class ErrorCode(StrEnum):
    PARSE_ERROR = "PARSE_ERROR"
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_SUPPORTED = "METHOD_NOT_SUPPORTED"
    TIMEOUT = "TIMEOUT"
    CONFLICT = "CONFLICT"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    UNPROCESSABLE_CONTENT = "UNPROCESSABLE_CONTENT"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


JSONRPC_CODES: Mapping[ErrorCode, int] = {
    ErrorCode.PARSE_ERROR: -32700,
    ErrorCode.BAD_REQUEST: -32600,
    ErrorCode.UNAUTHORIZED: -32001,
    ErrorCode.FORBIDDEN: -32003,
    ErrorCode.NOT_FOUND: -32004,
    ErrorCode.METHOD_NOT_SUPPORTED: -32005,
    ErrorCode.TIMEOUT: -32008,
    ErrorCode.CONFLICT: -32009,
    ErrorCode.PRECONDITION_FAILED: -32012,
    ErrorCode.PAYLOAD_TOO_LARGE: -32013,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: -32015,
    ErrorCode.UNPROCESSABLE_CONTENT: -32022,
    ErrorCode.TOO_MANY_REQUESTS: -32029,
    ErrorCode.INTERNAL_SERVER_ERROR: -32603,
    ErrorCode.SERVICE_UNAVAILABLE: -32603,
}

HTTP_STATUSES: Mapping[ErrorCode, int] = {
    ErrorCode.PARSE_ERROR: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_SUPPORTED: 405,
    ErrorCode.TIMEOUT: 408,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PRECONDITION_FAILED: 412,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNPROCESSABLE_CONTENT: 422,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.INTERNAL_SERVER_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class RPCError(Exception):
    """An error with a tRPC code; `problems` lists itemised faults, `headers` go on the response."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        problems: Sequence[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUSES[self.code]


class ErrorData(msgspec.Struct, kw_only=True):
    code: str
    httpStatus: int
    path: str | None
    stack: str | msgspec.UnsetType = msgspec.UNSET
    problems: Sequence[Any] | msgspec.UnsetType = msgspec.UNSET


class ErrorShape(msgspec.Struct, kw_only=True):
    message: str
    code: int
    data: ErrorData


DOMAIN_ERRORS: Mapping[type[BaseException], ErrorCode] = {
    engine_errors.BlueprintInvalid: ErrorCode.BAD_REQUEST,
    engine_errors.InputInvalid: ErrorCode.BAD_REQUEST,
    engine_errors.ExecutionNotFound: ErrorCode.NOT_FOUND,
    engine_errors.IdempotencyConflict: ErrorCode.CONFLICT,
    engine_errors.LimitExceeded: ErrorCode.TOO_MANY_REQUESTS,
    store_errors.BlueprintNotFound: ErrorCode.NOT_FOUND,
    store_errors.StoreUnavailable: ErrorCode.SERVICE_UNAVAILABLE,
}


def body_too_large(limit: int) -> RPCError:
    """A request body past `--max-body-bytes`, whichever transport read it."""
    return RPCError(ErrorCode.PAYLOAD_TOO_LARGE, f"Request body over the limit of {limit} bytes")


def to_rpc_error(exc: BaseException, path: str | None = None) -> RPCError:
    """Map any exception to an RPCError; unknown ones become a logged INTERNAL_SERVER_ERROR."""
    if isinstance(exc, RPCError):
        return exc
    for cls in type(exc).__mro__:
        code = DOMAIN_ERRORS.get(cls)
        if code is not None:
            err = RPCError(code, str(exc), problems=getattr(exc, "problems", None))
            err.__cause__ = exc
            return err
    log.error("procedure %s failed", path or "-", exc_info=exc)
    err = RPCError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error")
    err.__cause__ = exc
    return err


def shape_error(err: RPCError, path: str | None, *, dev: bool = False) -> ErrorShape:
    """The wire shape of an error; the stack and the cause's message only in development mode."""
    message = err.message
    stack: str | msgspec.UnsetType = msgspec.UNSET
    if dev:
        cause = err.__cause__ or err
        stack = "".join(traceback.format_exception(cause))
        if err.code is ErrorCode.INTERNAL_SERVER_ERROR and err.__cause__ is not None:
            message = f"{type(cause).__name__}: {cause}"
    problems = msgspec.UNSET if err.problems is None else err.problems
    data = ErrorData(
        code=err.code.value,
        httpStatus=err.http_status,
        path=path,
        stack=stack,
        problems=problems,
    )
    return ErrorShape(message=message, code=JSONRPC_CODES[err.code], data=data)
