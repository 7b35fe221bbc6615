"""What the engine tells its sink: a tagged union of frozen records, in the order things happen.

Each event carries the whole record after the transition, so a sink may keep only the newest
record of each step and execution it has not yet written.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.control import Outcome
from engine.model import Blueprint, RunOptions
from engine.records import Execution, LogEntry, Step


# gc=False for the reason records have it (engine/records.py).
class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    execution_id: str


class ExecutionCreated(Event, frozen=True, tag="execution.created"):
    execution: Execution
    steps: tuple[Step, ...]
    blueprint: Blueprint  #: the snapshot this execution runs, whatever happens to the original
    input: Any
    options: RunOptions
    owner: str | None = None  #: the engine that runs it
    started_by: str | None = None  #: who asked for it (a caller's name), for per-caller limits


class ExecutionUpdated(Event, frozen=True, tag="execution.updated"):
    execution: Execution


class StepUpdated(Event, frozen=True, tag="step.updated"):
    index: int  #: the node's position in the blueprint
    step: Step
    output: Any = msgspec.UNSET  #: set once the step has an output (succeeded)
    leaf: bool = False  #: no node depends on it, so its output is one of the final outputs
    artifacts: tuple[dict[str, Any], ...] | msgspec.UnsetType = msgspec.UNSET
    metrics: dict[str, float] | msgspec.UnsetType = msgspec.UNSET
    #: Top-level keys of a dict `output` whose values are, unchanged, the output of the step at
    #: the given index (a noop passes its dependencies' outputs on): a sink may store those by
    #: reference, so a chain of n such nodes costs O(n) bytes rather than O(n^2).
    shared: dict[str, int] | msgspec.UnsetType = msgspec.UNSET


class LogAppended(Event, frozen=True, tag="log.appended"):
    entry: LogEntry


class ControlApplied(Event, frozen=True, tag="control.applied"):
    """A recorded command's outcome, committed with the effects it had."""

    command_id: int
    outcome: Outcome


class WebhookDue(Event, frozen=True, tag="webhook.due"):
    """A webhook to deliver: recorded with the change it reports, so a crash cannot lose it."""

    event: str
    url: str
    secret: str | None
    body: bytes


EngineEvent = (
    ExecutionCreated | ExecutionUpdated | StepUpdated | LogAppended | ControlApplied | WebhookDue
)
