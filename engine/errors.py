"""Errors the engine raises; none knows anything of HTTP.

EngineError
├── BlueprintInvalid          a blueprint document with problems (all of them, listed)
├── InputInvalid              data that does not match an input node's schema
├── ExecutionNotFound
├── IdempotencyConflict       a known idempotency key sent with a different request
├── LimitExceeded             too many active executions, or similar operator limits
└── NodeError                 raised by node handlers: a code, a message, retryable or not
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class Problem(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One fault in a document: which node (None for the whole document), which field, what."""

    node_id: str | None
    field: str
    message: str


class EngineError(Exception):
    pass


class BlueprintInvalid(EngineError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        first = self.problems[0]
        where = f"node {first.node_id!r} " if first.node_id else ""
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(
            f"Invalid blueprint: {count} problem{'s' if count > 1 else ''}; "
            f"{where}{first.field}: {first.message}{more}"
        )


class InputInvalid(EngineError):
    def __init__(self, node_id: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        details = "; ".join(f"{p.field}: {p.message}" for p in self.problems[:3])
        super().__init__(f"Input for node {node_id!r} does not match its schema: {details}")


class ExecutionNotFound(EngineError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"No execution {execution_id}")
        self.execution_id = execution_id


class IdempotencyConflict(EngineError):
    pass


class LimitExceeded(EngineError):
    pass


class NodeError(EngineError):
    """A node attempt failed. Non-retryable errors end the attempts at once."""

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
