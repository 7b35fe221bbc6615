"""The unit tier: a real engine writing to a list sink, and a test node type to steer it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from engine.clock import parse_iso_ms
from engine.control import AnyCommand
from engine.control import Outcome as ControlOutcome
from engine.engine import Engine, EngineLimits
from engine.errors import NodeError
from engine.events import (
    EngineEvent,
    ExecutionCreated,
    ExecutionUpdated,
    LogAppended,
    StepUpdated,
)
from engine.model import RunOptions
from engine.nodes import register_builtins
from engine.ports import UnfinishedExecution
from engine.records import Execution, LogEntry, Step
from engine.registry import NodeRegistry
from engine.webhooks import WebhookPolicy
from store import Store


class ListSink:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def emit(self, event: EngineEvent) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        pass

    def of(self, execution_id: str) -> list[EngineEvent]:
        return [e for e in self.events if e.execution_id == execution_id]


class ProbeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    fail: int = 0  #: fail this many attempts first (-1: every attempt)
    code: str = "PROBE_FAILED"
    retryable: bool = True
    gate: str | None = None  #: wait until the test opens this gate
    sleepMs: int = 0
    output: Any = msgspec.UNSET


class Probe:
    """The `probe` node type: counts its calls, fails on demand, waits at gates, and records
    how many probes ran at once."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.running = 0
        self.most_running = 0
        self._gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    async def handle(self, ctx: Any, config: ProbeConfig) -> Any:
        self.calls[ctx.node_id] += 1
        call = self.calls[ctx.node_id]
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if config.gate is not None:
                await self.gate(config.gate).wait()
            if config.sleepMs:
                await asyncio.sleep(config.sleepMs / 1000)
        finally:
            self.running -= 1
        if config.fail < 0 or call <= config.fail:
            raise NodeError(config.code, f"call {call} failed", retryable=config.retryable)
        return {"call": call} if config.output is msgspec.UNSET else config.output


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def registry(probe: Probe) -> NodeRegistry:
    registry = NodeRegistry()
    register_builtins(registry)
    registry.node_type("probe", config=ProbeConfig)(probe.handle)
    return registry


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
async def make_engine(
    registry: NodeRegistry, sink: ListSink
) -> AsyncIterator[Callable[..., Engine]]:
    """Engines on the shared registry and sink; each is closed at the end of the test."""
    engines: list[Engine] = []

    def make(**limits: Any) -> Engine:
        engine = Engine(registry, sink, EngineLimits(**limits))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()
    await asyncio.sleep(0)  # let cancelled attempts unwind inside the test's loop


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


def probe_node(node_id: str = "p", *, retry: dict[str, Any] | None = None, **config: Any) -> dict:
    """A `probe` node; `dependsOn`, `timeoutMs` and the like go in with the config's keys."""
    node: dict[str, Any] = {"id": node_id, "type": "probe"}
    for key in ("dependsOn", "timeoutMs", "breakpoint", "continueOnError"):
        if key in config:
            node[key] = config.pop(key)
    node["config"] = config
    if retry is not None:
        node["retry"] = retry
    return node


def blueprint(*nodes: dict[str, Any], name: str = "test") -> dict[str, Any]:
    return {"name": name, "nodes": list(nodes)}


@dataclass
class Outcome:
    """An execution as its events tell it: the newest record of it and of each step."""

    execution: Execution
    steps: dict[str, Step]
    outputs: dict[str, Any]
    step_events: list[StepUpdated]
    logs: list[LogEntry]
    created: ExecutionCreated
    events: list[EngineEvent]
    leaves: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.execution.status.value

    def statuses(self) -> dict[str, str]:
        return {node_id: step.status.value for node_id, step in self.steps.items()}

    def final_outputs(self) -> list[tuple[str, Any]]:
        """Leaf steps that succeeded, in node order, with their outputs."""
        return [
            (node_id, self.outputs[node_id])
            for node_id in self.leaves
            if self.steps[node_id].status == "succeeded"
        ]

    def updates_of(self, node_id: str) -> list[Step]:
        return [e.step for e in self.step_events if e.step.node_id == node_id]

    def executions(self) -> list[Execution]:
        return [self.created.execution] + [
            e.execution for e in self.events if isinstance(e, ExecutionUpdated)
        ]


def outcome_of(sink: ListSink, execution_id: str) -> Outcome:
    events = sink.of(execution_id)
    created = next(e for e in events if isinstance(e, ExecutionCreated))
    execution = created.execution
    steps = list(created.steps)
    outputs: dict[str, Any] = {}
    leaves: dict[int, bool] = {}
    step_events = []
    for event in events:
        if isinstance(event, ExecutionUpdated):
            execution = event.execution
        elif isinstance(event, StepUpdated):
            steps[event.index] = event.step
            step_events.append(event)
            leaves[event.index] = event.leaf
            if event.output is not msgspec.UNSET:
                outputs[event.step.node_id] = event.output
    return Outcome(
        execution=execution,
        steps={step.node_id: step for step in steps},
        outputs=outputs,
        step_events=step_events,
        logs=[e.entry for e in events if isinstance(e, LogAppended)],
        created=created,
        leaves=[steps[i].node_id for i in sorted(leaves) if leaves[i]],
        events=events,
    )


async def start(
    engine: Engine,
    document: dict[str, Any],
    *,
    input: Any = None,
    metadata: dict[str, Any] | None = None,
    **options: Any,
) -> str:
    """Validate and start a document; returns the execution id."""
    execution = await engine.start(
        engine.validate(document),
        blueprint_id=None,
        blueprint_version=None,
        input=input,
        metadata=metadata,
        options=RunOptions(**options),
    )
    return execution.id


async def settle(engine: Engine, sink: ListSink, execution_id: str) -> Outcome:
    await engine.wait_settled(execution_id, 10)
    return outcome_of(sink, execution_id)


async def run(
    engine: Engine, sink: ListSink, document: dict[str, Any], **start_args: Any
) -> Outcome:
    """Start a document and wait until it ends or pauses."""
    return await settle(engine, sink, await start(engine, document, **start_args))


async def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def step_status(sink: ListSink, execution_id: str, node_id: str) -> str:
    return outcome_of(sink, execution_id).steps[node_id].status.value


def ms(timestamp: str | None) -> int:
    assert timestamp is not None
    return parse_iso_ms(timestamp)


class FakeResumeSource:
    def __init__(self, *items: UnfinishedExecution) -> None:
        self.items = list(items)

    async def load_unfinished(self, owner: str | None = None) -> list[UnfinishedExecution]:
        return self.items


def unfinished_from(sink: ListSink, execution_id: str) -> UnfinishedExecution:
    """What a store would load for this execution from the events written so far."""
    seen = outcome_of(sink, execution_id)
    index_of = {step.node_id: i for i, step in enumerate(seen.created.steps)}
    return UnfinishedExecution(
        execution=seen.execution,
        steps=list(seen.steps.values()),
        outputs={index_of[node_id]: output for node_id, output in seen.outputs.items()},
        blueprint=seen.created.blueprint,
        input=seen.created.input,
        options=seen.created.options,
        last_seq=max((entry.seq for entry in seen.logs), default=0),
    )


# The durable tier: engines on a real Store (one SQLite file), wired as rpc/app.py wires them,
# and what the log says about an execution, read back from the file.


class Durable:
    """Engines on one SQLite file with its control, delivery and ownership logs. `crash()`
    stops them unrecorded and closes the file; the next `boot()` resumes from it."""

    def __init__(self, registry: NodeRegistry, path: str) -> None:
        self.registry = registry
        self.path = path
        self._store: Store | None = None
        self.engines: list[Engine] = []

    @property
    def store(self) -> Store:
        assert self._store is not None, "boot() or open() first"
        return self._store

    async def open(self) -> Store:
        if self._store is None:
            self._store = await Store.open(self.path)
        return self._store

    async def boot(
        self, *, background: bool = True, webhooks: WebhookPolicy | None = None, **limits: Any
    ) -> Engine:
        """An engine that resumes what the log left unfinished, then applies commands and
        delivers webhooks (unless `background` is off)."""
        store = await self.open()
        limits.setdefault("control_poll_seconds", 0.05)
        engine = Engine(
            self.registry,
            store.writer,
            EngineLimits(**limits),
            controls=store.controls,
            deliveries=store.deliveries,
            webhooks=webhooks,
            owners=store.owners,
        )
        self.engines.append(engine)
        await engine.resume(store.resume_source)
        if background:
            engine.start_background()
        return engine

    async def crash(self) -> None:
        """Every engine stops without recording anything, and the file is closed."""
        for engine in self.engines:
            await engine.close()
        self.engines.clear()
        await asyncio.sleep(0)  # let cancelled attempts unwind
        if self._store is not None:
            store, self._store = self._store, None
            async with asyncio.timeout(30):
                try:
                    await store.writer.flush()
                finally:
                    await store.close()


@pytest.fixture
async def durable(registry: NodeRegistry, db_path: str) -> AsyncIterator[Durable]:
    durable = Durable(registry, db_path)
    yield durable
    await durable.crash()


class LoggedStatus(Execution, frozen=True, kw_only=True):
    steps: list[Step]
    logs: list[LogEntry]
    outputs: dict[str, Any] = {}


_logged = msgspec.json.Decoder(LoggedStatus)


class Logged(msgspec.Struct, kw_only=True):
    """An execution as the log holds it: record, steps, every log line, every output."""

    execution: LoggedStatus
    steps: dict[str, Step]
    outputs: dict[str, Any]
    logs: list[LogEntry]

    @property
    def status(self) -> str:
        return self.execution.status.value

    def statuses(self) -> dict[str, str]:
        return {node_id: step.status.value for node_id, step in self.steps.items()}

    def messages(self, level: str | None = None) -> list[str]:
        return [e.message for e in self.logs if level is None or e.level == level]


async def logged(store: Store, execution_id: str) -> Logged:
    body = await store.executions.status(execution_id, 100_000, ("outputs",))
    assert body is not None, f"{execution_id} is not in the log"
    status = _logged.decode(body)
    return Logged(
        execution=status,
        steps={step.node_id: step for step in status.steps},
        outputs=status.outputs,
        logs=status.logs,
    )


async def poll(what: str, probe_: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """Ask `probe_` until it answers something truthy; fail naming `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await probe_()
        if answer:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_logged(store: Store, execution_id: str, *statuses: str) -> Logged:
    """The logged execution once its committed status is one of `statuses` (default: final or
    paused)."""
    wanted = set(statuses or ("completed", "failed", "cancelled", "paused"))

    async def reached() -> Logged | None:
        found = await logged(store, execution_id)
        return found if found.status in wanted else None

    return await poll(f"{execution_id} to be {' or '.join(sorted(wanted))}", reached)  # type: ignore[no-any-return]


_UNFINISHED = {"queued", "running", "waiting"}


def assert_consistent(seen: Logged) -> None:
    """What any committed state must satisfy: counts that add up, no step left running in a
    finished execution, a pause that says why, log lines numbered without gaps."""
    execution, steps = seen.execution, list(seen.steps.values())
    counts = Counter(step.status for step in steps)
    assert execution.total_steps == len(steps)
    assert execution.completed_steps == counts["succeeded"] + counts["skipped"], counts
    assert execution.failed_steps == counts["failed"], counts
    assert execution.skipped_steps == counts["skipped"], counts
    assert execution.running_steps == counts["running"], counts
    running = sorted(step.node_id for step in steps if step.status == "running")
    assert sorted(execution.running_node_ids) == running
    if execution.status.is_final:
        unfinished = {n: s for n, s in seen.statuses().items() if s in _UNFINISHED}
        assert not unfinished, f"{execution.status} execution has unfinished steps {unfinished}"
        assert execution.end_time is not None
        assert (execution.pause_reason, execution.awaiting_input) == (None, None)
        for step in steps:
            assert all(a.completed_at is not None for a in step.attempts), step
    if execution.status == "completed":
        assert execution.progress == 100
    if execution.status == "paused":
        assert execution.pause_reason is not None
        waiting = [step.node_id for step in steps if step.status == "waiting"]
        if execution.pause_reason == "manual":
            assert (execution.paused_node_id, waiting) == (None, [])
        else:
            assert waiting == [execution.paused_node_id]
    assert [entry.seq for entry in seen.logs] == list(range(1, len(seen.logs) + 1))


def control_rows(path: str, execution_id: str) -> list[tuple[Any, Any]]:
    """(command, outcome) of each command recorded for the execution, decoded, in order."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT command, outcome FROM controls WHERE execution_id = ? ORDER BY id",
            (execution_id,),
        ).fetchall()
    finally:
        conn.close()
    return [
        (
            msgspec.json.decode(command, type=AnyCommand),
            None if outcome is None else msgspec.json.decode(outcome, type=ControlOutcome),
        )
        for command, outcome in rows
    ]
