"""A plugin node type that records each invocation in a file, so tests can see re-runs.

Load with `--plugin tests.plugins.counting`; the file is $BLUEPRINT_COUNT_FILE. Each line is
`<execution id> <node id> <attempt no>`, appended (and so kept) before the node's work begins.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec

from engine.context import NodeContext
from engine.registry import NodeRegistry


class CountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sleepMs: int = 0


def register(registry: NodeRegistry) -> None:
    @registry.node_type("count", config=CountConfig)
    async def count(ctx: NodeContext, config: CountConfig) -> Any:
        """Appends `<execution> <node> <attempt>` to $BLUEPRINT_COUNT_FILE, then sleeps."""
        line = f"{ctx.execution_id} {ctx.node_id} {ctx.attempt_no}\n".encode()
        fd = os.open(os.environ["BLUEPRINT_COUNT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        await asyncio.sleep(config.sleepMs / 1000)
        return {"node": ctx.node_id, "attempt": ctx.attempt_no}
