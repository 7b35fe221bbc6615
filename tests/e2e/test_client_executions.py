"""An execution end to end with the official @trpc/client (httpBatchLink, superjson).

`client/executions.mjs` creates a fan-out/fan-in blueprint on a real server with the real
procedures, starts it, polls its status until it ends and prints what it saw; each scenario
runs once per module and its report is shared by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpc.settings import Settings
from tests.e2e._node import Scenarios
from tests.servers import running_server


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    db = tmp_path_factory.mktemp("client-executions") / "blueprint.db"
    with running_server(Settings(db=str(db))) as url:
        yield Scenarios("executions.mjs", url)


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
