"""Batches through the official @trpc/client: the three sources, paths that lead out of the
blueprints folder, per-batch concurrency, getStatus, list, stop and clearAll.

The server reads its file and folder sources from a blueprints folder built here in tmp_path,
beside an `outside` folder that no path may reach (by `..`, an absolute path, or a symbolic link
inside the folder). clearAll deletes every finished thing on a server, so it has a server of its
own. Concurrency is checked from the steps' recorded start and end times, never the wall clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rpc.settings import Settings
from tests.e2e._node import Scenarios
from tests.servers import running_server

pytestmark = pytest.mark.slow

QUICK = {
    "nodes": [
        {"id": "start", "type": "noop"},
        {
            "id": "double",
            "type": "transform",
            "dependsOn": ["start"],
            "config": {"expression": "input"},
        },
    ]
}
FAILING = {
    "nodes": [
        {"id": "boom", "type": "assert", "config": {"expression": "`false`", "message": "no"}}
    ]
}
SLOW_MS = 1000


def blueprints_folder(root: Path) -> dict[str, str]:
    """The folder the server reads, and the paths (outside it) that scenarios try to reach."""
    folder, outside = root / "blueprints", root / "outside"
    files: dict[str, Any] = {
        "quick/alpha.json": {"name": "alpha", **QUICK},
        "quick/beta.json": {"name": "beta", "nodes": [{"id": "only", "type": "noop"}]},
        "failing.json": {"name": "failing", **FAILING},
        **{
            f"slow/s{i}.json": {
                "name": f"slow {i}",
                "nodes": [{"id": "sleep", "type": "delay", "config": {"ms": SLOW_MS}}],
            }
            for i in range(1, 5)
        },
    }
    for name, document in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(document))
    (folder / "quick" / "readme.txt").write_text("not a blueprint")
    (folder / "empty").mkdir()
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"name": "secret", **QUICK}))
    (folder / "escape.json").symlink_to(outside / "secret.json")
    (folder / "escape-dir").symlink_to(outside, target_is_directory=True)
    return {
        "folder": str(folder),
        "secret": str(outside / "secret.json"),
        "outsideDir": str(outside),
        "insideFile": str(folder / "quick" / "alpha.json"),
    }


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return blueprints_folder(tmp_path_factory.mktemp("client-batches"))


def serve(tmp_path_factory: pytest.TempPathFactory, paths: dict[str, str]) -> Any:
    db = tmp_path_factory.mktemp("client-batches-db") / "blueprint.db"
    return running_server(Settings(db=str(db), blueprints_dir=paths["folder"]))


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory, paths: dict[str, str]) -> Iterator[Scenarios]:
    with serve(tmp_path_factory, paths) as url:
        yield Scenarios("batches.mjs", url, paths)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, paths: dict[str, str]) -> Iterator[Scenarios]:
    """A server of its own for clearAll, which deletes every finished thing on it."""
    with serve(tmp_path_factory, paths) as url:
        yield Scenarios("batches.mjs", url, paths)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# sources


def test_a_workflows_batch_runs_each_blueprint_with_the_input(batches: Scenarios) -> None:
    report = batches.result("sources")
    workflows = report["workflows"]
    started, status = workflows["started"], workflows["status"]
    assert started["totalWorkflows"] == 2
    assert [e["blueprintId"] for e in started["executions"]] == report["blueprintIds"]
    assert {e["workflowFileName"] for e in started["executions"]} == {None}
    assert (status["status"], status["sourceType"], status["folderPath"]) == (
        "completed",
        "workflows",
        None,
    )
    assert (status["completed"], status["running"], status["queued"], status["failed"]) == (
        2,
        0,
        0,
        0,
    )
    for execution in workflows["executions"]:
        assert execution["batchId"] == started["batchId"]
        assert execution["metadata"] == {"who": "batch"}
        assert execution["finalOutputs"][0]["output"] == {"n": 5}


def test_a_files_batch_reads_relative_and_absolute_paths_inside_the_folder(
    batches: Scenarios,
) -> None:
    files = batches.result("sources")["files"]
    rows = [
        (e["workflowPath"], e["workflowFileName"], e["blueprintId"])
        for e in files["status"]["executions"]
    ]
    assert rows == [
        ("quick/alpha.json", "alpha.json", None),
        ("failing.json", "failing.json", None),
        ("quick/alpha.json", "alpha.json", None),  # given as an absolute path inside the folder
    ]
    assert [e["executionId"] for e in files["status"]["executions"]] == [
        e["executionId"] for e in files["started"]["executions"]
    ]


def test_a_batch_with_a_failed_execution_is_failed(batches: Scenarios) -> None:
    files = batches.result("sources")["files"]
    status = files["status"]
    assert (status["status"], status["completed"], status["failed"]) == ("failed", 2, 1)
    assert [e["status"] for e in status["executions"]] == ["completed", "failed", "completed"]
    assert files["executions"][1]["error"]["code"] == "ASSERTION_FAILED"
    assert status["endTime"] is not None


def test_a_folder_batch_runs_its_json_files_in_name_order(batches: Scenarios) -> None:
    folder = batches.result("sources")["folder"]
    status = folder["status"]
    assert (status["sourceType"], status["folderPath"], status["totalWorkflows"]) == (
        "folder",
        "quick",
        2,
    )
    assert [e["workflowPath"] for e in status["executions"]] == [
        "quick/alpha.json",
        "quick/beta.json",
    ]
    assert status["status"] == "completed"


def test_paths_leading_out_of_the_folder_are_forbidden(batches: Scenarios) -> None:
    report = batches.result("forbidden")
    for name in [
        "dotDot",
        "dotDotInside",
        "absolute",
        "link",
        "oneBadAmongGood",
        "folderDotDot",
        "folderAbsolute",
        "folderLink",
    ]:
        outcome = report[name]
        assert outcome["ok"] is False, (name, outcome)
        error = outcome["error"]
        assert (error["code"], error["httpStatus"], error["path"]) == (
            "FORBIDDEN",
            403,
            "batch.start",
        ), (name, error)
        assert "outside the blueprints folder" in error["message"], (name, error)


def test_missing_or_empty_sources_are_errors(batches: Scenarios) -> None:
    report = batches.result("forbidden")
    codes = {
        name: report[name]["error"]["code"]
        for name in ["missingFile", "missingFolder", "emptyFolder", "noPaths", "unknownBlueprint"]
    }
    assert codes == {
        "missingFile": "NOT_FOUND",
        "missingFolder": "NOT_FOUND",
        "emptyFolder": "BAD_REQUEST",
        "noPaths": "BAD_REQUEST",
        "unknownBlueprint": "NOT_FOUND",
    }


def test_a_refused_source_starts_nothing(batches: Scenarios) -> None:
    report = batches.result("forbidden")
    assert report["totalAfter"] == report["totalBefore"]
    assert report["active"]["totalActive"] == 0


# concurrency


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    moments = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    return peak


def test_a_batch_runs_at_most_its_concurrency_at_once(batches: Scenarios) -> None:
    report = batches.result("concurrency")
    assert report["status"]["status"] == "completed"
    intervals = [
        (parse_time(step["startedAt"]), parse_time(step["completedAt"]))
        for execution in report["executions"]
        for step in execution["steps"]
    ]
    assert len(intervals) == 4
    assert most_at_once(intervals) == 2, report["executions"]
    # The counts never showed more than two running either.
    assert max(poll["running"] for poll in report["polls"]) <= 2, report["polls"]
    assert [e["status"] for e in report["started"]["executions"]] == [
        "running",
        "running",
        "queued",
        "queued",
    ]


# stop


def test_batch_stop_stops_the_running_and_cancels_the_queued(batches: Scenarios) -> None:
    report = batches.result("stop")
    before = report["before"]
    assert (before["status"], before["running"], before["queued"]) == ("running", 1, 2)
    stopped = report["stopped"]
    assert stopped["success"] is True
    assert stopped["batchId"] == report["started"]["batchId"]
    assert stopped["stoppedExecutions"] == 3
    after = report["after"]
    assert (after["status"], after["running"], after["queued"]) == ("cancelled", 0, 0)
    assert [e["status"] for e in after["executions"]] == ["cancelled"] * 3
    assert [e["status"] for e in report["executions"]] == ["cancelled"] * 3
    assert after["endTime"] is not None


def test_batch_stop_cancels_queued_executions_without_starting_them(batches: Scenarios) -> None:
    """Stopping the running execution first freed its slot, so the engine started each queued
    one just before stopping it: all three were counted as running."""
    report = batches.result("stop")
    stopped = report["stopped"]
    assert (stopped["runningStopped"], stopped["queuedCancelled"]) == (1, 2), stopped
    assert [e["ran"] for e in report["executions"]] == [["wait"], [], []]


def test_batch_stop_of_an_ended_batch_answers_success_false(batches: Scenarios) -> None:
    again = batches.result("stop")["again"]
    assert again["success"] is False
    assert "cancelled" in again["message"]
    assert (again["stoppedExecutions"], again["runningStopped"], again["queuedCancelled"]) == (
        0,
        0,
        0,
    )


# list


def test_batch_list_pages_newest_first(batches: Scenarios) -> None:
    report = batches.result("list")
    first_id, second_id, third_id = report["mine"]
    assert report["all"]["total"] == report["before"]["total"] + 3
    first, second = report["first"], report["second"]
    assert (first["limit"], first["offset"], first["total"]) == (2, 0, report["all"]["total"])
    assert [b["batchId"] for b in first["batches"]] == [third_id, second_id]
    assert (second["limit"], second["offset"]) == (2, 1)
    assert [b["batchId"] for b in second["batches"]] == [second_id, first_id]
    newest = first["batches"][0]
    assert (newest["status"], newest["sourceType"], newest["folderPath"]) == (
        "completed",
        "folder",
        "quick",
    )
    assert newest["durationMs"] >= 0 and newest["endTime"] is not None


def test_batch_list_filters_by_status(batches: Scenarios) -> None:
    report = batches.result("list")
    statuses = ["running", "completed", "failed", "cancelled"]
    by_status = dict(zip(statuses, report["byStatus"], strict=True))
    for status, page in by_status.items():
        assert {b["status"] for b in page["batches"]} <= {status}, page
        assert page["total"] == len(page["batches"])
    assert sum(page["total"] for page in by_status.values()) == report["all"]["total"]
    assert report["mine"][1] in [b["batchId"] for b in by_status["failed"]["batches"]]
    failed = next(b for b in by_status["failed"]["batches"] if b["batchId"] == report["mine"][1])
    assert (failed["completed"], failed["failed"], failed["totalWorkflows"]) == (0, 1, 1)


def test_batch_list_rejects_bad_filters(batches: Scenarios) -> None:
    report = batches.result("list")
    assert report["badStatus"]["error"]["code"] == "BAD_REQUEST"
    assert report["badLimit"]["error"]["code"] == "BAD_REQUEST"


# clearAll


def test_clear_all_deletes_finished_history_and_keeps_the_active(fresh: Scenarios) -> None:
    report = fresh.result("clear-all")
    cleared = report["cleared"]
    assert cleared["success"] is True
    # Two finished batches (2 + 1 executions) and one finished execution of no batch; the
    # paused execution and the running batch (one finished, one paused) stay.
    assert (cleared["batchesDeleted"], cleared["executionsDeleted"], cleared["keptActive"]) == (
        2,
        4,
        2,
    )
    ids = report["ids"]
    assert [b["batchId"] for b in report["batchesAfter"]["batches"]] == [ids["mixed"]]
    assert sorted(e["executionId"] for e in report["executionsAfter"]["executions"]) == sorted(
        [ids["paused"], ids["mixedQuick"], ids["mixedHeld"]]
    )
    assert report["gone"]["finishedBatch"]["error"]["code"] == "NOT_FOUND"
    assert report["gone"]["standalone"]["status"] == "not_found"


def test_clear_all_keeps_the_finished_executions_of_a_running_batch(fresh: Scenarios) -> None:
    """Deleting them made the batch count them as never created: it reported them queued and
    stayed running forever."""
    report = fresh.result("clear-all")
    kept = report["mixedAfterClear"]
    assert [e["status"] for e in kept["executions"]] == ["completed", "paused"]
    ended = report["mixedEnded"]
    assert (ended["status"], ended["completed"], ended["queued"]) == ("completed", 2, 0)


def test_subscriptions_follow_new_rows_after_clear_all(fresh: Scenarios) -> None:
    followed = fresh.result("clear-all")["followed"]
    assert followed["error"] is None and followed["ended"] is True, followed
    assert followed["events"][-1]["data"]["status"] == "completed"


def test_clear_all_once_everything_ended_deletes_the_rest(fresh: Scenarios) -> None:
    report = fresh.result("clear-all")
    again = report["clearedAgain"]
    assert (again["batchesDeleted"], again["executionsDeleted"], again["keptActive"]) == (1, 3, 0)
    assert report["executionsAtEnd"]["total"] == 0
    assert report["batchesAtEnd"]["total"] == 0
