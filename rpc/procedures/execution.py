"""execution.*: start executions and read them: status, lists, logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec

from engine.clock import now_iso
from engine.records import (
    FINAL_EXECUTION_STATUSES,
    Execution,
    FinalOutput,
    LogEntry,
    LogLevel,
    Step,
)
from engine.records import ExecutionStatus as Status
from rpc.context import Context
from rpc.errors import ErrorCode, RPCError
from rpc.procedures import _updates
from rpc.procedures._starting import start_execution
from rpc.procedures._wire import ExecuteRequest, ExecutionId, Input, Limit, Offset, Output
from rpc.router import Procedure, Scope, Tracked, mutation, query, subscription

DEFAULT_LOGS_LIMIT = 100
Include = Literal["artifacts", "metrics", "outputs"]


class ExecutionStatus(Execution, frozen=True, kw_only=True):
    """The full status of an execution: its record, steps, newest logs and final outputs."""

    status: Literal[  # type: ignore[assignment]
        "queued", "running", "paused", "completed", "failed", "cancelled", "not_found"
    ]
    steps: list[Step]
    logs: list[LogEntry]
    logs_truncated: bool
    final_outputs: list[FinalOutput]
    outputs: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    artifacts: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    metrics: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class Started(Output, frozen=True, kw_only=True):
    execution_id: str
    status: str
    blueprint_id: str | None
    version: int | None


class StatusInput(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId
    include: list[Include] = []
    logs_limit: Annotated[int, msgspec.Meta(ge=0, le=1000)] = DEFAULT_LOGS_LIMIT


class ListInput(Input, frozen=True, kw_only=True):
    status: Status | None = None
    blueprint_id: str | None = None
    batch_id: str | None = None
    limit: Limit = 20
    offset: Offset = 0


class ExecutionSummary(Output, frozen=True, kw_only=True):
    execution_id: str
    blueprint_id: str | None
    blueprint_version: int | None
    batch_id: str | None
    status: str
    progress: int
    start_time: str
    end_time: str | None
    duration_ms: int | None
    total_steps: int
    completed_steps: int
    failed_steps: int


class ExecutionPage(Output, frozen=True, kw_only=True):
    total: int
    limit: int
    offset: int
    executions: list[ExecutionSummary]


class ActiveExecution(Output, frozen=True, kw_only=True):
    execution_id: str
    status: str
    current_node_id: str | None
    progress: int
    blueprint_id: str | None
    start_time: str


class ActiveExecutions(Output, frozen=True, kw_only=True):
    total_active: int
    executions: list[ActiveExecution]


class LogsInput(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId
    after_seq: Offset = 0
    limit: Limit = 200
    level: LogLevel | None = None
    node_id: str | None = None


class UpdatesInput(Input, frozen=True, kw_only=True):
    execution_id: ExecutionId | None = None
    last_event_id: str | None = None


class ExecutionEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One of: execution-update, node-execution, log (see docs/procedures.md)."""

    type: str
    executionId: str
    at: str


class LogPage(Output, frozen=True, kw_only=True):
    logs: list[LogEntry]
    next_seq: int
    has_more: bool


async def execute_blueprint_with_logging(ctx: Context, input: ExecuteRequest) -> Started:
    """Start an execution and return at once with its id; poll getExecutionStatus for progress."""
    execution = await start_execution(ctx, input)
    return Started(
        execution_id=execution.id,
        status=execution.status.value,
        blueprint_id=execution.blueprint_id,
        version=execution.blueprint_version,
    )


async def get_execution_status(ctx: Context, input: StatusInput) -> ExecutionStatus:
    """The status of an execution: counts, steps, newest logs, outputs; `not_found` if unknown."""
    return await read_status(ctx, input.execution_id, input.logs_limit, input.include)


def peek_execution_status(ctx: Context, input: StatusInput) -> ExecutionStatus | None:
    body = ctx.services.store.executions.cached_status(
        input.execution_id, input.logs_limit, input.include
    )
    return None if body is None else msgspec.Raw(body)  # type: ignore[return-value]


async def read_status(
    ctx: Context, execution_id: str, logs_limit: int, include: list[Include] | tuple[()]
) -> ExecutionStatus:
    body = await ctx.services.store.executions.status(execution_id, logs_limit, include)
    if body is None:
        return not_found(execution_id)
    # Stored as the JSON clients receive: handed on as it is.
    return msgspec.Raw(body)  # type: ignore[return-value]


def not_found(execution_id: str) -> ExecutionStatus:
    now = now_iso()
    return ExecutionStatus(
        id=execution_id,
        blueprint_id=None,
        blueprint_version=None,
        status="not_found",
        start_time=now,
        updated_at=now,
        steps=[],
        logs=[],
        logs_truncated=False,
        final_outputs=[],
    )


async def list_(ctx: Context, input: ListInput) -> ExecutionPage:
    """Executions, newest first, filtered by status, blueprint or batch."""
    total, records = await ctx.services.store.executions.list(
        status=input.status,
        blueprint_id=input.blueprint_id,
        batch_id=input.batch_id,
        limit=input.limit,
        offset=input.offset,
    )
    return ExecutionPage(
        total=total,
        limit=input.limit,
        offset=input.offset,
        executions=[_summary(record) for record in records],
    )


async def list_active(ctx: Context, input: None) -> ActiveExecutions:
    """Queued, running and paused executions, newest first."""
    records = await ctx.services.store.executions.active()
    return ActiveExecutions(
        total_active=len(records),
        executions=[
            ActiveExecution(
                execution_id=r.id,
                status=r.status.value,
                current_node_id=r.current_step,
                progress=r.progress,
                blueprint_id=r.blueprint_id,
                start_time=r.start_time,
            )
            for r in records
        ],
    )


async def get_logs(ctx: Context, input: LogsInput) -> LogPage:
    """Log entries after `afterSeq`, oldest first; pass `nextSeq` back to page on."""
    reads = ctx.services.store.executions
    level = input.level or LogLevel.TRACE
    rows = await reads.logs_after(
        input.execution_id, input.after_seq, input.limit + 1, level, input.node_id
    )
    if not rows and not await reads.exists(input.execution_id):
        raise RPCError(ErrorCode.NOT_FOUND, f"No execution {input.execution_id}")
    page = rows[: input.limit]
    return LogPage(
        logs=[msgspec.Raw(entry) for _, entry in page],  # type: ignore[misc]
        next_seq=page[-1][0] if page else input.after_seq,
        has_more=len(rows) > input.limit,
    )


async def on_update(ctx: Context, input: UpdatesInput) -> AsyncIterator[Tracked | ExecutionEvent]:
    """Events of one execution (ending when it ends) or of all; resumable by lastEventId."""
    store = ctx.services.store
    follower = store.follower
    one = input.execution_id
    after = _updates.parse_event_id(input.last_event_id)

    async def snapshot(
        execution_id: str, at: str, transition: dict[str, Any], gid: int
    ) -> tuple[dict[str, Any], bool] | None:
        record = await store.executions.record(execution_id)
        if record is None:
            return None
        # The record may be ahead of the rows sent so far: end on the row that says it ended.
        final = (
            transition.get("event") == "execution"
            and transition.get("status") in FINAL_EXECUTION_STATUSES
        )
        return _updates.execution_update(record, at), one is not None and final

    if after is None:
        position = (follower.position, 3)
        if one is not None:
            record = await store.executions.record(one)
            if record is None:
                raise RPCError(ErrorCode.NOT_FOUND, f"No execution {one}")
            yield Tracked(_updates.event_id(position), _updates.execution_update(record, now_iso()))
            if record.status.is_final:
                return
        else:
            for record in await store.executions.active():
                update = _updates.execution_update(record, now_iso())
                yield Tracked(_updates.event_id(position), update)
        after = position
    elif one is not None:
        end = await store.executions.end_gid(one)
        if end is not None and after >= (end, 3):
            return  # resumed after the row that ended it: nothing more will come
    wants = None if one is None else (lambda execution_id: execution_id == one)
    rows = _updates.follow(follower, one, after, wants)
    async for event in _updates.updates(rows, after, snapshot, slot=3):
        yield event


def _summary(record: Execution) -> ExecutionSummary:
    return ExecutionSummary(
        execution_id=record.id,
        blueprint_id=record.blueprint_id,
        blueprint_version=record.blueprint_version,
        batch_id=record.batch_id,
        status=record.status.value,
        progress=record.progress,
        start_time=record.start_time,
        end_time=record.end_time,
        duration_ms=record.duration_ms,
        total_steps=record.total_steps,
        completed_steps=record.completed_steps,
        failed_steps=record.failed_steps,
    )


router: dict[str, Procedure] = {
    "executeBlueprintWithLogging": mutation(execute_blueprint_with_logging, Scope.EXECUTIONS_WRITE),
    "getExecutionStatus": query(
        get_execution_status, Scope.EXECUTIONS_READ, peek=peek_execution_status
    ),
    "list": query(list_, Scope.EXECUTIONS_READ),
    "listActive": query(list_active, Scope.EXECUTIONS_READ),
    "getLogs": query(get_logs, Scope.EXECUTIONS_READ),
    "onUpdate": subscription(on_update, Scope.EXECUTIONS_READ),
}
