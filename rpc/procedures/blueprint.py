"""blueprint.*: the catalogue of blueprints, their validation, and running one."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from engine.errors import Problem
from engine.validation import find_problems
from rpc.context import Context
from rpc.procedures import execution
from rpc.procedures._starting import start_execution
from rpc.procedures._wire import (
    BlueprintId,
    Document,
    ExecuteRequest,
    Input,
    Limit,
    Offset,
    Output,
    Version,
)
from rpc.router import Procedure, Scope, mutation, query
from store.blueprints import BlueprintMeta
from store.errors import BlueprintNotFound


class Saved(Output, frozen=True, kw_only=True):
    blueprint_id: str
    version: int
    name: str
    created_at: str
    updated_at: str


class UpdateInput(Input, frozen=True, kw_only=True):
    """`{blueprintId, ...document}`: the new document beside the id."""

    blueprint_id: BlueprintId
    name: Any = None
    description: Any = None
    nodes: Any = None


class GetInput(Input, frozen=True, kw_only=True):
    blueprint_id: BlueprintId
    version: Version | None = None


class ListInput(Input, frozen=True, kw_only=True):
    limit: Limit = 20
    offset: Offset = 0
    search: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class BlueprintSummary(Output, frozen=True, kw_only=True):
    blueprint_id: str
    name: str
    description: str | None
    version: int
    node_count: int
    created_at: str
    updated_at: str


class BlueprintPage(Output, frozen=True, kw_only=True):
    total: int
    limit: int
    offset: int
    blueprints: list[BlueprintSummary]


class DeleteInput(Input, frozen=True, kw_only=True):
    blueprint_id: BlueprintId


class Deleted(Output, frozen=True, kw_only=True):
    success: bool
    blueprint_id: str


class Validity(Output, frozen=True, kw_only=True):
    valid: bool
    problems: list[Problem]


class NodeTypeInfo(Output, frozen=True, kw_only=True):
    type: str
    description: str
    config_schema: dict[str, Any]


class RunInput(ExecuteRequest, frozen=True, kw_only=True):
    wait_ms: Annotated[int, msgspec.Meta(ge=0, le=300_000)] = 30_000


async def create(ctx: Context, input: Document) -> Saved:
    """Save a new blueprint (version 1) after checking it; every problem is listed."""
    ctx.services.engine.validate(input)
    return _saved(await ctx.services.store.blueprints.create(_document(input)))


async def update(ctx: Context, input: UpdateInput) -> Saved:
    """Save a new version of a blueprint; executions keep the version they ran."""
    document = {"name": input.name, "description": input.description, "nodes": input.nodes}
    document = {key: value for key, value in document.items() if value is not None}
    ctx.services.engine.validate(document)
    return _saved(
        await ctx.services.store.blueprints.update(input.blueprint_id, _document(document))
    )


async def get(ctx: Context, input: GetInput) -> dict[str, Any]:
    """The document of a version (the newest by default) with its id, version and times."""
    meta, document = await ctx.services.store.blueprints.get(input.blueprint_id, input.version)
    return {
        **document,
        "blueprintId": meta.blueprint_id,
        "version": meta.version,
        "createdAt": meta.created_at,
        "updatedAt": meta.updated_at,
    }


async def list_(ctx: Context, input: ListInput) -> BlueprintPage:
    """Blueprints, newest first; `search` matches name or description, ignoring case."""
    total, metas = await ctx.services.store.blueprints.list(input.limit, input.offset, input.search)
    summaries = [BlueprintSummary(**msgspec.structs.asdict(meta)) for meta in metas]
    return BlueprintPage(total=total, limit=input.limit, offset=input.offset, blueprints=summaries)


async def delete(ctx: Context, input: DeleteInput) -> Deleted:
    """Delete a blueprint and its versions; past executions keep their snapshot."""
    if not await ctx.services.store.blueprints.delete(input.blueprint_id):
        raise BlueprintNotFound(input.blueprint_id)
    return Deleted(success=True, blueprint_id=input.blueprint_id)


async def validate(ctx: Context, input: Any) -> Validity:
    """Check a document without saving it; an invalid one is an answer, never an error."""
    engine = ctx.services.engine
    _, problems = find_problems(input, engine.registry, engine.limits.max_nodes)
    return Validity(valid=not problems, problems=problems)


async def node_types(ctx: Context, input: None) -> list[NodeTypeInfo]:
    """Every node type this server runs, with the JSON Schema of its config."""
    return [
        NodeTypeInfo(type=t.name, description=t.description, config_schema=t.config_schema())
        for t in ctx.services.engine.registry.types()
    ]


async def execute(ctx: Context, input: RunInput) -> execution.ExecutionStatus:
    """Run a blueprint and wait up to `waitMs` for it to finish or pause; returns its status."""
    started = await start_execution(ctx, input)
    services = ctx.services
    await services.engine.wait_settled(started.id, input.wait_ms / 1000)
    await services.store.writer.flush()
    return await execution.read_status(ctx, started.id, execution.DEFAULT_LOGS_LIMIT, ())


def _saved(meta: BlueprintMeta) -> Saved:
    return Saved(
        blueprint_id=meta.blueprint_id,
        version=meta.version,
        name=meta.name,
        created_at=meta.created_at,
        updated_at=meta.updated_at,
    )


def _document(document: dict[str, Any]) -> dict[str, Any]:
    """The document as stored: only the fields a blueprint has."""
    return {key: document[key] for key in ("name", "description", "nodes") if key in document}


router: dict[str, Procedure] = {
    "create": mutation(create, Scope.BLUEPRINTS_WRITE),
    "update": mutation(update, Scope.BLUEPRINTS_WRITE),
    "get": query(get, Scope.BLUEPRINTS_READ),
    "list": query(list_, Scope.BLUEPRINTS_READ),
    "delete": mutation(delete, Scope.BLUEPRINTS_WRITE),
    "validate": mutation(validate, Scope.BLUEPRINTS_WRITE),
    "nodeTypes": query(node_types, Scope.BLUEPRINTS_READ),
    # It starts an execution, so it asks what starting one asks, whatever its namespace.
    "execute": mutation(execute, Scope.EXECUTIONS_WRITE),
}
