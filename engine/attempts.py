"""One attempt of one node: call its handler under its timeout, and judge what came back."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec

from engine.context import NodeContext
from engine.errors import NodeError
from engine.plan import PlannedNode
from engine.records import ErrorInfo


async def invoke(planned: PlannedNode, ctx: NodeContext) -> Any:
    """The handler's output as plain JSON data; raises NodeError for every kind of failure."""
    if planned.node_type.inline:
        return invoke_inline(planned, ctx)
    handler = planned.node_type.handler
    assert handler is not None, "waiting node types are handled by the scheduler"
    timeout_ms = planned.node.timeout_ms
    try:
        if timeout_ms is None:
            output = await handler(ctx, planned.config)
        else:
            async with asyncio.timeout(timeout_ms / 1000):
                output = await handler(ctx, planned.config)
    except NodeError:
        raise
    except TimeoutError:
        raise NodeError("TIMEOUT", f"timed out after {timeout_ms} ms") from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise NodeError("NODE_ERROR", f"{type(exc).__name__}: {exc}") from exc
    return _as_data(planned, output)


def invoke_inline(planned: PlannedNode, ctx: NodeContext) -> Any:
    """As `invoke`, for a handler that returns at once and may run on the event loop."""
    handler = planned.node_type.handler
    assert handler is not None
    try:
        output = handler(ctx, planned.config)
    except NodeError:
        raise
    except Exception as exc:
        raise NodeError("NODE_ERROR", f"{type(exc).__name__}: {exc}") from exc
    return _as_data(planned, output)


def _as_data(planned: PlannedNode, output: Any) -> Any:
    if planned.node_type.plain_output:
        return output
    try:
        return msgspec.to_builtins(output)
    except Exception as exc:
        message = f"output is not JSON data: {type(exc).__name__}: {exc}"
        raise NodeError("INVALID_OUTPUT", message, retryable=False) from None


def error_info(error: NodeError, node_id: str) -> ErrorInfo:
    return ErrorInfo(code=error.code, message=error.message, node_id=node_id)


def retry_delay_ms(
    planned: PlannedNode, attempts_made: int, error: NodeError, spare: int = 0
) -> float | None:
    """Milliseconds to wait before the next attempt, or None when the attempts are over.

    `spare` extends the budget by the attempts a restart interrupted: no fault of the node."""
    policy = planned.node.retry
    if not error.retryable or attempts_made >= policy.max_attempts + spare:
        return None
    return policy.delay_ms(attempts_made - spare, random.random())
