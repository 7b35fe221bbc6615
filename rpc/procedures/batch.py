"""batch.*: many executions started together, watched and stopped together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec

from engine.clock import iso_ms, now_iso, now_ms, parse_iso_ms
from engine.errors import BlueprintInvalid
from engine.ids import new_id
from engine.model import RunOptions
from engine.plan import Plan
from rpc import files
from rpc.context import Context
from rpc.errors import ErrorCode, RPCError
from rpc.procedures import _updates
from rpc.procedures._starting import check_active_limit
from rpc.procedures._stopping import stop_executions
from rpc.procedures._wire import Input, Limit, Offset, Output, id_pattern
from rpc.router import Procedure, Scope, Tracked, mutation, query, subscription
from store.batches import BatchItem, BatchRow

BatchId = Annotated[str, msgspec.Meta(pattern=id_pattern("batch"))]
MAX_BATCH = files.MAX_FILES


class Workflows(Input, frozen=True, kw_only=True, tag="workflows", tag_field="type"):
    blueprint_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class Files(Input, frozen=True, kw_only=True, tag="files", tag_field="type"):
    paths: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class Folder(Input, frozen=True, kw_only=True, tag="folder", tag_field="type"):
    folder_path: str


class StartInput(Input, frozen=True, kw_only=True):
    source: Workflows | Files | Folder
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4
    input: Any = None
    metadata: dict[str, Any] = {}


_SOURCE_TYPES = {Workflows: "workflows", Files: "files", Folder: "folder"}


class StartedItem(Output, frozen=True, kw_only=True):
    execution_id: str
    blueprint_id: str | None
    workflow_file_name: str | None
    workflow_path: str | None
    status: str


class Started(Output, frozen=True, kw_only=True):
    batch_id: str
    total_workflows: int
    executions: list[StartedItem]


class BatchInput(Input, frozen=True, kw_only=True):
    batch_id: BatchId


class ItemStatus(Output, frozen=True, kw_only=True):
    execution_id: str
    workflow_file_name: str | None
    workflow_path: str | None
    blueprint_id: str | None
    status: str
    current_node_id: str | None


class BatchStatus(Output, frozen=True, kw_only=True):
    batch_id: str
    status: str
    source_type: str
    folder_path: str | None
    total_workflows: int
    completed: int
    running: int
    queued: int
    failed: int
    start_time: str
    end_time: str | None
    executions: list[ItemStatus]


class ListInput(Input, frozen=True, kw_only=True):
    status: Literal["running", "completed", "failed", "cancelled"] | None = None
    limit: Limit = 20
    offset: Offset = 0


class BatchSummary(Output, frozen=True, kw_only=True):
    batch_id: str
    status: str
    source_type: str
    folder_path: str | None
    total_workflows: int
    completed: int
    failed: int
    start_time: str
    end_time: str | None
    duration_ms: int | None


class BatchPage(Output, frozen=True, kw_only=True):
    total: int
    limit: int
    offset: int
    batches: list[BatchSummary]


class Stopped(Output, frozen=True, kw_only=True):
    success: bool
    message: str
    batch_id: str
    stopped_executions: int
    running_stopped: int
    queued_cancelled: int


class Cleared(Output, frozen=True, kw_only=True):
    success: bool
    message: str
    batches_deleted: int
    executions_deleted: int
    kept_active: int


class _Work(msgspec.Struct, frozen=True):
    plan: Plan
    blueprint_id: str | None
    version: int | None
    path: str | None


async def start(ctx: Context, input: StartInput) -> Started:
    """Start one execution per blueprint of the source, at most `concurrency` running at once.
    Every blueprint is checked first: one bad file starts nothing."""
    services = ctx.services
    work = await _work(ctx, input.source)
    batch_id = new_id("batch")
    ids = [new_id("exec") for _ in work]
    folder = input.source.folder_path if isinstance(input.source, Folder) else None
    await check_active_limit(ctx, adding=len(work))
    await services.store.batches.create(
        BatchRow(
            id=batch_id,
            source_type=_SOURCE_TYPES[type(input.source)],
            folder_path=folder,
            concurrency=input.concurrency,
            total=len(work),
            status="running",
            completed=0,
            failed=0,
            running=0,
            queued=len(work),
            created_at=iso_ms(now_ms()),
            ended_at=None,
        ),
        [
            BatchItem(
                position=i, execution_id=ids[i], blueprint_id=w.blueprint_id, workflow_path=w.path
            )
            for i, w in enumerate(work)
        ],
    )
    options = RunOptions(batch_concurrency=input.concurrency)
    started = []
    for execution_id, item in zip(ids, work, strict=True):
        execution = await services.engine.start(
            item.plan,
            blueprint_id=item.blueprint_id,
            blueprint_version=item.version,
            input=input.input,
            metadata=input.metadata,
            options=options,
            batch_id=batch_id,
            execution_id=execution_id,
            started_by=ctx.caller.name,
        )
        started.append(
            StartedItem(
                execution_id=execution.id,
                blueprint_id=item.blueprint_id,
                workflow_file_name=_file_name(item.path),
                workflow_path=item.path,
                status=execution.status.value,
            )
        )
    return Started(batch_id=batch_id, total_workflows=len(work), executions=started)


async def _work(ctx: Context, source: Workflows | Files | Folder) -> list[_Work]:
    services = ctx.services
    folder = services.settings.blueprints_dir
    work: list[_Work] = []
    if isinstance(source, Workflows):
        for blueprint_id in source.blueprint_ids:
            meta, document = await services.store.blueprints.get(blueprint_id)
            work.append(
                _Work(_compile(ctx, document, blueprint_id), blueprint_id, meta.version, None)
            )
        return work
    paths = (
        source.paths
        if isinstance(source, Files)
        else files.blueprint_files(folder, source.folder_path)
    )
    if not paths:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{source.folder_path!r} holds no *.json blueprints")  # type: ignore[union-attr]
    for given in paths:
        path, document = files.read_blueprint(folder, given, services.settings.max_depth)
        work.append(_Work(_compile(ctx, document, path), None, None, path))
    return work


def _compile(ctx: Context, document: Any, where: str) -> Plan:
    try:
        return ctx.services.engine.compile(document)
    except BlueprintInvalid as exc:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{where}: {exc}", problems=exc.problems) from None


async def get_status(ctx: Context, input: BatchInput) -> BatchStatus:
    """A batch's counts and each of its executions."""
    found = await ctx.services.store.batches.get(input.batch_id)
    if found is None:
        raise RPCError(ErrorCode.NOT_FOUND, f"No batch {input.batch_id}")
    row, items = found
    return BatchStatus(
        batch_id=row.id,
        status=row.status,
        source_type=row.source_type,
        folder_path=row.folder_path,
        total_workflows=row.total,
        completed=row.completed,
        running=row.running,
        queued=row.queued,
        failed=row.failed,
        start_time=row.created_at,
        end_time=row.ended_at,
        executions=[
            ItemStatus(
                execution_id=i.item.execution_id,
                workflow_file_name=_file_name(i.item.workflow_path),
                workflow_path=i.item.workflow_path,
                blueprint_id=i.item.blueprint_id,
                status=i.status,
                current_node_id=i.current_node_id,
            )
            for i in items
        ],
    )


async def list_(ctx: Context, input: ListInput) -> BatchPage:
    """Batches, newest first, filtered by status."""
    total, rows = await ctx.services.store.batches.page(input.status, input.limit, input.offset)
    return BatchPage(
        total=total,
        limit=input.limit,
        offset=input.offset,
        batches=[
            BatchSummary(
                batch_id=row.id,
                status=row.status,
                source_type=row.source_type,
                folder_path=row.folder_path,
                total_workflows=row.total,
                completed=row.completed,
                failed=row.failed,
                start_time=row.created_at,
                end_time=row.ended_at,
                duration_ms=_duration(row.created_at, row.ended_at),
            )
            for row in rows
        ],
    )


async def stop(ctx: Context, input: BatchInput) -> Stopped:
    """Stop a batch: its running executions are stopped, its queued ones cancelled."""
    store = ctx.services.store
    batch = await store.batches.row(input.batch_id)
    if batch is None:
        raise RPCError(ErrorCode.NOT_FOUND, f"No batch {input.batch_id}")
    active = await store.batches.active_executions(input.batch_id)
    running, queued = await stop_executions(ctx, active)
    await store.batches.mark_stopped([input.batch_id])
    if not active:
        message = f"Batch is already {batch.status}"
    else:
        message = f"Batch stopped: {running} running stopped, {queued} queued cancelled"
    return Stopped(
        success=bool(active),
        message=message,
        batch_id=input.batch_id,
        stopped_executions=running + queued,
        running_stopped=running,
        queued_cancelled=queued,
    )


async def clear_all(ctx: Context, input: None) -> Cleared:
    """Delete finished history: finished executions and batches. Active ones are kept."""
    store = ctx.services.store
    cleared = await store.batches.clear_finished()
    store.cache.invalidate(cleared.execution_ids)
    return Cleared(
        success=True,
        message=f"Deleted {cleared.batches} batches and {cleared.executions} executions; "
        f"kept {cleared.kept_active} active",
        batches_deleted=cleared.batches,
        executions_deleted=cleared.executions,
        kept_active=cleared.kept_active,
    )


class BatchUpdatesInput(Input, frozen=True, kw_only=True):
    batch_id: BatchId | None = None
    last_event_id: str | None = None


class BatchEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A batch-update: {type, batchId, executionId, at, status, totalWorkflows, completed,
    running, queued, failed}."""

    type: str
    batchId: str
    at: str


async def on_update(ctx: Context, input: BatchUpdatesInput) -> AsyncIterator[Tracked | BatchEvent]:
    """batch-update events of one batch (ending when it ends) or of all; resumable."""
    store = ctx.services.store
    one = input.batch_id
    after = _updates.parse_event_id(input.last_event_id)
    member_of: dict[str, str | None] = {}  #: execution id -> its batch id (None: no batch)
    followed: list[BatchRow] = []
    if one is not None:
        found = await store.batches.get(one)
        if found is None:
            raise RPCError(ErrorCode.NOT_FOUND, f"No batch {one}")
        member_of = {item.item.execution_id: one for item in found[1]}
        followed = [found[0]]

    end_gid: list[int | None] = []  #: once the followed batch has ended: its last row

    async def snapshot(
        execution_id: str, at: str, transition: dict[str, Any], gid: int
    ) -> tuple[dict[str, Any], bool] | None:
        if execution_id not in member_of and one is None:
            record = await store.executions.record(execution_id)
            member_of[execution_id] = None if record is None else record.batch_id
        batch_id = member_of.get(execution_id)
        batch = None if batch_id is None else await store.batches.row(batch_id)
        if batch is None:
            return None
        event = batch_update(batch, at, execution_id)
        if one is None or batch.status == "running":
            return event, False
        # The batch has ended by now, but this row may come before its end (a stream resumed,
        # or behind): end on the row that recorded the end of its last execution.
        if not end_gid:
            end_gid.append(await store.batches.end_gid(one))
        return event, end_gid[0] is None or gid >= end_gid[0]

    if after is None:
        after = (store.follower.position, 4)
        if one is None:
            followed = (await store.batches.page("running", 1000, 0))[1]
        for row in followed:
            yield Tracked(_updates.event_id(after), batch_update(row, now_iso(), None))
        if one is not None and followed[0].status != "running":
            return
    elif one is not None and followed[0].status != "running":
        end = await store.batches.end_gid(one)
        if end is not None and after >= (end, 4):
            return  # resumed after the row that ended it: nothing more will come
    wants = None if one is None else member_of.__contains__
    rows = _updates.follow(store.follower, None, after, wants)
    async for event in _updates.updates(rows, after, snapshot, slot=4, details=False):
        yield event


def batch_update(row: BatchRow, at: str, execution_id: str | None) -> dict[str, Any]:
    return {
        "type": "batch-update",
        "batchId": row.id,
        "executionId": execution_id,
        "at": at,
        "status": row.status,
        "totalWorkflows": row.total,
        "completed": row.completed,
        "running": row.running,
        "queued": row.queued,
        "failed": row.failed,
    }


def _file_name(path: str | None) -> str | None:
    return None if path is None else path.rsplit("/", 1)[-1]


def _duration(start: str, end: str | None) -> int | None:
    return None if end is None else max(0, parse_iso_ms(end) - parse_iso_ms(start))


router: dict[str, Procedure] = {
    "start": mutation(start, Scope.EXECUTIONS_WRITE),
    "getStatus": query(get_status, Scope.EXECUTIONS_READ),
    "list": query(list_, Scope.EXECUTIONS_READ),
    "stop": mutation(stop, Scope.EXECUTIONS_WRITE),
    "clearAll": mutation(clear_all, Scope.ADMIN),
    "onUpdate": subscription(on_update, Scope.EXECUTIONS_READ),
}
