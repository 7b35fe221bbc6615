"""One execution in memory: its records, the scheduling state, and every transition between them.

Transitions are plain synchronous methods, so each one is atomic on the event loop: its events
reach the sink together and are made durable together. Node attempts run as tasks; when one
ends, its task makes the next transition itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from engine import attempts, expressions, schemas
from engine.clock import iso_ms, now_ms, parse_iso_ms
from engine.context import NodeContext
from engine.errors import NodeError
from engine.events import ExecutionUpdated, LogAppended, StepUpdated, WebhookDue
from engine.model import RunOptions
from engine.plan import Plan, PlannedNode
from engine.ports import EventSink
from engine.records import (
    Attempt,
    AwaitingInput,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    LogEntry,
    LogLevel,
    PauseReason,
    Step,
    StepStatus,
)

replace = msgspec.structs.replace
_encode = msgspec.json.Encoder().encode
#: Inline nodes started in one go before the loop gets a turn.
_INLINE_BUDGET = 256
log = logging.getLogger("blueprint.engine")


@dataclass(slots=True)
class RunEnvironment:
    """What every run of one engine shares."""

    sink: EventSink
    http: Callable[[], httpx.AsyncClient]
    node_concurrency: int
    log_message_bytes: int
    on_finished: Callable[[ExecutionRun], None]
    on_paused: Callable[[ExecutionRun], None]
    on_resumed: Callable[[ExecutionRun], None]
    on_webhook: Callable[[ExecutionRun], None]


class ExecutionRun:
    def __init__(
        self,
        env: RunEnvironment,
        plan: Plan,
        execution: Execution,
        steps: list[Step],
        input: Any,
        options: RunOptions,
        *,
        outputs: dict[int, Any] | None = None,
        last_seq: int = 0,
        reuse: dict[int, tuple[Any, tuple[dict[str, Any], ...]]] | None = None,
    ) -> None:
        self.env = env
        self.plan = plan
        self.execution = execution
        self.steps = steps
        self.options = options
        self.context: dict[str, Any] = {"input": input, "metadata": execution.metadata, "nodes": {}}
        self.changed = asyncio.Event()  #: set on every status change, then replaced
        self._seq = last_seq
        self._counts = Counter(step.status for step in steps)
        self._pending = [len(p.dependencies) for p in plan.nodes]
        self._skipped_deps = [0] * len(plan.nodes)
        self._ready: deque[int] = deque()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._running_since: dict[int, int] = {}
        self._spare_attempts: Counter[int] = Counter()
        self._approved: set[int] = set()  #: breakpoints a client said to run
        self._waiting_on: int | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self._detached = False
        self._advancing = False
        self._dirty = False  #: the execution record changed since it was last sent
        #: Steps changed since last sent, with the output etc. to send with them.
        self._dirty_steps: dict[int, dict[str, Any]] = {}
        self._reuse = reuse or {}  #: outputs (and artifacts) a retry takes from the original
        self._webhook_event: str | None = None  #: a status the webhook wants to hear of
        for index, output in (outputs or {}).items():
            self._record_output(index, output, self.steps[index].status)

    @property
    def id(self) -> str:
        return self.execution.id

    @property
    def status(self) -> ExecutionStatus:
        return self.execution.status

    @property
    def waiting_on(self) -> int | None:
        return self._waiting_on

    # Lifecycle

    def start(self) -> None:
        """queued -> running: schedule the nodes whose dependencies are all done (at first,
        those without any; in a retry, also those after the steps it reuses)."""
        self._set_execution(status=ExecutionStatus.RUNNING)
        self._execution_log(LogLevel.INFO, f"Execution started: {len(self.steps)} nodes")
        # Built afresh: nothing has run yet, and reuse may already have released some nodes.
        self._ready = deque(
            p.index
            for p in self.plan.nodes
            if self._pending[p.index] == 0 and self.steps[p.index].status is StepStatus.QUEUED
        )
        self._advance()

    def apply_reuse(self) -> None:
        """A retry's steps that succeeded in the original: done, with the original's output,
        recorded with the execution's creation (so a restart before it starts keeps them).
        All are marked first, so releasing their dependants sees every one of them final."""
        original = self.execution.retry_of
        now = iso_ms(now_ms())
        for index, (output, artifacts) in self._reuse.items():
            self._set_step(index, status=StepStatus.SUCCEEDED, completed_at=now, duration_ms=0)
            self._record_output(index, output, StepStatus.SUCCEEDED)
            self._emit_step(index, output=output, artifacts=artifacts)
            node_id = self.plan.nodes[index].node.id
            self._node_log(
                LogLevel.INFO, f"Node {node_id} reused: it succeeded in {original}", index
            )
        for index, (output, _) in self._reuse.items():
            self._after_success(index, output)
        self._flush()

    def restore_counts(self) -> None:
        """After a restart: count each node's dependencies the log says are done."""
        for planned in self.plan.nodes:
            for dep in planned.dependencies:
                if self.steps[dep].status.is_final:
                    self._pending[planned.index] -= 1
                    if self.steps[dep].status is StepStatus.SKIPPED:
                        self._skipped_deps[planned.index] += 1

    def resume_after_restart(self) -> None:
        """Rebuild scheduling state from the log; rerun steps a restart interrupted."""
        self.restore_counts()
        interrupted = [i for i, s in enumerate(self.steps) if s.status is StepStatus.RUNNING]
        for index in interrupted:
            self._interrupt(index)
        if self.status is ExecutionStatus.PAUSED:
            waiting = [i for i, s in enumerate(self.steps) if s.status is StepStatus.WAITING]
            self._waiting_on = waiting[0] if waiting else None
        for planned in self.plan.nodes:
            step = self.steps[planned.index]
            if step.status is StepStatus.QUEUED and self._pending[planned.index] == 0:
                self._ready.append(planned.index)
        if self.status is ExecutionStatus.RUNNING:
            self._execution_log(LogLevel.WARN, "Resumed after a server restart")
        self._advance()

    def detach(self) -> None:
        """Stop running without recording anything: the server is shutting down, and a restart
        resumes from the log."""
        self._detached = True
        self._cancel_tasks()
        if self._timeout is not None:
            self._timeout.cancel()

    # Control: each returns None when done, or the reason it does not apply.

    def pause(self) -> str | None:
        if self.status is not ExecutionStatus.RUNNING:
            return f"execution is {self.status}, not running"
        self._set_execution(
            status=ExecutionStatus.PAUSED, pause_reason=PauseReason.MANUAL, paused_node_id=None
        )
        self._execution_log(LogLevel.INFO, "Paused by a client: no new node starts until continued")
        self._flush()
        self.env.on_paused(self)
        return None

    def continue_(self) -> str | None:
        if self.status is not ExecutionStatus.PAUSED:
            return f"execution is {self.status}, not paused"
        reason, index = self.execution.pause_reason, self._waiting_on
        if reason is PauseReason.INPUT:
            return "execution is waiting for input: use provideInput"
        if index is not None and reason is PauseReason.WAIT_PAUSE:
            self._resume()
            self._succeed_waiting(index, None)
        elif index is not None and reason is PauseReason.BREAKPOINT:
            self._approved.add(index)
            self._resume()
            self._requeue_waiting(index)
        else:
            self._resume()
        self._advance()
        return None

    def skip_breakpoint(self) -> str | None:
        if (
            self.status is not ExecutionStatus.PAUSED
            or self.execution.pause_reason is not PauseReason.BREAKPOINT
        ):
            return "execution is not paused at a breakpoint"
        index = self._waiting_on
        assert index is not None
        self._waiting_on = None
        self._resume()
        self._skip([index], "skipped at its breakpoint by a client")
        self._advance()
        return None

    def disable_breakpoints(self) -> str | None:
        if (
            self.status is not ExecutionStatus.PAUSED
            or self.execution.pause_reason is not PauseReason.BREAKPOINT
        ):
            return "execution is not paused at a breakpoint"
        self._set_execution(debug=False)
        self.log(LogLevel.INFO, "Breakpoints turned off for the rest of the run")
        return self.continue_()

    def provide_input(self, node_id: str | None, data: Any) -> str | None:
        index = self._waiting_on
        if self.execution.pause_reason is not PauseReason.INPUT or index is None:
            return f"execution is {self.status} and not waiting for input"
        waiting_id = self.plan.nodes[index].node.id
        if node_id is not None and node_id != waiting_id:
            return f"execution is waiting for input to node {waiting_id!r}, not {node_id!r}"
        schemas.require_fit(waiting_id, data, self.plan.nodes[index].config.schema)
        self._resume()
        self._succeed_waiting(index, data)
        self._advance()
        return None

    def stop(self) -> str | None:
        if self.status.is_final:
            return f"execution is already {self.status}"
        self._end_early(ExecutionStatus.CANCELLED, None, "Stopped by a client")
        return None

    def set_trace_logs(self, enabled: bool) -> None:
        self._set_execution(trace_logs=enabled)
        self.log(LogLevel.INFO, f"Trace logs {'on' if enabled else 'off'}")
        self._advance()

    def time_out(self) -> None:
        message = f"execution timed out after {self.options.timeout_ms} ms"
        self._end_early(ExecutionStatus.FAILED, ErrorInfo(code="TIMEOUT", message=message), message)

    # Logging

    def log(
        self, level: LogLevel, message: str, node_id: str | None = None, data: Any = None
    ) -> None:
        if self._detached or (level is LogLevel.TRACE and not self.execution.trace_logs):
            return
        limit = self.env.log_message_bytes
        if len(message) * 4 > limit and len(encoded := message.encode()) > limit:
            message = encoded[:limit].decode("utf-8", "ignore") + "... (truncated)"
        self._seq += 1
        entry = LogEntry(
            seq=self._seq,
            timestamp=iso_ms(now_ms()),
            level=level,
            node_id=node_id,
            message=message,
            data=data,
        )
        self.env.sink.emit(LogAppended(execution_id=self.id, entry=entry))

    def _node_log(self, level: LogLevel, message: str, index: int) -> None:
        """A line about a step's transition; its data lets subscribers see the transition."""
        step = self.steps[index]
        data = {
            "event": "node",
            "nodeType": step.type,
            "status": step.status.value,
            "attemptNo": step.attempt_no,
            "error": None if step.error is None else msgspec.to_builtins(step.error),
        }
        self.log(level, message, step.node_id, data)

    def _execution_log(self, level: LogLevel, message: str) -> None:
        """A line about the execution's own transition, with its new status as data."""
        self.log(
            level, message, None, {"event": "execution", "status": self.execution.status.value}
        )

    # Scheduling

    def _advance(self) -> None:
        """Start what is ready within the limits, finish if nothing is left, and send the
        execution record if it changed. Every transition ends here."""
        if self._advancing:
            return  # the outer call's loop takes up whatever this one would have done
        self._advancing = True
        try:
            self._start_ready()
            self._finish_if_done()
        finally:
            self._advancing = False
        self._flush()

    def _start_ready(self) -> None:
        limit = self.env.node_concurrency
        budget = _INLINE_BUDGET
        while self._ready and self.status is ExecutionStatus.RUNNING and len(self._tasks) < limit:
            if budget == 0:
                # Inline nodes run without yielding: let the server breathe, then go on.
                asyncio.get_running_loop().call_soon(self._advance)
                return
            budget -= 1
            index = self._ready.popleft()
            if not self.steps[index].status.is_final:
                self._begin(index)
        if self._ready and self.execution.trace_logs and self.status is ExecutionStatus.RUNNING:
            waiting = len(self._ready)
            self.log(LogLevel.TRACE, f"{waiting} ready node(s) wait: {limit} already running")

    def _finish_if_done(self) -> None:
        if self._tasks or self._ready or self.status is not ExecutionStatus.RUNNING:
            return
        finals = sum(n for status, n in self._counts.items() if status.is_final)
        if finals == len(self.steps):
            self._finish(ExecutionStatus.COMPLETED)
        else:
            # Unreachable if the transitions are right; failing beats hanging forever.
            stuck = ErrorInfo(code="INTERNAL", message="no step can run and some never finished")
            self._end_early(ExecutionStatus.FAILED, stuck, "Execution stuck: " + stuck.message)

    def _begin(self, index: int) -> None:
        planned = self.plan.nodes[index]
        if planned.node_type.waits is not None:
            self._pause_on(index, planned.node_type.waits)
        elif planned.node.breakpoint and self.execution.debug and not self._let_through(index):
            self._pause_on(index, PauseReason.BREAKPOINT)
        elif planned.node_type.inline:
            self._run_inline(index)
        else:
            self._tasks[index] = asyncio.ensure_future(self._drive(index))

    def _let_through(self, index: int) -> bool:
        """A client let this node past its breakpoint: here, or before a restart (it has an
        attempt, so it ran, and is only being run again)."""
        return index in self._approved or self.steps[index].attempt_no > 0

    def _run_inline(self, index: int) -> None:
        """First attempt of a node type that never waits, at once; a retry needs a task."""
        planned = self.plan.nodes[index]
        ctx = self._begin_attempt(index)
        try:
            output = attempts.invoke_inline(planned, ctx)
        except NodeError as error:
            spare = self._spare_attempts[index]
            delay = attempts.retry_delay_ms(planned, ctx.attempt_no, error, spare)
            if delay is None:
                self._step_failed(index, error)
            else:
                self._attempt_failed(index, error, delay)
                self._tasks[index] = asyncio.ensure_future(self._drive(index, delay))
            return
        self._step_succeeded(index, output, ctx)

    async def _drive(self, index: int, wait_ms: float = 0.0) -> None:
        """Attempts of one node until it succeeds or its attempts are over."""
        planned = self.plan.nodes[index]
        try:
            if wait_ms:
                await asyncio.sleep(wait_ms / 1000)
            while True:
                ctx = self._begin_attempt(index)
                self._advance()
                try:
                    output = await attempts.invoke(planned, ctx)
                except NodeError as error:
                    spare = self._spare_attempts[index]
                    delay = attempts.retry_delay_ms(planned, ctx.attempt_no, error, spare)
                    if delay is None:
                        self._step_failed(index, error)
                        return
                    self._attempt_failed(index, error, delay)
                    await asyncio.sleep(delay / 1000)
                    continue
                self._step_succeeded(index, output, ctx)
                return
        except Exception as exc:
            # A fault of the engine, not the node: fail the step rather than leave it running.
            log.exception("execution %s node %s", self.id, planned.node.id)
            if index in self._tasks:
                self._step_failed(
                    index, NodeError("INTERNAL", f"{type(exc).__name__}: {exc}", retryable=False)
                )

    def _begin_attempt(self, index: int) -> NodeContext:
        step = self.steps[index]
        now = now_ms()
        attempt_no = step.attempt_no + 1
        self._running_since.setdefault(index, now)
        self._set_step(
            index,
            status=StepStatus.RUNNING,
            attempt_no=attempt_no,
            started_at=step.started_at or iso_ms(now),
            next_retry_at=None,
            attempts=(*step.attempts, Attempt(attempt_no=attempt_no, started_at=iso_ms(now))),
        )
        planned = self.plan.nodes[index]
        node_id = planned.node.id
        self._node_log(LogLevel.INFO, f"Node {node_id} started (attempt {attempt_no})", index)
        if self.execution.trace_logs:
            self.log(LogLevel.TRACE, f"Node {node_id} config", node_id, self._resolved(planned))
        self._dirty = True
        return NodeContext(
            execution_id=self.id,
            node_id=node_id,
            attempt_no=attempt_no,
            dependencies=planned.node.depends_on,
            context=self.context,
            log=lambda level, message, data: self.log(level, message, node_id, data),
            http=self.env.http,
        )

    def _step_succeeded(self, index: int, output: Any, ctx: NodeContext) -> None:
        self._tasks.pop(index, None)
        planned = self.plan.nodes[index]
        self._complete_attempt(index, StepStatus.SUCCEEDED, None)
        self._record_output(index, output, StepStatus.SUCCEEDED)
        self._emit_step(
            index, output=output, artifacts=tuple(ctx.artifacts), metrics=dict(ctx.metrics)
        )
        step = self.steps[index]
        self._node_log(
            LogLevel.INFO, f"Node {planned.node.id} succeeded in {step.duration_ms} ms", index
        )
        if self.execution.trace_logs:
            self.log(LogLevel.TRACE, f"Node {planned.node.id} output", planned.node.id, output)
        self._after_success(index, output)
        self._dirty = True
        self._advance()

    def _after_success(self, index: int, output: Any) -> None:
        """A condition's untaken branch is skipped; dependants count this node as done."""
        planned = self.plan.nodes[index]
        if planned.then_branch or planned.else_branch:
            taken = output.get("branch") if isinstance(output, dict) else None
            not_taken = planned.else_branch if taken == "then" else planned.then_branch
            self._skip(sorted(not_taken), f"branch not taken by {planned.node.id}")
        self._release(planned.dependants, skipped=False)

    def _attempt_failed(self, index: int, error: NodeError, delay_ms: float) -> None:
        step = self.steps[index]
        node_id = self.plan.nodes[index].node.id
        info = attempts.error_info(error, node_id)
        retry_at = iso_ms(now_ms() + int(delay_ms))
        last = replace(step.attempts[-1], completed_at=iso_ms(now_ms()), error=info)
        self._set_step(
            index, attempts=(*step.attempts[:-1], last), next_retry_at=retry_at, error=info
        )
        self._node_log(
            LogLevel.WARN,
            f"Node {node_id} attempt {step.attempt_no} failed ({error.code}: {error.message}); "
            f"retrying at {retry_at}",
            index,
        )
        self._dirty = True
        self._advance()

    def _step_failed(self, index: int, error: NodeError) -> None:
        self._tasks.pop(index, None)
        planned = self.plan.nodes[index]
        info = attempts.error_info(error, planned.node.id)
        self._complete_attempt(index, StepStatus.FAILED, info)
        self._emit_step(index)
        self._node_log(
            LogLevel.ERROR,
            f"Node {planned.node.id} failed after {self.steps[index].attempt_no} attempt(s): "
            f"{error.code}: {error.message}",
            index,
        )
        if planned.node.continue_on_error:
            self._record_output(index, None, StepStatus.FAILED)
            self._release(planned.dependants, skipped=False)
            self._dirty = True
            self._advance()
        else:
            self._end_early(
                ExecutionStatus.FAILED, info, f"Execution failed at node {planned.node.id}"
            )

    def _complete_attempt(self, index: int, status: StepStatus, error: ErrorInfo | None) -> None:
        step = self.steps[index]
        now = now_ms()
        started = self._running_since.pop(index, now)
        last = replace(step.attempts[-1], completed_at=iso_ms(now), error=error)
        self._set_step(
            index,
            status=status,
            completed_at=iso_ms(now),
            duration_ms=now - started,
            next_retry_at=None,
            error=error,
            attempts=(*step.attempts[:-1], last),
        )

    def _release(self, dependants: Iterable[int], skipped: bool) -> list[int]:
        """Count a finished dependency against each dependant. Those now free become ready,
        unless all their dependencies were skipped: those are returned, to be skipped."""
        all_skipped = []
        for index in dependants:
            if self.steps[index].status.is_final:
                continue
            self._pending[index] -= 1
            if skipped:
                self._skipped_deps[index] += 1
            self._set_step(index, predecessors_left=self._pending[index])
            if self._pending[index] == 0:
                if self._skipped_deps[index] == len(self.plan.nodes[index].dependencies):
                    all_skipped.append(index)
                else:
                    self._ready.append(index)
                    if self.execution.trace_logs:
                        node_id = self.plan.nodes[index].node.id
                        self.log(
                            LogLevel.TRACE,
                            f"Node {node_id} ready: its dependencies are done",
                            node_id,
                        )
        return all_skipped

    def _skip(self, indices: Iterable[int], why: str) -> None:
        """Skip these steps, and every dependant whose dependencies all end up skipped."""
        work = deque(indices)
        while work:
            index = work.popleft()
            if self.steps[index].status.is_final:
                continue
            with contextlib.suppress(ValueError):
                self._ready.remove(index)
            self._set_step(index, status=StepStatus.SKIPPED, completed_at=iso_ms(now_ms()))
            self._record_output(index, None, StepStatus.SKIPPED)
            planned = self.plan.nodes[index]
            self._node_log(LogLevel.INFO, f"Node {planned.node.id} skipped: {why}", index)
            work.extend(self._release(planned.dependants, skipped=True))
            why = "all its dependencies were skipped"
        self._dirty = True

    # Pausing

    def _pause_on(self, index: int, reason: PauseReason) -> None:
        planned = self.plan.nodes[index]
        now = iso_ms(now_ms())
        awaiting = None
        if reason is PauseReason.INPUT:
            awaiting = AwaitingInput(
                node_id=planned.node.id,
                prompt=planned.config.prompt,
                schema=planned.config.schema,
                requested_at=now,
            )
        self._waiting_on = index
        step = self.steps[index]
        if reason is PauseReason.BREAKPOINT:
            # Not started yet: its attempt begins when a client lets it run.
            self._set_step(index, status=StepStatus.WAITING)
        else:
            # Waiting for a person is this node's work: one attempt, from now until answered.
            attempt = Attempt(attempt_no=step.attempt_no + 1, started_at=now)
            self._set_step(
                index,
                status=StepStatus.WAITING,
                started_at=now,
                attempt_no=attempt.attempt_no,
                attempts=(*step.attempts, attempt),
            )
        self._set_execution(
            status=ExecutionStatus.PAUSED,
            pause_reason=reason,
            paused_node_id=planned.node.id,
            awaiting_input=awaiting,
        )
        self._node_log(LogLevel.INFO, f"Paused at node {planned.node.id} ({reason})", index)
        self._flush()
        self.env.on_paused(self)

    def _resume(self) -> None:
        self._set_execution(
            status=ExecutionStatus.RUNNING,
            pause_reason=None,
            paused_node_id=None,
            awaiting_input=None,
        )
        self._execution_log(LogLevel.INFO, "Continued")
        self.env.on_resumed(self)

    def _succeed_waiting(self, index: int, output: Any) -> None:
        self._waiting_on = None
        planned = self.plan.nodes[index]
        step = self.steps[index]
        now = now_ms()
        stamp = iso_ms(now)
        attempts_ = step.attempts
        if attempts_ and attempts_[-1].completed_at is None:
            attempts_ = (*attempts_[:-1], replace(attempts_[-1], completed_at=stamp))
        started = parse_iso_ms(step.started_at) if step.started_at else now
        self._set_step(
            index,
            status=StepStatus.SUCCEEDED,
            completed_at=stamp,
            duration_ms=max(0, now - started),
            attempts=attempts_,
        )
        self._record_output(index, output, StepStatus.SUCCEEDED)
        self._emit_step(index, output=output)
        self._node_log(LogLevel.INFO, f"Node {planned.node.id} succeeded", index)
        self._after_success(index, output)

    def _requeue_waiting(self, index: int) -> None:
        self._waiting_on = None
        self._set_step(index, status=StepStatus.QUEUED, started_at=None)
        self._ready.appendleft(index)

    # Ending

    def _end_early(self, status: ExecutionStatus, error: ErrorInfo | None, message: str) -> None:
        """Fail or cancel: running attempts are cancelled, unfinished steps become cancelled."""
        self._cancel_tasks()
        now = iso_ms(now_ms())
        cancelled = ErrorInfo(code="CANCELLED", message=message)
        for index, step in enumerate(self.steps):
            if step.status.is_final:
                continue
            attempts_ = step.attempts
            # A waiting input or pause node is inside its one attempt too.
            if (
                step.status in (StepStatus.RUNNING, StepStatus.WAITING)
                and attempts_
                and attempts_[-1].completed_at is None
            ):
                attempts_ = (
                    *attempts_[:-1],
                    replace(attempts_[-1], completed_at=now, error=cancelled),
                )
            self._set_step(
                index,
                status=StepStatus.CANCELLED,
                completed_at=now,
                attempts=attempts_,
                next_retry_at=None,
            )
        self._ready.clear()
        self._running_since.clear()
        self._waiting_on = None
        self._finish(status, error, message)

    def _finish(
        self, status: ExecutionStatus, error: ErrorInfo | None = None, message: str = ""
    ) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
        now = now_ms()
        self._set_execution(
            status=status,
            end_time=iso_ms(now),
            error=error,
            pause_reason=None,
            paused_node_id=None,
            awaiting_input=None,
            duration_ms=max(0, now - parse_iso_ms(self.execution.start_time)),
        )
        if status is ExecutionStatus.COMPLETED:
            message = f"Execution completed in {self.execution.duration_ms} ms"
        level = {ExecutionStatus.COMPLETED: LogLevel.INFO, ExecutionStatus.FAILED: LogLevel.ERROR}
        self._execution_log(level.get(status, LogLevel.WARN), message)
        # Sent before the engine admits the next execution into the freed slot.
        self._flush()
        self.env.on_finished(self)

    def _cancel_tasks(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    def _interrupt(self, index: int) -> None:
        step = self.steps[index]
        interrupted = ErrorInfo(
            code="INTERRUPTED", message="the server stopped during this attempt"
        )
        attempts_ = step.attempts
        if attempts_ and attempts_[-1].completed_at is None:
            attempts_ = (
                *attempts_[:-1],
                replace(attempts_[-1], completed_at=iso_ms(now_ms()), error=interrupted),
            )
        self._spare_attempts[index] += 1
        self._set_step(index, status=StepStatus.QUEUED, attempts=attempts_, next_retry_at=None)
        self._dirty = True  # runningSteps and runningNodeIds change, paused or not
        node_id = self.plan.nodes[index].node.id
        self._node_log(
            LogLevel.WARN,
            f"Node {node_id} was running (attempt {step.attempt_no}) when the server stopped; "
            f"running it again as attempt {step.attempt_no + 1}",
            index,
        )

    def arm_timeout(self) -> None:
        """Start the execution's clock: it runs from acceptance, queued and paused included."""
        if (
            self.options.timeout_ms is not None
            and self._timeout is None
            and not self.status.is_final
        ):
            elapsed = now_ms() - parse_iso_ms(self.execution.start_time)
            delay = max(0.0, (self.options.timeout_ms - elapsed) / 1000)
            self._timeout = asyncio.get_running_loop().call_later(delay, self.time_out)

    # Records

    def _set_step(self, index: int, **changes: Any) -> None:
        old = self.steps[index]
        new = replace(old, **changes)
        self.steps[index] = new
        if new.status is not old.status:
            self._counts[old.status] -= 1
            self._counts[new.status] += 1
            if new.status is not StepStatus.RUNNING:
                self._running_since.pop(index, None)
        self._dirty_steps.setdefault(index, {})

    def _emit_step(self, index: int, **extra: Any) -> None:
        """Send the step with its output (or artifacts, metrics) when the transition ends."""
        self._dirty_steps.setdefault(index, {}).update(extra)

    def _flush(self) -> None:
        """Send what this transition changed: each changed step once, then the execution."""
        if self._detached:
            self._dirty_steps.clear()
            return
        if self._dirty_steps:
            emit, nodes = self.env.sink.emit, self.plan.nodes
            for index, extra in self._dirty_steps.items():
                step = self.steps[index]
                leaf = nodes[index].is_leaf
                if type(extra.get("output")) is dict:
                    shared = self._shared_parts(index, extra["output"])
                    if shared:
                        extra["shared"] = shared
                emit(StepUpdated(execution_id=self.id, index=index, step=step, leaf=leaf, **extra))
            self._dirty_steps = {}
        if self._dirty:
            self._emit_execution()

    def _shared_parts(self, index: int, output: dict[str, Any]) -> dict[str, int]:
        """The entries of `output` that are a dependency's output object itself (not a copy):
        checked at flush time, when every output a retry reuses is in the context."""
        nodes, context = self.plan.nodes, self.context["nodes"]
        outputs_of: dict[int, int] = {}
        for dep in nodes[index].dependencies:
            entry = context.get(nodes[dep].node.id)
            if entry is not None and type(entry["output"]) in (dict, list) and entry["output"]:
                outputs_of[id(entry["output"])] = dep
        if not outputs_of or not all(type(key) is str for key in output):
            return {}
        return {
            key: outputs_of[id(value)] for key, value in output.items() if id(value) in outputs_of
        }

    def _resolved(self, planned: PlannedNode) -> Any:
        """The config with its templates filled in, as the attempt sees it (for trace logs)."""
        try:
            return expressions.render(planned.node.config, self.context)
        except expressions.ExpressionError:
            return planned.node.config

    def _record_output(self, index: int, output: Any, status: StepStatus) -> None:
        node_id = self.plan.nodes[index].node.id
        self.context["nodes"][node_id] = {"output": output, "status": status.value}

    def _set_execution(self, **changes: Any) -> None:
        """Change the record now (it decides what happens next); it is sent by `_advance`."""
        status_changed = "status" in changes and changes["status"] is not self.execution.status
        self.execution = replace(self.execution, **changes)
        self._dirty = True
        if status_changed:
            self.changed.set()
            self.changed = asyncio.Event()
            webhook = self.options.webhook
            if webhook is not None and self.execution.status.value in webhook.events:
                self._webhook_event = self.execution.status.value

    def _emit_execution(self) -> None:
        """Send the execution record, its derived fields brought up to date."""
        counts = self._counts
        completed = counts[StepStatus.SUCCEEDED] + counts[StepStatus.SKIPPED]
        total = len(self.steps)
        running = [self.plan.nodes[i].node.id for i in self._running_since]
        self.execution = replace(
            self.execution,
            updated_at=iso_ms(now_ms()),
            completed_steps=completed,
            failed_steps=counts[StepStatus.FAILED],
            running_steps=counts[StepStatus.RUNNING],
            skipped_steps=counts[StepStatus.SKIPPED],
            progress=100
            if self.execution.status is ExecutionStatus.COMPLETED
            else (100 * completed) // max(total, 1),
            current_step=running[0] if running else None,
            running_node_ids=tuple(running),
        )
        self._dirty = False
        if not self._detached:
            self.env.sink.emit(ExecutionUpdated(execution_id=self.id, execution=self.execution))
            if self._webhook_event is not None:
                self._webhook_due(self._webhook_event)

    def _webhook_due(self, event: str) -> None:
        """Queue the webhook with the record it reports; it is written with that record."""
        self._webhook_event = None
        webhook = self.options.webhook
        assert webhook is not None
        body = _encode({"event": event, "executionId": self.id, "execution": self.execution})
        self.env.sink.emit(
            WebhookDue(
                execution_id=self.id, event=event, url=webhook.url, secret=webhook.secret, body=body
            )
        )
        self.env.on_webhook(self)
