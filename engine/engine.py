"""The engine: admits executions under the global limit, runs them, resumes them after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter, deque
from typing import Any

import httpx
import msgspec

from engine import control, schemas
from engine.clock import iso_ms, now_ms
from engine.control import AnyCommand, Outcome, ProvideInput
from engine.events import ControlApplied, ExecutionCreated, ExecutionUpdated
from engine.ids import new_id, step_id
from engine.model import Blueprint, RunOptions
from engine.plan import Plan
from engine.ports import (
    ControlLog,
    DeliveryLog,
    EventSink,
    Ownership,
    ResumeSource,
    UnfinishedExecution,
)
from engine.records import Execution, ExecutionStatus, LogLevel, Step, StepStatus
from engine.registry import NodeRegistry
from engine.run import ExecutionRun, RunEnvironment
from engine.validation import DEFAULT_MAX_NODES, compile_blueprint
from engine.webhooks import WebhookDeliverer, WebhookPolicy

log = logging.getLogger("blueprint.engine")


class EngineLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_running_executions: int = 16  #: executions running at once; the rest wait, FIFO
    node_concurrency: int = 8  #: nodes running at once within one execution
    max_nodes: int = DEFAULT_MAX_NODES
    log_message_bytes: int = 8192
    control_poll_seconds: float = 0.2  #: how often to look for commands other servers recorded
    control_wait_seconds: float = 10.0  #: how long a caller waits for a command's outcome
    adopt_seconds: float = 2.0  #: how often to look for executions of engines that died


class Engine:
    def __init__(
        self,
        registry: NodeRegistry,
        sink: EventSink,
        limits: EngineLimits | None = None,
        controls: ControlLog | None = None,
        deliveries: DeliveryLog | None = None,
        webhooks: WebhookPolicy | None = None,
        owners: Ownership | None = None,
    ) -> None:
        self.id = new_id("engine", now_ms())
        self.registry = registry
        self._owners = owners
        self._resume_source: ResumeSource | None = None
        self._adopt_task: asyncio.Task[None] | None = None
        self.sink = sink
        self.controls = controls
        self._control_wake = asyncio.Event()
        self._control_waiters: dict[int, asyncio.Future[Outcome]] = {}
        self._control_task: asyncio.Task[None] | None = None
        self.webhooks = webhooks or WebhookPolicy()
        self._deliveries = deliveries
        self._deliverer = (
            WebhookDeliverer(
                deliveries,
                self._http_client,
                self.note,
                self.webhooks,
                owner=self.id if owners is not None else None,
            )
            if deliveries is not None
            else None
        )
        self._deliver_task: asyncio.Task[None] | None = None
        self.limits = limits or EngineLimits()
        # Outputs nest one level per node along a chain of noops (each passes its dependency's
        # output on), and encoding or decoding them recurses once per level.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 2 * self.limits.max_nodes + 1000))
        self._runs: dict[str, ExecutionRun] = {}  #: queued, running and paused
        self._queue: deque[ExecutionRun] = deque()
        self._holding: set[str] = set()  #: runs holding a slot under the global limit
        self._batch_holding: Counter[str] = Counter()  #: slots held, by batch
        self._http: httpx.AsyncClient | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._env = RunEnvironment(
            sink=sink,
            http=self._http_client,
            node_concurrency=self.limits.node_concurrency,
            log_message_bytes=self.limits.log_message_bytes,
            on_finished=self._finished,
            on_paused=self._release_slot,
            on_resumed=self._take_slot,
            on_webhook=self._webhook_queued,
        )

    def validate(self, document: Any) -> Blueprint:
        """The blueprint, or BlueprintInvalid listing every problem."""
        return self.compile(document).blueprint

    def compile(self, document: Any) -> Plan:
        """The blueprint compiled to run (configs parsed once), or BlueprintInvalid."""
        return compile_blueprint(document, self.registry, self.limits.max_nodes)

    async def start(
        self,
        blueprint: Blueprint | Plan,
        *,
        blueprint_id: str | None,
        blueprint_version: int | None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        options: RunOptions | None = None,
        batch_id: str | None = None,
        retry_of: str | None = None,
        execution_id: str | None = None,
        reuse: dict[str, tuple[Any, tuple[dict[str, Any], ...]]] | None = None,
        started_by: str | None = None,
    ) -> Execution:
        """Create an execution of a compiled blueprint and admit it; returns once its creation
        is durable. `reuse` maps node ids to the (output, artifacts) a retry takes over: those
        steps count as succeeded and do not run."""
        options = options or RunOptions()
        plan = blueprint if isinstance(blueprint, Plan) else Plan.build(blueprint, self.registry)
        now = now_ms()
        created = iso_ms(now)
        execution = Execution(
            id=execution_id or new_id("exec", now),
            blueprint_id=blueprint_id,
            blueprint_version=blueprint_version,
            batch_id=batch_id,
            start_time=created,
            updated_at=created,
            total_steps=len(plan.nodes),
            metadata=metadata or {},
            retry_of=retry_of,
            debug=options.debug,
            trace_logs=options.trace_logs,
        )
        steps = [
            Step(
                step_id=step_id(p.index),
                node_id=p.node.id,
                name=p.node.title,
                type=p.node.type,
                predecessors_left=len(p.dependencies),
                queued_at=created,
            )
            for p in plan.nodes
        ]
        reused = {plan.index_of[node_id]: kept for node_id, kept in (reuse or {}).items()}
        run = ExecutionRun(self._env, plan, execution, steps, input, options, reuse=reused)
        self.sink.emit(
            ExecutionCreated(
                execution_id=execution.id,
                execution=execution,
                steps=tuple(steps),
                blueprint=plan.blueprint,
                input=input,
                options=options,
                owner=self.id,
                started_by=started_by,
            )
        )
        run.log(LogLevel.INFO, f"Execution queued: {plan.blueprint.name}")
        run.apply_reuse()
        self._runs[execution.id] = run
        run.arm_timeout()
        self._admit(run)
        await self.sink.flush()
        return run.execution

    def get(self, execution_id: str) -> ExecutionRun | None:
        return self._runs.get(execution_id)

    def active(self) -> list[ExecutionRun]:
        return list(self._runs.values())

    @property
    def queued_count(self) -> int:
        return len(self._queue)

    async def wait_settled(self, execution_id: str, timeout: float) -> None:
        """Until the execution ends or pauses, or `timeout` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (run := self._runs.get(execution_id)) is not None:
            if run.status in (ExecutionStatus.PAUSED,) or run.status.is_final:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await run.changed.wait()
            except TimeoutError:
                return

    async def resume(self, source: ResumeSource) -> int:
        """Take up what the log says was unfinished; returns how many executions. With several
        engines on one log, only this engine's own and those of engines that died."""
        self._resume_source = source
        if self._owners is None:
            return await self._take_up(await source.load_unfinished())
        self._owners.register(self.id)
        await self._owners.claim_orphans(self.id)
        return await self._take_up(await source.load_unfinished(owner=self.id))

    async def _take_up(self, unfinished: list[UnfinishedExecution]) -> int:
        runs = []
        for item in unfinished:
            if item.execution.id in self._runs:
                continue
            plan = Plan.build(item.blueprint, self.registry)
            run = ExecutionRun(
                self._env,
                plan,
                item.execution,
                item.steps,
                item.input,
                item.options,
                outputs=item.outputs,
                last_seq=item.last_seq,
            )
            self._runs[run.id] = run
            runs.append(run)
        if runs and self.controls is not None:
            # A stop recorded while no engine ran these is honoured before anything restarts:
            # otherwise a step the crash interrupted would run again only to be cancelled.
            await self._apply_pending(only=(control.Stop,))
        for run in runs:
            if run.status.is_final:
                continue
            run.arm_timeout()
            if run.status is ExecutionStatus.QUEUED:
                run.restore_counts()  # a retry's reused steps are already done
                self._admit(run)
            elif run.status is ExecutionStatus.RUNNING:
                self._hold(run)
                run.resume_after_restart()
            else:
                run.resume_after_restart()
        return len(runs)

    async def _adopt_forever(self) -> None:
        assert self._owners is not None and self._resume_source is not None
        while True:
            await asyncio.sleep(self.limits.adopt_seconds)
            try:
                if await self._owners.claim_orphans(self.id):
                    unfinished = await self._resume_source.load_unfinished(owner=self.id)
                    if taken := await self._take_up(unfinished):
                        log.info("took over %d executions of an engine that stopped", taken)
                    if self._deliverer is not None:
                        self._deliverer.wake()
            except Exception:
                log.exception("taking over executions of stopped engines failed; trying again")

    # Control

    def start_background(self) -> None:
        """Begin applying control commands and delivering webhooks (after resume, so restored
        runs can take their commands)."""
        if self.controls is not None and self._control_task is None:
            self._control_task = asyncio.ensure_future(self._apply_commands_forever())
        if self._deliverer is not None and self._deliver_task is None:
            self._deliver_task = asyncio.ensure_future(self._deliverer.run_forever())
        if self._owners is not None and self._resume_source is not None:
            self._adopt_task = asyncio.ensure_future(self._adopt_forever())

    async def note(self, execution_id: str, level: LogLevel, message: str) -> None:
        """Add a line to an execution's log, whether a run still holds it or not."""
        run = self._runs.get(execution_id)
        if run is not None:
            run.log(level, message)
        elif self._deliveries is not None:
            await self._deliveries.append_log(execution_id, level, message)

    def _webhook_queued(self, run: ExecutionRun) -> None:
        async def wake_when_written() -> None:
            with contextlib.suppress(Exception):
                await self.sink.flush()
            if self._deliverer is not None:
                self._deliverer.wake()

        self._background.add(task := asyncio.ensure_future(wake_when_written()))
        task.add_done_callback(self._background.discard)

    async def control(self, execution_id: str, command: AnyCommand) -> Outcome:
        """Record a command, have it applied in order, and return its outcome. Input that does
        not fit the node's schema raises InputInvalid and records nothing."""
        if self.controls is None:
            raise RuntimeError("this engine has no control log")
        if isinstance(command, ProvideInput):
            await self._check_input(execution_id, command)
        command_id = await self.controls.record(execution_id, command)
        future = asyncio.get_running_loop().create_future()
        self._control_waiters[command_id] = future
        self._control_wake.set()
        try:
            return await self._outcome_of(command_id, future)
        finally:
            self._control_waiters.pop(command_id, None)

    async def _check_input(self, execution_id: str, command: ProvideInput) -> None:
        assert self.controls is not None
        awaiting = await self.controls.awaiting_input(execution_id)
        if awaiting is None or (command.node_id not in (None, awaiting.node_id)):
            return  # not waiting for this input: the run refuses it, with the reason
        schemas.require_fit(awaiting.node_id, command.data, awaiting.schema)

    async def _outcome_of(self, command_id: int, future: asyncio.Future[Outcome]) -> Outcome:
        """Applied here, the future settles; applied by another server, the log says so."""
        assert self.controls is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.control_wait_seconds
        while True:
            try:
                async with asyncio.timeout(self.limits.control_poll_seconds):
                    return await asyncio.shield(future)
            except TimeoutError:
                pass
            outcome = await self.controls.outcome(command_id)
            if outcome is not None:
                return outcome
            if loop.time() > deadline:
                return Outcome(
                    applied=False,
                    message="Recorded, not yet applied: the server running this execution "
                    "will apply it when it can",
                )

    async def _apply_commands_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.limits.control_poll_seconds):
                    await self._control_wake.wait()
            except TimeoutError:
                pass
            self._control_wake.clear()
            try:
                await self._apply_pending()
            except Exception:
                log.exception("applying control commands failed; trying again")

    async def _apply_pending(self, only: tuple[type[AnyCommand], ...] | None = None) -> None:
        """Apply recorded commands in order (`only` those of these kinds, if given)."""
        assert self.controls is not None
        settled: list[tuple[int, Outcome]] = []
        for pending in await self.controls.pending():
            recorded = pending.recorded
            if only is not None and not isinstance(recorded.command, only):
                continue
            run = self._runs.get(recorded.execution_id)
            if run is not None:
                outcome = control.apply(run, recorded.command)
            elif pending.status.is_final:
                outcome = control.refuse_finished(pending.status)
            else:
                continue  # another server runs it
            self.sink.emit(
                ControlApplied(
                    execution_id=recorded.execution_id, command_id=recorded.id, outcome=outcome
                )
            )
            settled.append((recorded.id, outcome))
        if not settled:
            return
        await self.sink.flush()
        for command_id, outcome in settled:
            future = self._control_waiters.get(command_id)
            if future is not None and not future.done():
                future.set_result(outcome)

    async def close(self) -> None:
        """Stop every run without recording it: the next start resumes them from the log."""
        for task in (self._control_task, self._deliver_task, self._adopt_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._deliverer is not None:
            await self._deliverer.close()
        for run in self._runs.values():
            run.detach()
        self._runs.clear()
        self._queue.clear()
        if self._http is not None:
            await self._http.aclose()
        if self._owners is not None:
            # Only once all this engine wrote is in the log: from the moment the lock is free,
            # another engine may load these executions and take them over.
            with contextlib.suppress(Exception):
                await self.sink.flush()
            self._owners.unregister(self.id)

    def _admit(self, run: ExecutionRun) -> None:
        if self._may_start(run):
            self._hold(run)
            run.start()
        else:
            self._queue.append(run)
            if run.execution.trace_logs:
                limit = self.limits.max_running_executions
                run.log(LogLevel.TRACE, f"Waiting for a slot: {limit} executions are running")

    def _finished(self, run: ExecutionRun) -> None:
        self._runs.pop(run.id, None)
        if run in self._queue:
            self._queue.remove(run)
        self._release_slot(run)

    def _may_start(self, run: ExecutionRun) -> bool:
        if len(self._holding) >= self.limits.max_running_executions:
            return False
        batch_id, limit = run.execution.batch_id, run.options.batch_concurrency
        return batch_id is None or limit is None or self._batch_holding[batch_id] < limit

    def _hold(self, run: ExecutionRun) -> None:
        self._holding.add(run.id)
        if run.execution.batch_id is not None:
            self._batch_holding[run.execution.batch_id] += 1

    def _release_slot(self, run: ExecutionRun) -> None:
        if run.id not in self._holding:
            return
        self._holding.discard(run.id)
        batch_id = run.execution.batch_id
        if batch_id is not None:
            self._batch_holding[batch_id] -= 1
            if self._batch_holding[batch_id] <= 0:
                del self._batch_holding[batch_id]
        self._start_queued()

    def _start_queued(self) -> None:
        """First in, first out, passing over those whose batch is at its own limit."""
        while self._queue and len(self._holding) < self.limits.max_running_executions:
            run = next((queued for queued in self._queue if self._may_start(queued)), None)
            if run is None:
                return
            self._queue.remove(run)
            self._hold(run)
            run.start()

    def _take_slot(self, run: ExecutionRun) -> None:
        # A continued execution resumes at once, even past the limit, rather than queue again.
        self._hold(run)

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http


__all__ = ["Engine", "EngineLimits", "ExecutionUpdated", "StepStatus"]
