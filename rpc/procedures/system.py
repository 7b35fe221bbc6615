"""system.*: health and the procedure catalogue."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from rpc.context import Context
from rpc.router import Procedure, Scope, query


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    version: str
    uptimeMs: int
    database: Literal["ok", "error"]
    activeExecutions: int
    queuedExecutions: int


class ProcedureInfo(msgspec.Struct, kw_only=True):
    path: str
    type: str
    scope: str
    description: str
    inputSchema: dict[str, Any] | None
    outputSchema: dict[str, Any]


class ProcedureCatalogue(msgspec.Struct, kw_only=True):
    procedures: list[ProcedureInfo]


async def health(ctx: Context, input: None) -> Health:
    """Whether the server and its database answer, and how much work is in hand."""
    services = ctx.services
    try:
        counts = await services.store.executions.count_active()
    except Exception:
        counts = None
    return Health(
        status="ok" if counts is not None else "degraded",
        version=services.version,
        uptimeMs=int((time.monotonic() - services.started_at) * 1000),
        database="ok" if counts is not None else "error",
        activeExecutions=counts["running"] + counts["paused"] if counts else 0,
        queuedExecutions=counts["queued"] if counts else 0,
    )


async def procedures(ctx: Context, input: None) -> ProcedureCatalogue:
    """Every procedure with its type, scope and input/output JSON Schema."""
    return ProcedureCatalogue(
        procedures=[describe(path, proc) for path, proc in sorted(ctx.services.procedures.items())]
    )


def describe(path: str, proc: Procedure) -> ProcedureInfo:
    return ProcedureInfo(
        path=path,
        type=proc.kind.value,
        scope=proc.scope.value,
        description=proc.description,
        inputSchema=None if proc.input_type is None else msgspec.json.schema(proc.input_type),
        outputSchema=msgspec.json.schema(proc.output_type),
    )


router: dict[str, Procedure] = {
    "health": query(health, Scope.ANY_KEY),
    "procedures": query(procedures, Scope.ANY_KEY),
}
