"""An execution end to end with the official @trpc/client (httpBatchLink, superjson).

`client/executions.mjs` creates a fan-out/fan-in blueprint on a real server with the real
procedures, starts it, polls its status until it ends and prints what it saw; each scenario
runs once per module and its report is shared by the tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpc.settings import Settings
from tests.servers import running_server

CLIENT_DIR = Path(__file__).parent / "client"
SCRIPT = CLIENT_DIR / "executions.mjs"
NODE_TIMEOUT = 90  # the script stops itself after 60 s; this only catches a hung Node


def node_command() -> list[str]:
    """`node executions.mjs`; fails (never skips) when Node or the npm packages are missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20+, then run `make test`")
    if not (CLIENT_DIR / "node_modules" / "@trpc" / "client").is_dir():
        pytest.fail(f"{CLIENT_DIR / 'node_modules'} is missing: run `make test` to install it")
    return [node, str(SCRIPT)]


class Scenarios:
    """Runs each scenario of the script once against one server and keeps its report."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._reports: dict[str, dict[str, Any]] = {}

    def run(self, scenario: str) -> dict[str, Any]:
        if scenario not in self._reports:
            done = subprocess.run(
                [*node_command(), self.base_url, scenario],
                cwd=CLIENT_DIR,
                capture_output=True,
                text=True,
                timeout=NODE_TIMEOUT,
            )
            if done.returncode != 0:
                pytest.fail(f"{scenario} exited {done.returncode}:\n{done.stderr}")
            self._reports[scenario] = json.loads(done.stdout)
        return self._reports[scenario]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    db = tmp_path_factory.mktemp("client-executions") / "blueprint.db"
    with running_server(Settings(db=str(db))) as url:
        yield Scenarios(url)


def test_the_execution_completes_with_its_final_outputs(client: Scenarios) -> None:
    result = client.run("run")["result"]
    created, started, final = result["created"], result["started"], result["final"]
    assert created["version"] == 1
    assert started["blueprintId"] == created["blueprintId"]
    assert started["version"] == 1
    assert final["id"] == started["executionId"]
    assert (final["status"], final["progress"], final["error"]) == ("completed", 100, None)
    assert (final["totalSteps"], final["completedSteps"]) == (7, 7)
    assert (final["blueprintId"], final["blueprintVersion"]) == (created["blueprintId"], 1)
    assert final["metadata"] == {"who": "e2e"}
    assert final["finalOutputs"] == [
        {"nodeId": "report", "output": {"n": 21, "slept": 300, "who": "e2e"}, "artifacts": []}
    ]
    assert result["listed"] == [[started["executionId"], "completed"]]
    assert result["logCount"] > 0


def test_progress_never_decreases_and_ends_at_100(client: Scenarios) -> None:
    polls = client.run("run")["result"]["polls"]
    progress = [poll["progress"] for poll in polls]
    assert progress == sorted(progress), polls
    assert progress[-1] == 100
    completed = [poll["completedSteps"] for poll in polls]
    assert completed == sorted(completed), polls


def test_polls_saw_the_execution_before_it_completed(client: Scenarios) -> None:
    statuses = [poll["status"] for poll in client.run("run")["result"]["polls"]]
    assert statuses[-1] == "completed"
    assert set(statuses[:-1]) <= {"queued", "running"}, statuses
    assert {"queued", "running"} & set(statuses[:-1]), statuses


def test_the_calls_went_through_the_batch_link(client: Scenarios) -> None:
    requests = client.run("run")["requests"]
    assert all(request["batch"] for request in requests), requests
    assert all(request["status"] == 200 for request in requests), requests
    assert [(r["method"], r["paths"]) for r in requests[:2]] == [
        ("POST", ["blueprint.create"]),
        ("POST", ["execution.executeBlueprintWithLogging"]),
    ]
    # The two queries issued together after the end went out as one request.
    assert (requests[-1]["method"], requests[-1]["paths"]) == (
        "GET",
        ["execution.list", "execution.getLogs"],
    )


def test_an_invalid_blueprint_is_a_trpc_client_error_with_problems(client: Scenarios) -> None:
    error = client.run("invalid")["result"]
    assert error["name"] == "TRPCClientError"
    assert (error["code"], error["httpStatus"], error["path"]) == (
        "BAD_REQUEST",
        400,
        "blueprint.create",
    )
    assert error["shapeCode"] == -32600
    assert error["message"].startswith("Invalid blueprint: 3 problems")
    problems = error["problems"]
    assert error["shapeProblems"] == problems
    assert all(set(problem) == {"nodeId", "field", "message"} for problem in problems)
    assert sorted((p["nodeId"], p["field"]) for p in problems) == [
        ("a", "id"),
        ("b", "type"),
        ("c", "dependsOn"),
    ]
    assert "teleport" in next(p["message"] for p in problems if p["nodeId"] == "b")
