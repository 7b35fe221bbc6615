"""Starting an execution from a request: find or check the blueprint, honour an idempotency
key, then hand it to the engine."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec

from engine import webhooks
from engine.ids import new_id
from engine.model import RunOptions
from engine.records import Execution
from rpc.context import Context
from rpc.errors import ErrorCode, RPCError
from rpc.procedures._wire import ExecuteRequest

_encode = msgspec.json.Encoder(order="deterministic").encode


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
    if request.webhook is not None:
        why_not = webhooks.refusal(request.webhook.url, services.engine.webhooks.allowed_hosts)
        if why_not is not None:
            raise RPCError(ErrorCode.FORBIDDEN, why_not[:1].upper() + why_not[1:])
    # Checked again before every run: node types or functions may have changed since it was saved.
    plan = services.engine.compile(document)
    execution_id = None
    if request.idempotency_key is not None:
        existing, execution_id = await _claim(ctx, request)
        if existing is not None:
            return existing
    options = RunOptions(
        debug=request.debug,
        trace_logs=request.trace_logs,
        timeout_ms=request.timeout_ms,
        webhook=request.webhook,
        idempotency_key=request.idempotency_key,
    )
    await check_active_limit(ctx)
    return await services.engine.start(
        plan,
        blueprint_id=blueprint_id,
        blueprint_version=version,
        input=request.input,
        metadata=request.metadata,
        options=options,
        execution_id=execution_id,
        started_by=ctx.caller.name,
    )


async def check_active_limit(ctx: Context, adding: int = 1) -> None:
    """TOO_MANY_REQUESTS if `adding` more would take the caller's key over its limit of
    active executions. Checked, not reserved: calls racing each other may pass it together."""
    name = ctx.caller.name
    if name is None:
        return  # open: there is no key to count for
    limit = ctx.services.settings.max_active_per_key
    active = await ctx.services.store.executions.active_count(name)
    if active + adding > limit:
        raise RPCError(
            ErrorCode.TOO_MANY_REQUESTS,
            f"This API key has {active} active executions and may have {limit}; "
            f"starting {adding} more would pass that: wait for some to end, or stop them",
        )


async def _claim(ctx: Context, request: ExecuteRequest) -> tuple[Execution | None, str]:
    """The execution the key already names, or None and the id to create it under."""
    key = request.idempotency_key
    assert key is not None
    claim = await ctx.services.store.idempotency.claim(key, fingerprint(request), new_id("exec"))
    if claim.conflict:
        raise RPCError(
            ErrorCode.CONFLICT,
            f"idempotencyKey {key!r} was used with a different request in the last 24 hours",
        )
    if claim.new:
        return None, claim.execution_id
    # A repeat: the first request may still be creating it; wait until the log has it.
    for _ in range(100):
        found = await ctx.services.store.executions.record(claim.execution_id)
        if found is not None:
            return found, claim.execution_id
        await asyncio.sleep(0.05)
    raise RPCError(
        ErrorCode.CONFLICT, f"idempotencyKey {key!r} is being used by a request still starting"
    )


def fingerprint(request: ExecuteRequest) -> bytes:
    """What makes two requests the same request: everything but the key (and how long the
    caller waits)."""
    fields = msgspec.structs.asdict(request)
    fields.pop("idempotency_key", None)
    fields.pop("wait_ms", None)
    return hashlib.sha256(_encode(fields)).digest()
