"""Kill a real server with SIGKILL mid-run, restart it on the same file: everything finishes,
and no step the log recorded as succeeded runs again."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess

PLUGIN = ["--plugin", "tests.plugins.counting"]


def chain(name: str, length: int, sleep_ms: int) -> dict:
    nodes = [
        {
            "id": f"n{i}",
            "type": "count",
            "config": {"sleepMs": sleep_ms},
            **({"dependsOn": [f"n{i - 1}"]} if i else {}),
        }
        for i in range(length)
    ]
    return {"name": name, "nodes": nodes}


def call(url: str, path: str, payload: dict) -> dict:
    response = httpx.post(f"{url}/api/trpc/{path}", json={"json": payload}, timeout=30)
    body = response.json()
    assert "result" in body, body
    return body["result"]["data"]["json"]


def status(url: str, execution_id: str) -> dict:
    response = httpx.get(
        f"{url}/api/trpc/execution.getExecutionStatus",
        params={"input": f'{{"json":{{"executionId":"{execution_id}","logsLimit":1000}}}}'},
        timeout=30,
    )
    return response.json()["result"]["data"]["json"]


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def succeeded_in_log(db: Path) -> set[tuple[str, str]]:
    """Read the file as a restart will: only what was committed."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT execution_id, node_id FROM steps WHERE status = 'succeeded'")
        return set(rows.fetchall())


def invocations(count_file: Path) -> list[tuple[str, str, int]]:
    if not count_file.exists():
        return []
    lines = count_file.read_text().split("\n")
    return [(e, n, int(a)) for e, n, a in (line.split() for line in lines if line)]


@pytest.mark.slow
def test_executions_resume_after_sigkill_without_rerunning_succeeded_steps(tmp_path: Path):
    db = tmp_path / "bp.db"
    count_file = tmp_path / "invocations.txt"
    env = {"BLUEPRINT_COUNT_FILE": str(count_file)}
    args = ["--db", str(db), "--max-running-executions", "3", *PLUGIN]
    server = ServerProcess(args, env=env)
    try:
        waiting = call(
            server.url,
            "execution.executeBlueprintWithLogging",
            {
                "blueprint": {
                    "name": "waits",
                    "nodes": [
                        {"id": "first", "type": "count"},
                        {
                            "id": "ask",
                            "type": "input",
                            "dependsOn": ["first"],
                            "config": {"prompt": "Go?", "schema": {"type": "object"}},
                        },
                    ],
                }
            },
        )["executionId"]
        wait_until(
            lambda: status(server.url, waiting)["status"] == "paused", what="the input pause"
        )
        start = "execution.executeBlueprintWithLogging"
        ids = [
            call(server.url, start, {"blueprint": chain(f"c{i}", 8, 200)})["executionId"]
            for i in range(5)
        ]
        # Kill once some steps are recorded as succeeded and others are mid-flight.
        wait_until(lambda: len(succeeded_in_log(db)) >= 4, what="some steps to succeed")
        server.kill()
    finally:
        server.stop()

    done_before = succeeded_in_log(db)
    calls_before = len(invocations(count_file))
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("SELECT id, status FROM executions").fetchall())
    assert {statuses[i] for i in ids} >= {"running"}, statuses
    assert "queued" in {statuses[i] for i in ids}, "with a limit of 3, some of 5 were still queued"

    server = ServerProcess(args, env=env)
    try:
        for execution_id in ids:
            wait_until(
                lambda execution_id=execution_id: (
                    status(server.url, execution_id)["status"] == "completed"
                ),
                what=f"{execution_id} to complete",
            )
        paused = status(server.url, waiting)
        assert paused["status"] == "paused"
        assert paused["awaitingInput"]["nodeId"] == "ask"
        reran = [
            s
            for i in ids
            for s in status(server.url, i)["logs"]
            if "when the server stopped" in s["message"]
        ]
    finally:
        server.stop()

    after = invocations(count_file)[calls_before:]
    rerun_of_succeeded = [(e, n) for e, n, _ in after if (e, n) in done_before]
    assert rerun_of_succeeded == [], "steps recorded as succeeded ran again after the restart"
    every_step = Counter((e, n) for e, n, _ in invocations(count_file))
    assert all(every_step[(i, f"n{k}")] >= 1 for i in ids for k in range(8))
    assert reran, "a step that was running at the kill runs again, and the log says so"
