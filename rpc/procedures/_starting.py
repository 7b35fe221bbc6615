"""Starting an execution from a request: find or check the blueprint, then hand it to the engine."""

from __future__ import annotations

from typing import Any

from engine.model import RunOptions
from engine.records import Execution
from rpc.context import Context
from rpc.errors import ErrorCode, RPCError
from rpc.procedures._wire import ExecuteRequest


async def start_execution(ctx: Context, request: ExecuteRequest) -> Execution:
    services = ctx.services
    document: Any
    if (request.blueprint_id is None) == (request.blueprint is None):
        raise RPCError(ErrorCode.BAD_REQUEST, "Give exactly one of blueprintId or blueprint")
    if request.blueprint_id is not None:
        meta, document = await services.store.blueprints.get(request.blueprint_id, request.version)
        blueprint_id, version = meta.blueprint_id, meta.version
    else:
        if request.version is not None:
            raise RPCError(ErrorCode.BAD_REQUEST, "version applies only with blueprintId")
        document, blueprint_id, version = request.blueprint, None, None
    # Checked again before every run: node types or functions may have changed since it was saved.
    plan = services.engine.compile(document)
    options = RunOptions(
        debug=request.debug,
        trace_logs=request.trace_logs,
        timeout_ms=request.timeout_ms,
        webhook=request.webhook,
        idempotency_key=request.idempotency_key,
    )
    return await services.engine.start(
        plan,
        blueprint_id=blueprint_id,
        blueprint_version=version,
        input=request.input,
        metadata=request.metadata,
        options=options,
    )
