"""Stopping many executions: a batch, or everything."""

from __future__ import annotations

from engine.control import Stop
from rpc.context import Context


async def stop_executions(
    ctx: Context, active: list[tuple[str, str, str | None]]
) -> tuple[int, int]:
    """Stop each (execution id, status, batch id); returns how many were running (or paused)
    and how many queued. One that ended meanwhile counts as neither. Queued ones go first:
    stopping a running one frees its slot, and the engine would start a queued one in it."""
    running = queued = 0
    for execution_id, _, _ in sorted(active, key=lambda item: item[1] != "queued"):
        outcome = await ctx.services.engine.control(execution_id, Stop())
        running += outcome.applied and outcome.was_running
        queued += outcome.applied and outcome.was_queued
    return running, queued
