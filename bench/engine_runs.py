"""Engine benchmarks: durable steps per second, in-process, on a real Store and SQLite file.

Each run gets a fresh Store on a new temporary file and a fresh Engine with the built-in node
types, so the engine logs every transition and the writer commits it. The blueprint is compiled
(validated, configs parsed, edges indexed) before the clock starts, as `blueprint.execute`
compiles it while handling the request; its cost is reported apart as `compile_ms`. The clock
runs from `engine.start()` until `wait_settled()` has returned for every execution AND
`store.writer.flush()` has returned: only durable steps count. The garbage collector is set up
as `blueprint serve` sets it up (`rpc.heap`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ENGINE_TARGET_STEPS_PER_S, BenchError, ForeignLoad, say, summary
from engine.engine import Engine, EngineLimits
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from rpc.heap import prepare_for_serving
from store import Store

SETTLE_TIMEOUT_S = 300.0


def chain(n: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "noop"}]
    nodes += [{"id": f"n{i}", "type": "noop", "dependsOn": [f"n{i - 1}"]} for i in range(1, n)]
    return {"name": f"chain of {n} noops", "nodes": nodes}


def fan_out(width: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "root", "type": "noop"}]
    nodes += [{"id": f"leaf{i}", "type": "noop", "dependsOn": ["root"]} for i in range(width)]
    return {"name": f"fan-out of {width} noops", "nodes": nodes}


def diamond_chain() -> dict[str, Any]:
    """10 nodes: a -> (b, c) -> d -> e -> (f, g, h) -> i -> j."""
    edges = {
        "a": [],
        "b": ["a"],
        "c": ["a"],
        "d": ["b", "c"],
        "e": ["d"],
        "f": ["e"],
        "g": ["e"],
        "h": ["e"],
        "i": ["f", "g", "h"],
        "j": ["i"],
    }
    nodes = [{"id": k, "type": "noop", "dependsOn": deps} for k, deps in edges.items()]
    return {"name": "diamonds and a chain (10 noops)", "nodes": nodes}


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    document: dict[str, Any]
    executions: int  #: started together
    limits: EngineLimits

    @property
    def nodes(self) -> int:
        return len(self.document["nodes"])

    @property
    def steps(self) -> int:
        return self.nodes * self.executions


def cases(quick: bool) -> list[Case]:
    n = 200 if quick else 1000
    concurrent = 20 if quick else 100
    return [
        Case("chain", f"chain of {n:,} noop", chain(n), 1, EngineLimits()),
        Case("fanout", f"fan-out 1+{n:,} noop", fan_out(n), 1, EngineLimits()),
        Case(
            "concurrent",
            f"{concurrent} x 10-node concurrent",
            diamond_chain(),
            concurrent,
            EngineLimits(max_running_executions=concurrent),
        ),
    ]


async def run_once(case: Case, directory: Path) -> dict[str, Any]:
    """One durable run on a fresh file; the wall time and what the file holds afterwards."""
    path = directory / "engine.db"
    store = await Store.open(str(path))
    try:
        registry = NodeRegistry()
        register_builtins(registry)
        engine = Engine(registry, store.writer, case.limits)
        try:
            compiling = time.perf_counter()
            plan = engine.compile(case.document)
            started = time.perf_counter()
            executions = await asyncio.gather(
                *(
                    engine.start(plan, blueprint_id=None, blueprint_version=None, input={})
                    for _ in range(case.executions)
                )
            )
            await asyncio.gather(*(engine.wait_settled(e.id, SETTLE_TIMEOUT_S) for e in executions))
            await store.writer.flush()
            wall = time.perf_counter() - started
        finally:
            await engine.close()
    finally:
        # flush before close: close() can hang on events the writer has not taken yet
        await store.writer.flush()
        await store.close()
    with sqlite3.connect(path) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM executions GROUP BY status"))
        log_rows = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        step_rows = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
        succeeded = conn.execute(
            "SELECT count(*) FROM steps WHERE status = 'succeeded'"
        ).fetchone()[0]
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if statuses != {"completed": case.executions} or succeeded != case.steps:
        raise BenchError(
            f"engine {case.key}: expected {case.executions} completed executions and "
            f"{case.steps} succeeded steps, the log holds {statuses} and {succeeded}"
        )
    return {
        "wall_s": wall,
        "compile_ms": (started - compiling) * 1000,
        "steps": case.steps,
        "steps_per_s": case.steps / wall,
        "us_per_step": wall / case.steps * 1e6,
        "log_rows": log_rows,
        "step_rows": step_rows,
    }


def expected_log_rows(case: Case) -> int:
    """All-noop and no failures: queued, started, completed, and each node's start and success."""
    return case.executions * (3 + 2 * case.nodes)


async def run_engine(quick: bool, runs: int) -> dict[str, Any]:
    prepare_for_serving()  # the collector as `blueprint serve` sets it up
    results: dict[str, Any] = {
        "target_steps_per_s": ENGINE_TARGET_STEPS_PER_S,
        "timing": "start() of the compiled blueprint until wait_settled() returned for every "
        "execution and store.writer.flush() returned; compiling it is compile_ms, apart; "
        "one unrecorded warm-up run per case first",
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        directory = Path(tmp)
        for case in cases(quick):
            # One warm-up run per case, not recorded: first-call paths, allocator, file cache.
            await run_once(case, directory)
            measured = []
            for i in range(runs):
                load = ForeignLoad()
                result = await run_once(case, directory)
                result["foreign_cpu"] = round(load.fraction(), 3)
                measured.append(result)
                say(
                    f"  engine {case.title}: run {i + 1}/{runs}: "
                    f"{result['steps_per_s']:,.0f} steps/s ({result['wall_s'] * 1000:.0f} ms); "
                    f"other load {result['foreign_cpu']:.0%}"
                )
            expected_logs = expected_log_rows(case)
            log_rows = {r["log_rows"] for r in measured}
            step_rows = {r["step_rows"] for r in measured}
            if log_rows != {expected_logs} or step_rows != {case.steps}:
                say(
                    f"  WARNING engine {case.title}: log rows {sorted(log_rows)} (expected "
                    f"{expected_logs}), steps rows {sorted(step_rows)} (expected {case.steps})"
                )
            results["cases"][case.key] = {
                "title": case.title,
                "nodes": case.nodes,
                "executions": case.executions,
                "limits": {
                    "max_running_executions": case.limits.max_running_executions,
                    "node_concurrency": case.limits.node_concurrency,
                },
                "expected_log_rows": expected_logs,
                "expected_step_rows": case.steps,
                "runs": measured,
                "steps_per_s": summary([r["steps_per_s"] for r in measured]),
                "us_per_step": summary([r["us_per_step"] for r in measured]),
                "foreign_cpu_max": max(r["foreign_cpu"] for r in measured),
            }
    return results
