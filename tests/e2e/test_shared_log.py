"""Two servers on one database file: commands reach the execution whichever server receives
them, and when one dies the other takes over its executions."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_crash_resume import (
    PLUGIN,
    call,
    chain,
    invocations,
    status,
    succeeded_in_log,
    wait_until,
)
from tests.servers import ServerProcess

ASKS = {
    "name": "asks",
    "nodes": [
        {"id": "first", "type": "noop"},
        {
            "id": "ask",
            "type": "input",
            "dependsOn": ["first"],
            "config": {"prompt": "Ship?", "schema": {"type": "object", "required": ["ok"]}},
        },
        {"id": "after", "type": "noop", "dependsOn": ["ask"]},
    ],
}
START = "execution.executeBlueprintWithLogging"


@pytest.fixture
def pair(tmp_path: Path):
    args = ["--db", str(tmp_path / "bp.db"), *PLUGIN]
    env = {"BLUEPRINT_COUNT_FILE": str(tmp_path / "invocations.txt")}
    first = ServerProcess(args, env=env)
    try:
        second = ServerProcess(args, env=env)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_an_answer_sent_to_the_other_server_reaches_the_execution(pair):
    runner, other = pair
    execution_id = call(runner.url, START, {"blueprint": ASKS})["executionId"]
    wait_until(lambda: status(other.url, execution_id)["status"] == "paused", what="the pause")

    answered = call(
        other.url, "execution.provideInput", {"executionId": execution_id, "data": {"ok": True}}
    )

    assert answered["success"] is True, answered
    wait_until(lambda: status(other.url, execution_id)["status"] == "completed", what="the end")
    assert status(runner.url, execution_id)["status"] == "completed"


@pytest.mark.slow
def test_a_stop_sent_to_the_other_server_stops_the_execution(pair):
    runner, other = pair
    execution_id = call(runner.url, START, {"blueprint": chain("slow", 50, 200)})["executionId"]
    wait_until(lambda: status(other.url, execution_id)["status"] == "running", what="the start")

    stopped = call(other.url, "execution.stop", {"executionId": execution_id})

    assert stopped["success"] is True, stopped
    wait_until(lambda: status(runner.url, execution_id)["status"] == "cancelled", what="cancel")


@pytest.mark.slow
def test_when_a_server_dies_the_other_finishes_its_executions(pair, tmp_path: Path):
    doomed, survivor = pair
    ids = [
        call(doomed.url, START, {"blueprint": chain(f"c{i}", 6, 150)})["executionId"]
        for i in range(3)
    ]
    wait_until(lambda: len(succeeded_in_log(tmp_path / "bp.db")) >= 3, what="some steps")
    doomed.kill()
    done_before = succeeded_in_log(tmp_path / "bp.db")
    calls_before = len(invocations(tmp_path / "invocations.txt"))

    for execution_id in ids:
        wait_until(
            lambda execution_id=execution_id: (
                status(survivor.url, execution_id)["status"] == "completed"
            ),
            what=f"{execution_id} to complete on the survivor",
        )

    after = invocations(tmp_path / "invocations.txt")[calls_before:]
    assert [(e, n) for e, n, _ in after if (e, n) in done_before] == []
    every_step = Counter((e, n) for e, n, _ in invocations(tmp_path / "invocations.txt"))
    assert all(every_step[(i, f"n{k}")] >= 1 for i in ids for k in range(6))


def workers_of(pid: int) -> list[int]:
    """The worker processes under uvicorn's supervisor (not multiprocessing's helpers)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    workers = []
    for child in children:
        with contextlib.suppress(FileNotFoundError):  # it may have ended since
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
    return workers


def owner_of(db: Path, execution_id: str) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (owner,) = conn.execute("SELECT owner FROM executions WHERE id = ?", (execution_id,))
        return str(owner[0])


@pytest.mark.slow
def test_workers_share_the_port_and_take_over_from_a_worker_that_dies(tmp_path: Path):
    db = tmp_path / "bp.db"
    env = {"BLUEPRINT_COUNT_FILE": str(tmp_path / "invocations.txt")}
    server = ServerProcess(["--db", str(db), "--workers", "2", *PLUGIN], env=env)
    try:
        wait_until(lambda: len(workers_of(server.process.pid)) == 2, what="two workers")
        ids = [
            call(server.url, START, {"blueprint": chain(f"c{i}", 6, 150)})["executionId"]
            for i in range(6)
        ]
        wait_until(lambda: len(succeeded_in_log(db)) >= 3, what="some steps")
        # The kernel spreads connections as it likes: kill whichever worker runs the first.
        owner = owner_of(db, ids[0])
        victim = int((tmp_path / "bp.db.engines" / f"{owner}.lock").read_text())
        assert victim in workers_of(server.process.pid)
        os.kill(victim, signal.SIGKILL)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            orphans = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM executions WHERE owner = ? AND status = 'running'", (owner,)
                )
            ]

        for execution_id in ids:
            wait_until(
                lambda execution_id=execution_id: (
                    status(server.url, execution_id)["status"] == "completed"
                ),
                what=f"{execution_id} to complete",
            )
        assert all(owner_of(db, i) != owner for i in orphans), "another worker took them over"
        wait_until(lambda: len(workers_of(server.process.pid)) == 2, what="a new worker")
    finally:
        server.stop()
