"""What the engine needs from storage, as Protocols; store/ implements them."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from engine.events import Event
from engine.model import Blueprint, RunOptions
from engine.records import Execution, Step


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Queue an event. Never blocks; events are made durable in the order emitted."""

    async def flush(self) -> None:
        """Return once every event emitted before this call is durable."""


class UnfinishedExecution(msgspec.Struct, kw_only=True):
    """An execution as the log last recorded it, for the engine to resume after a restart."""

    execution: Execution
    steps: list[Step]
    outputs: dict[int, Any]  #: by node position, for steps that succeeded or failed on
    blueprint: Blueprint
    input: Any
    options: RunOptions
    last_seq: int


class ResumeSource(Protocol):
    async def load_unfinished(self) -> list[UnfinishedExecution]:
        """Queued, running and paused executions, oldest first."""
