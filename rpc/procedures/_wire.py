"""Field types shared by the procedures' inputs: ids, paging, and the execute request."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from engine.model import Webhook


def id_pattern(prefix: str) -> str:
    r"""`<prefix>_<ms since epoch>_<5 base-36 characters>`, and nothing after: Python's `$`
    also matches before a final newline (JavaScript's does not), hence `(?!\n)`."""
    return rf"^{prefix}_[0-9]{{1,16}}_[0-9a-z]{{5}}$(?!\n)"


ExecutionId = Annotated[
    str,
    msgspec.Meta(
        pattern=id_pattern("exec"), description="exec_<ms since epoch>_<5 base-36 characters>"
    ),
]
BlueprintId = Annotated[str, msgspec.Meta(pattern=id_pattern("bp"))]
SQLITE_MAX_INT = 2**63 - 1  #: a larger number would reach SQLite as an OverflowError
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=SQLITE_MAX_INT)]
Version = Annotated[int, msgspec.Meta(ge=1, le=SQLITE_MAX_INT)]
Document = Annotated[
    dict[str, Any],
    msgspec.Meta(description="A blueprint document: {name, description?, nodes: [...]}"),
]


class Input(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class Output(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class ExecuteRequest(Input, frozen=True, kw_only=True):
    """What starts an execution: a stored blueprint (by id, newest version unless given) or an
    inline document, with its input and options."""

    blueprint_id: BlueprintId | None = None
    blueprint: Document | None = None
    version: Version | None = None
    input: Any = None
    metadata: dict[str, Any] = {}
    debug: bool = False
    trace_logs: bool = False
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] | None = None
    webhook: Webhook | None = None
