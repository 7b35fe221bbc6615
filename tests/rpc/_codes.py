"""The contract's error table (API.md section 1): name -> (JSON-RPC code, HTTP status)."""

from __future__ import annotations

CONTRACT: dict[str, tuple[int, int]] = {
    "PARSE_ERROR": (-32700, 400),
    "BAD_REQUEST": (-32600, 400),
    "UNAUTHORIZED": (-32001, 401),
    "FORBIDDEN": (-32003, 403),
    "NOT_FOUND": (-32004, 404),
    "METHOD_NOT_SUPPORTED": (-32005, 405),
    "TIMEOUT": (-32008, 408),
    "CONFLICT": (-32009, 409),
    "PRECONDITION_FAILED": (-32012, 412),
    "PAYLOAD_TOO_LARGE": (-32013, 413),
    "UNPROCESSABLE_CONTENT": (-32022, 422),
    "TOO_MANY_REQUESTS": (-32029, 429),
    "INTERNAL_SERVER_ERROR": (-32603, 500),
}

#: Every code tRPC itself defines (TRPC-PROTOCOL.md 8.1): the contract's, and those it leaves out.
TRPC_CODES: dict[str, tuple[int, int]] = {
    **CONTRACT,
    "PAYMENT_REQUIRED": (-32002, 402),
    "UNSUPPORTED_MEDIA_TYPE": (-32015, 415),
    "PRECONDITION_REQUIRED": (-32028, 428),
    "CLIENT_CLOSED_REQUEST": (-32099, 499),
    "NOT_IMPLEMENTED": (-32603, 501),
    "BAD_GATEWAY": (-32603, 502),
    "SERVICE_UNAVAILABLE": (-32603, 503),
    "GATEWAY_TIMEOUT": (-32603, 504),
}

#: The codes a bad request may get: every one but the 5xx.
CLIENT_ERRORS = {name: numbers for name, numbers in CONTRACT.items() if numbers[1] < 500}
