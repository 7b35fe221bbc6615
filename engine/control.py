"""Control commands: what a client can ask of an execution, and how a run answers.

Commands go through the log: each is recorded before anything acts on it, applied by the
engine that runs the execution in the order recorded, and its outcome is written in the same
transaction as its effects. So a command takes effect whichever server received it, survives a
restart, and two racing commands get one answer each, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from engine.errors import InputInvalid
from engine.records import ExecutionStatus

if TYPE_CHECKING:
    from engine.run import ExecutionRun


class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="action", rename="camel"):
    pass


class Stop(Command, frozen=True, kw_only=True, tag="stop"):
    pass


class Pause(Command, frozen=True, kw_only=True, tag="pause"):
    pass


class Continue(Command, frozen=True, kw_only=True, tag="continue"):
    pass


class SkipBreakpoint(Command, frozen=True, kw_only=True, tag="skip"):
    pass


class ContinueWithoutBreakpoint(
    Command, frozen=True, kw_only=True, tag="continueWithoutBreakpoint"
):
    pass


class ProvideInput(Command, frozen=True, kw_only=True, tag="provideInput"):
    node_id: str | None = None
    data: Any = None


class SetTraceLogs(Command, frozen=True, kw_only=True, tag="setTraceLogs"):
    enabled: bool


AnyCommand = (
    Stop
    | Pause
    | Continue
    | SkipBreakpoint
    | ContinueWithoutBreakpoint
    | ProvideInput
    | SetTraceLogs
)


class Outcome(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    applied: bool
    message: str
    was_running: bool = False  #: running or paused when the command came (stop)
    was_queued: bool = False


class RecordedCommand(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    execution_id: str
    command: AnyCommand


_DONE = {
    Stop: "Execution stopped",
    Pause: "Execution paused: no new node starts until it is continued",
    Continue: "Execution continued",
    SkipBreakpoint: "Node skipped; execution continued",
    ContinueWithoutBreakpoint: "Breakpoints off; execution continued",
    ProvideInput: "Input accepted; execution continued",
}


def apply(run: ExecutionRun, command: AnyCommand) -> Outcome:
    """Act on a live run; a command that does not fit its state changes nothing."""
    before = run.status
    match command:
        case Stop():
            refusal = run.stop()
        case Pause():
            refusal = run.pause()
        case Continue():
            refusal = run.continue_()
        case SkipBreakpoint():
            refusal = run.skip_breakpoint()
        case ContinueWithoutBreakpoint():
            refusal = run.disable_breakpoints()
        case ProvideInput(node_id=node_id, data=data):
            try:
                refusal = run.provide_input(node_id, data)
            except InputInvalid as exc:
                refusal = str(exc)
        case SetTraceLogs(enabled=enabled):
            run.set_trace_logs(enabled)
            refusal = None
    if refusal is not None:
        return Outcome(applied=False, message=_sentence(refusal))
    if isinstance(command, SetTraceLogs):
        return Outcome(applied=True, message=f"Trace logs {'on' if command.enabled else 'off'}")
    return Outcome(
        applied=True,
        message=_DONE[type(command)],
        was_running=isinstance(command, Stop) and before is not ExecutionStatus.QUEUED,
        was_queued=isinstance(command, Stop) and before is ExecutionStatus.QUEUED,
    )


def refuse_finished(status: ExecutionStatus) -> Outcome:
    """The answer for an execution no engine runs any more."""
    return Outcome(applied=False, message=f"Execution is already {status}")


def _sentence(reason: str) -> str:
    return reason[:1].upper() + reason[1:]
