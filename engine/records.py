"""The state of executions and steps as the log keeps it and clients read it.

Records are frozen: every transition makes a new one (`msgspec.structs.replace`), so an event
can carry the record as it was, and the store can write the newest one of a group.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class ExecutionStatus(StrEnum):
    QUEUED = "queued"  #: accepted, waiting for a slot under the global concurrency limit
    RUNNING = "running"  #: nodes are being scheduled
    PAUSED = "paused"  #: no new node starts until continued (input, pause node, breakpoint, manual)
    COMPLETED = "completed"  #: every step succeeded, was skipped, or failed with continueOnError
    FAILED = "failed"  #: a step failed after its retries, or the execution timed out
    CANCELLED = "cancelled"  #: stopped by a client

    @property
    def is_final(self) -> bool:
        return self in FINAL_EXECUTION_STATUSES


#: Members compare and hash as their text, so the set also answers for status strings.
FINAL_EXECUTION_STATUSES = frozenset(
    (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
)
ACTIVE_EXECUTION_STATUSES = (
    ExecutionStatus.QUEUED,
    ExecutionStatus.RUNNING,
    ExecutionStatus.PAUSED,
)


class StepStatus(StrEnum):
    QUEUED = "queued"  #: not started: dependencies unfinished, or waiting for a slot
    RUNNING = "running"  #: an attempt is in progress, or the step waits to retry
    WAITING = "waiting"  #: the execution is paused on this step (input, pause node, breakpoint)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  #: its branch was not taken, or all its dependencies were skipped
    CANCELLED = "cancelled"  #: the execution stopped or failed before it could finish

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STEP


_FINAL_STEP = {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}


class PauseReason(StrEnum):
    INPUT = "input"
    WAIT_PAUSE = "wait-pause"
    BREAKPOINT = "breakpoint"
    MANUAL = "manual"


class LogLevel(StrEnum):
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _LEVEL_RANKS[self]


_LEVEL_RANKS = {level: rank for rank, level in enumerate(LogLevel)}


# gc=False: a record holds JSON-like values made before it, so it is never part of a cycle, and
# the collector need not count the thousands a run makes (tests/engine/test_records.py).
class Record(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    pass


class ErrorInfo(Record, frozen=True, kw_only=True):
    code: str
    message: str
    node_id: str | None = None


class Attempt(Record, frozen=True, kw_only=True):
    attempt_no: int
    started_at: str
    completed_at: str | None = None
    error: ErrorInfo | None = None


class Step(Record, frozen=True, kw_only=True):
    step_id: str
    node_id: str
    name: str
    type: str
    status: StepStatus = StepStatus.QUEUED
    attempt_no: int = 0
    predecessors_left: int = 0
    queued_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    next_retry_at: str | None = None
    error: ErrorInfo | None = None
    attempts: tuple[Attempt, ...] = ()


class AwaitingInput(Record, frozen=True, kw_only=True):
    node_id: str
    prompt: str
    schema: dict[str, Any]
    requested_at: str


class FinalOutput(Record, frozen=True, kw_only=True):
    node_id: str
    output: Any
    artifacts: tuple[dict[str, Any], ...] = ()


class Execution(Record, frozen=True, kw_only=True):
    """An execution's status except what is kept per step (steps, final outputs) and its logs."""

    id: str
    blueprint_id: str | None
    blueprint_version: int | None
    batch_id: str | None = None
    status: ExecutionStatus = ExecutionStatus.QUEUED
    progress: int = 0
    start_time: str
    end_time: str | None = None
    updated_at: str
    total_steps: int = 0
    completed_steps: int = 0
    failed_steps: int = 0
    running_steps: int = 0
    skipped_steps: int = 0
    current_step: str | None = None
    running_node_ids: tuple[str, ...] = ()
    awaiting_input: AwaitingInput | None = None
    paused_node_id: str | None = None
    pause_reason: PauseReason | None = None
    error: ErrorInfo | None = None
    metadata: dict[str, Any] = {}
    retry_of: str | None = None
    debug: bool = False
    trace_logs: bool = False
    duration_ms: int | None = None


class LogEntry(Record, frozen=True, kw_only=True):
    seq: int
    timestamp: str
    level: LogLevel
    node_id: str | None
    message: str
    data: Any = None
