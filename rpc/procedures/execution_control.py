"""execution.* commands: stop, pause, continue, pause control, input, trace logs.

A command that does not fit the execution's state answers `success: false` with a message
saying the state, and changes nothing. An unknown id is NOT_FOUND; "most recent" means the
most recently started execution in the state the command needs.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from engine import control
from engine.records import ACTIVE_EXECUTION_STATUSES, ExecutionStatus
from rpc.context import Context
from rpc.errors import ErrorCode, RPCError
from rpc.procedures._starting import check_active_limit
from rpc.procedures._stopping import stop_executions
from rpc.procedures._wire import ExecutionId, Input, Output
from rpc.router import Procedure, Scope, mutation

ACTIVE = [status.value for status in ACTIVE_EXECUTION_STATUSES]
PAUSED = [ExecutionStatus.PAUSED.value]


class MaybeExecution(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId | None = None


class OneExecution(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId


class Answer(Output, frozen=True, kw_only=True):
    success: bool
    message: str
    execution_id: str | None


class Stopped(Answer, frozen=True, kw_only=True):
    was_running: bool
    was_queued: bool


class PauseControlInput(Input, frozen=True, kw_only=True):
    action: Literal["continue", "stop", "skip", "continueWithoutBreakpoint"]
    execution_id: ExecutionId | None = None


class PauseControlAnswer(Answer, frozen=True, kw_only=True):
    action: str


class InputAnswer(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId
    node_id: str | None = None
    data: Any = None


class TraceInput(Input, frozen=True, kw_only=True):
    enabled: bool
    execution_id: ExecutionId | None = None


class Retried(Output, frozen=True, kw_only=True):
    execution_id: str
    status: str
    retry_of: str


class StoppedAll(Output, frozen=True, kw_only=True):
    success: bool
    message: str
    total_batches: int
    total_stopped: int
    running_stopped: int
    queued_cancelled: int
    batches: list[str]


class TraceAnswer(Output, frozen=True, kw_only=True):
    success: bool
    message: str
    execution_id: str | None
    enabled: bool


_PAUSE_ACTIONS: dict[str, control.AnyCommand] = {
    "continue": control.Continue(),
    "stop": control.Stop(),
    "skip": control.SkipBreakpoint(),
    "continueWithoutBreakpoint": control.ContinueWithoutBreakpoint(),
}


async def stop(ctx: Context, input: MaybeExecution) -> Stopped:
    """Stop an execution (the most recent active one when no id is given): running nodes are
    cancelled, unstarted ones marked cancelled."""
    execution_id = await _target(ctx, input.execution_id, ACTIVE)
    if execution_id is None:
        return Stopped(
            success=False,
            message="No active execution",
            execution_id=None,
            was_running=False,
            was_queued=False,
        )
    outcome = await ctx.services.engine.control(execution_id, control.Stop())
    return Stopped(
        success=outcome.applied,
        message=outcome.message,
        execution_id=execution_id,
        was_running=outcome.was_running,
        was_queued=outcome.was_queued,
    )


async def stop_all(ctx: Context, input: None) -> StoppedAll:
    """Stop every active execution: running ones stopped, queued ones cancelled; the batches
    they belong to are marked stopped."""
    store = ctx.services.store
    active = await store.batches.active_executions(None)
    batches = sorted({batch_id for _, _, batch_id in active if batch_id is not None})
    running, queued = await stop_executions(ctx, active)
    await store.batches.mark_stopped(batches)
    return StoppedAll(
        success=True,
        message=f"Stopped {running + queued} executions in {len(batches)} batches"
        if active
        else "No active executions",
        total_batches=len(batches),
        total_stopped=running + queued,
        running_stopped=running,
        queued_cancelled=queued,
        batches=batches,
    )


async def pause(ctx: Context, input: OneExecution) -> Answer:
    """Pause a running execution: no new node starts; running ones finish (pauseReason manual)."""
    await _known(ctx, input.execution_id)
    return await _command(ctx, input.execution_id, control.Pause())


async def continue_(ctx: Context, input: MaybeExecution) -> Answer:
    """Continue a paused execution (the most recent paused one when no id is given)."""
    execution_id = await _target(ctx, input.execution_id, PAUSED)
    if execution_id is None:
        return Answer(success=False, message="No paused execution", execution_id=None)
    return await _command(ctx, execution_id, control.Continue())


async def pause_control(ctx: Context, input: PauseControlInput) -> PauseControlAnswer:
    """At a pause or breakpoint: continue, stop, skip the node, or continue without breakpoints."""
    execution_id = await _target(ctx, input.execution_id, PAUSED)
    if execution_id is None:
        return PauseControlAnswer(
            success=False, message="No paused execution", execution_id=None, action=input.action
        )
    answer = await _command(ctx, execution_id, _PAUSE_ACTIONS[input.action])
    return PauseControlAnswer(
        success=answer.success,
        message=answer.message,
        execution_id=execution_id,
        action=input.action,
    )


async def provide_input(ctx: Context, input: InputAnswer) -> Answer:
    """Answer an input node; `data` must match its schema (every violation is listed)."""
    await _known(ctx, input.execution_id)
    command = control.ProvideInput(node_id=input.node_id, data=input.data)
    return await _command(ctx, input.execution_id, command)


async def set_trace_logs(ctx: Context, input: TraceInput) -> TraceAnswer:
    """Turn trace logs on or off (for the most recent active execution when no id is given)."""
    execution_id = await _target(ctx, input.execution_id, ACTIVE)
    if execution_id is None:
        return TraceAnswer(
            success=False, message="No active execution", execution_id=None, enabled=input.enabled
        )
    outcome = await ctx.services.engine.control(
        execution_id, control.SetTraceLogs(enabled=input.enabled)
    )
    return TraceAnswer(
        success=outcome.applied,
        message=outcome.message,
        execution_id=execution_id,
        enabled=input.enabled,
    )


async def retry(ctx: Context, input: OneExecution) -> Retried:
    """A new execution of the same blueprint snapshot, input and options that reuses the
    outputs of the steps that succeeded and runs the rest; records retryOf."""
    services = ctx.services
    source = await services.store.executions.retry_source(input.execution_id)
    if source is None:
        raise RPCError(ErrorCode.NOT_FOUND, f"No execution {input.execution_id}")
    if not source.execution.status.is_final:
        raise RPCError(
            ErrorCode.PRECONDITION_FAILED,
            f"Execution {input.execution_id} is {source.execution.status}: "
            "stop it or let it end before retrying",
        )
    plan = services.engine.compile(msgspec.to_builtins(source.blueprint))
    await check_active_limit(ctx)
    started = await services.engine.start(
        plan,
        blueprint_id=source.execution.blueprint_id,
        blueprint_version=source.execution.blueprint_version,
        input=source.input,
        metadata=source.execution.metadata,
        options=msgspec.structs.replace(source.options, idempotency_key=None),
        retry_of=input.execution_id,
        reuse=source.succeeded,
        started_by=ctx.caller.name,
    )
    return Retried(
        execution_id=started.id, status=started.status.value, retry_of=input.execution_id
    )


async def _command(ctx: Context, execution_id: str, command: control.AnyCommand) -> Answer:
    outcome = await ctx.services.engine.control(execution_id, command)
    return Answer(success=outcome.applied, message=outcome.message, execution_id=execution_id)


async def _known(ctx: Context, execution_id: str) -> None:
    if await ctx.services.store.executions.status_of(execution_id) is None:
        raise RPCError(ErrorCode.NOT_FOUND, f"No execution {execution_id}")


async def _target(ctx: Context, execution_id: str | None, states: list[str]) -> str | None:
    """The given execution (NOT_FOUND if unknown), or the most recent in one of `states`."""
    if execution_id is not None:
        await _known(ctx, execution_id)
        return execution_id
    return await ctx.services.store.executions.most_recent(states)


router: dict[str, Procedure] = {
    "stop": mutation(stop, Scope.EXECUTIONS_WRITE),
    "stopAll": mutation(stop_all, Scope.EXECUTIONS_WRITE),
    "pause": mutation(pause, Scope.EXECUTIONS_WRITE),
    "continue": mutation(continue_, Scope.EXECUTIONS_WRITE),
    "pauseControl": mutation(pause_control, Scope.EXECUTIONS_WRITE),
    "provideInput": mutation(provide_input, Scope.EXECUTIONS_WRITE),
    "setTraceLogs": mutation(set_trace_logs, Scope.EXECUTIONS_WRITE),
    "retry": mutation(retry, Scope.EXECUTIONS_WRITE),
}
