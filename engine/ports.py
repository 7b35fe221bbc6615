"""What the engine needs from storage, as Protocols; store/ implements them."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from engine.control import AnyCommand, Outcome, RecordedCommand
from engine.events import Event
from engine.model import Blueprint, RunOptions
from engine.records import AwaitingInput, Execution, ExecutionStatus, LogLevel, Step


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
    async def load_unfinished(self, owner: str | None = None) -> list[UnfinishedExecution]:
        """Queued, running and paused executions (of `owner`, or all), oldest first."""


class Ownership(Protocol):
    """Which engine runs which execution, when several share one log."""

    def register(self, engine_id: str) -> None:
        """Mark this engine alive for as long as its process lives."""

    def unregister(self, engine_id: str) -> None: ...

    async def claim_orphans(self, engine_id: str) -> int:
        """Take over the executions of engines that died; returns how many."""


class PendingCommand(msgspec.Struct, frozen=True, kw_only=True):
    recorded: RecordedCommand
    status: ExecutionStatus  #: of its execution, now


class ControlLog(Protocol):
    async def record(self, execution_id: str, command: AnyCommand) -> int:
        """Keep the command; it is durable when this returns. Returns its id (order)."""

    async def pending(self) -> list[PendingCommand]:
        """Commands without an outcome yet, oldest first."""

    async def outcome(self, command_id: int) -> Outcome | None:
        """The outcome, once an engine (this one or another) has applied the command."""

    async def awaiting_input(self, execution_id: str) -> AwaitingInput | None:
        """What the execution waits for, as last committed."""


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    execution_id: str
    event: str
    url: str
    secret: str | None
    body: bytes
    attempts: int  #: made so far


class DeliveryLog(Protocol):
    async def due(self, owner: str | None = None, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose next attempt is due (of `owner`'s executions), oldest first."""

    async def attempted(
        self, delivery_id: int, attempts: int, status: str, error: str | None, next_at: int
    ) -> None:
        """Record an attempt: status stays `pending` (retry at next_at), or ends it."""

    async def append_log(
        self, execution_id: str, level: LogLevel, message: str, data: Any = None
    ) -> None:
        """A log line for an execution that has finished (no run holds it)."""
