"""Controlling executions through the official @trpc/client: stop, stopAll, pause, continue,
pauseControl at breakpoints, pause and input nodes, setTraceLogs, retry, idempotency keys, and
the errors for unknown ids and malformed input.

`client/control.mjs` runs each scenario once against this module's server (httpBatchLink,
superjson) and reports every answer with the execution's status around it. Slow steps are
minute-long delays that the scenario stops, or pause and input nodes, so no test waits out a
timer. The scenarios that act on "the most recent" execution rely on each one leaving nothing
active behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpc.settings import Settings
from tests.e2e._node import Scenarios
from tests.servers import running_server

pytestmark = pytest.mark.slow

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN = "exec_1700000000000_zzzzz"


class Control(Scenarios):
    def __init__(self, base_url: str, counts: Path) -> None:
        super().__init__("control.mjs", base_url)
        self.counts = counts

    def runs_of(self, execution_id: str) -> list[str]:
        """The `count` nodes (tests/plugins/counting.py) this execution ran, in order."""
        lines = self.counts.read_text().splitlines() if self.counts.exists() else []
        return [line.split()[1] for line in lines if line.split()[0] == execution_id]


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    base = tmp_path_factory.mktemp("client-control")
    counts = base / "counts.txt"
    settings = Settings(db=str(base / "blueprint.db"), plugins=("tests.plugins.counting",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLUEPRINT_COUNT_FILE", str(counts))
        with running_server(settings) as url:
            yield Control(url, counts)


def answered(answer: dict[str, Any], success: bool, execution_id: str | None) -> None:
    assert (answer["success"], answer["executionId"]) == (success, execution_id), answer
    assert isinstance(answer["message"], str) and answer["message"], answer


# stop and stopAll


def test_stop_by_id_cancels_the_running_step(control: Control) -> None:
    result = control.result("stop")
    answered(result["stoppedById"], True, result["byId"])
    assert (result["stoppedById"]["wasRunning"], result["stoppedById"]["wasQueued"]) == (
        True,
        False,
    )
    # The answer comes once the stop is in the log: the very next read shows it.
    after = result["afterById"]
    assert (after["status"], after["steps"]) == ("cancelled", {"wait": "cancelled"})
    assert ISO_TIME.match(after["endTime"])


def test_stop_without_an_id_stops_the_most_recent_active_execution(control: Control) -> None:
    result = control.result("stop")
    answered(result["stoppedRecent"], True, result["recent"])
    assert result["stoppedRecent"]["wasRunning"] is True
    assert result["afterRecent"]["status"] == "cancelled"


def test_stop_of_a_queued_execution_cancels_it_before_it_starts(control: Control) -> None:
    result = control.result("stop")
    assert result["queuedBefore"]["status"] == "queued"
    answered(result["stoppedQueued"], True, result["queued"])
    assert (result["stoppedQueued"]["wasRunning"], result["stoppedQueued"]["wasQueued"]) == (
        False,
        True,
    )
    assert result["afterQueued"]["status"] == "cancelled"
    assert result["afterQueued"]["ran"] == []
    assert result["firstStill"]["status"] == "running"  # its batch sibling was left alone
    assert result["stoppedFirst"]["success"] is True


def test_stop_with_nothing_active_answers_success_false(control: Control) -> None:
    nothing = control.result("stop")["nothingActive"]
    answered(nothing, False, None)
    assert (nothing["wasRunning"], nothing["wasQueued"]) == (False, False)


def test_stop_all_stops_running_and_paused_and_cancels_queued(control: Control) -> None:
    result = control.result("stop-all")
    assert result["activeBefore"]["totalActive"] == 5, result["activeBefore"]
    stopped = result["stopped"]
    assert stopped["success"] is True
    assert (
        stopped["totalStopped"],
        stopped["runningStopped"],
        stopped["queuedCancelled"],
        stopped["totalBatches"],
        stopped["batches"],
    ) == (5, 3, 2, 1, [result["batchId"]])
    assert result["activeAfter"] == {"totalActive": 0, "executions": []}
    assert [e["status"] for e in result["after"]] == ["cancelled"] * 5
    batch = result["batchAfter"]
    assert (batch["status"], batch["running"], batch["queued"]) == ("cancelled", 0, 0)


def test_stop_all_cancels_queued_executions_without_starting_them(control: Control) -> None:
    """Stopping a running execution of a batch frees its slot; stopAll once stopped the running
    ones first, so the engine started each queued one just before stopping it (and counted it
    as running)."""
    after = control.result("stop-all")["after"]
    queued = after[3:]  # the batch's second and third: one at a time, so they waited
    assert [e["ran"] for e in queued] == [[], []], queued


def test_stop_all_with_nothing_active_stops_nothing(control: Control) -> None:
    again = control.result("stop-all")["again"]
    assert again["success"] is True
    assert (again["totalStopped"], again["totalBatches"], again["batches"]) == (0, 0, [])


# pause and continue


def test_a_manual_pause_lets_the_running_step_finish_and_starts_nothing_new(
    control: Control,
) -> None:
    result = control.result("pause")
    answered(result["paused"], True, result["id"])
    paused = result["whilePaused"]
    assert (paused["status"], paused["pauseReason"], paused["pausedNodeId"]) == (
        "paused",
        "manual",
        None,
    )
    settled = result["settled"]
    assert settled["status"] == "paused"
    assert settled["steps"] == {"slow": "succeeded", "next": "queued"}
    answered(result["pausedAgain"], False, result["id"])
    assert "paused" in result["pausedAgain"]["message"]


def test_continue_resumes_a_manual_pause(control: Control) -> None:
    result = control.result("pause")
    answered(result["continued"], True, result["id"])
    final = result["final"]
    assert (final["status"], final["steps"]) == (
        "completed",
        {"slow": "succeeded", "next": "succeeded"},
    )


def test_a_pause_node_pauses_with_reason_wait_pause(control: Control) -> None:
    paused = control.result("continue-recent")["newerPaused"]
    assert (paused["status"], paused["pauseReason"], paused["pausedNodeId"]) == (
        "paused",
        "wait-pause",
        "hold",
    )
    assert paused["steps"] == {"start": "succeeded", "hold": "waiting", "after": "queued"}


def test_continue_without_an_id_takes_the_most_recent_paused_execution(control: Control) -> None:
    result = control.result("continue-recent")
    answered(result["first"], True, result["newer"])
    assert result["newerFinal"]["status"] == "completed"
    assert result["newerFinal"]["finalOutputs"] == [
        {"nodeId": "after", "output": {"hold": None}, "artifacts": []}
    ]
    assert result["olderStill"]["status"] == "paused"
    answered(result["second"], True, result["older"])
    assert result["olderFinal"]["status"] == "completed"
    answered(result["none"], False, None)


# breakpoints


def test_breakpoints_pause_before_each_node_in_debug(control: Control) -> None:
    result = control.result("breakpoints")
    at_b = result["atB"]
    assert (at_b["status"], at_b["pauseReason"], at_b["pausedNodeId"]) == (
        "paused",
        "breakpoint",
        "b",
    )
    assert at_b["steps"] == {
        "a": "succeeded",
        "b": "waiting",
        "c": "queued",
        "d": "queued",
        "e": "queued",
    }
    assert "b" not in at_b["ran"]  # paused before it, not during it


def test_pause_control_continue_runs_the_node_and_stops_at_the_next(control: Control) -> None:
    result = control.result("breakpoints")
    continued = result["continued"]
    answered(continued, True, result["id"])
    assert continued["action"] == "continue"
    assert (result["atC"]["pausedNodeId"], result["atC"]["steps"]["b"]) == ("c", "succeeded")


def test_pause_control_skip_marks_the_node_skipped_and_goes_on(control: Control) -> None:
    result = control.result("breakpoints")
    skipped = result["skipped"]
    answered(skipped, True, result["id"])  # no id: the most recent paused execution
    assert skipped["action"] == "skip"
    at_d = result["atD"]
    assert (at_d["pausedNodeId"], at_d["steps"]["c"]) == ("d", "skipped")
    assert "c" not in at_d["ran"]


def test_continue_without_breakpoint_runs_to_the_end(control: Control) -> None:
    result = control.result("breakpoints")
    answered(result["unbroken"], True, result["id"])
    assert result["unbroken"]["action"] == "continueWithoutBreakpoint"
    final = result["final"]
    assert final["status"] == "completed"
    assert final["steps"] == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "skipped",
        "d": "succeeded",
        "e": "succeeded",
    }
    assert final["finalOutputs"] == [
        {"nodeId": "e", "output": {"b": 1, "c": None, "d": 3}, "artifacts": []}
    ]


def test_pause_control_stop_at_a_breakpoint_cancels(control: Control) -> None:
    result = control.result("breakpoints")
    assert result["stopAtB"]["pausedNodeId"] == "b"
    answered(result["stopped"], True, result["stoppedId"])
    assert result["stopped"]["action"] == "stop"
    after = result["afterStop"]
    assert after["status"] == "cancelled"
    assert after["steps"] == {
        "a": "succeeded",
        "b": "cancelled",
        "c": "cancelled",
        "d": "cancelled",
        "e": "cancelled",
    }


def test_breakpoints_apply_only_in_debug(control: Control) -> None:
    plain = control.result("breakpoints")["plain"]
    assert plain["status"] == "completed"
    assert set(plain["steps"].values()) == {"succeeded"}


# input nodes


def test_an_input_node_pauses_with_what_it_awaits(control: Control) -> None:
    result = control.result("input")
    waiting = result["waiting"]
    assert (waiting["status"], waiting["pauseReason"], waiting["pausedNodeId"]) == (
        "paused",
        "input",
        "ask",
    )
    awaiting = waiting["awaitingInput"]
    assert set(awaiting) == {"nodeId", "prompt", "schema", "requestedAt"}
    assert (awaiting["nodeId"], awaiting["prompt"], awaiting["schema"]) == (
        "ask",
        "Publish the report?",
        result["schema"],
    )
    assert ISO_TIME.match(awaiting["requestedAt"])
    assert waiting["steps"] == {"ask": "waiting", "after": "queued"}


def test_rejected_input_is_bad_request_naming_every_violation(control: Control) -> None:
    rejected = control.result("input")["rejected"]
    assert rejected["ok"] is False
    error = rejected["error"]
    assert error["name"] == "TRPCClientError"
    assert (error["code"], error["httpStatus"], error["path"], error["shapeCode"]) == (
        "BAD_REQUEST",
        400,
        "execution.provideInput",
        -32600,
    )
    assert "ask" in error["message"]
    problems = {(p["nodeId"], p["field"]): p["message"] for p in error["problems"]}
    assert set(problems) == {
        ("ask", "data.ok"),
        ("ask", "data.count"),
        ("ask", "data.tag"),
        ("ask", "data.note"),
    }, error["problems"]
    assert "required" in problems["ask", "data.ok"]
    assert "1" in problems["ask", "data.count"]
    assert '"a"' in problems["ask", "data.tag"]
    assert "5" in problems["ask", "data.note"]
    wrong_type = control.result("input")["wrongType"]["error"]
    assert wrong_type["code"] == "BAD_REQUEST"
    assert [(p["field"], p["message"]) for p in wrong_type["problems"]] == [
        ("data", "expected object, got string")
    ]


def test_rejected_input_changes_nothing(control: Control) -> None:
    result = control.result("input")
    assert result["afterRejected"] == result["waiting"]
    assert result["afterRejectedSteps"] == result["waitingSteps"]


def test_continue_does_not_answer_an_input_node(control: Control) -> None:
    result = control.result("input")
    answered(result["continued"], False, result["id"])
    assert "input" in result["continued"]["message"]


def test_accepted_input_becomes_the_nodes_output(control: Control) -> None:
    result = control.result("input")
    answered(result["accepted"], True, result["id"])
    final = result["final"]
    assert (final["status"], final["awaitingInput"], final["pauseReason"]) == (
        "completed",
        None,
        None,
    )
    assert final["finalOutputs"] == [
        {"nodeId": "after", "output": {"ok": True, "count": 2, "tag": "a"}, "artifacts": []}
    ]


# trace logs


def levels_after(logs: list[dict[str, Any]], message: str) -> list[tuple[str, str | None]]:
    """(level, node) of the entries after the first one with this message."""
    index = next(i for i, entry in enumerate(logs) if entry["message"] == message)
    return [(entry["level"], entry["nodeId"]) for entry in logs[index + 1 :]]


def test_set_trace_logs_on_adds_trace_entries_from_then_on(control: Control) -> None:
    result = control.result("trace")
    assert [e for e in result["offBefore"] if e["level"] == "trace"] == []
    turned_on = result["turnedOn"]
    answered(turned_on, True, result["off"])  # no id: the most recent active execution
    assert turned_on["enabled"] is True
    after = levels_after(result["offLogs"], "Trace logs on")
    assert ("trace", "shape") in after, result["offLogs"]


def test_set_trace_logs_off_stops_them(control: Control) -> None:
    result = control.result("trace")
    logs = result["onLogs"]
    before = levels_after(logs, "Execution started: 3 nodes")
    assert ("trace", "first") in before, logs  # on from the start (traceLogs: true)
    answered(result["turnedOff"], True, result["on"])
    assert result["turnedOff"]["enabled"] is False
    assert [level for level, _ in levels_after(logs, "Trace logs off")].count("trace") == 0, logs
    assert result["onFinal"]["status"] == "completed"


def test_set_trace_logs_refuses_an_ended_execution_or_none_active(control: Control) -> None:
    result = control.result("trace")
    answered(result["ended"], False, result["on"])
    assert "completed" in result["ended"]["message"]
    answered(result["none"], False, None)


# retry


def test_retry_of_an_active_execution_is_precondition_failed(control: Control) -> None:
    result = control.result("retry")
    error = result["early"]["error"]
    assert (error["code"], error["httpStatus"], error["path"]) == (
        "PRECONDITION_FAILED",
        412,
        "execution.retry",
    )
    assert "paused" in error["message"]


def test_retry_reuses_succeeded_steps_without_running_them(control: Control) -> None:
    result = control.result("retry")
    original, retried = result["original"], result["retried"]
    assert result["originalEnded"]["steps"] == {
        "first": "succeeded",
        "hold": "cancelled",
        "last": "cancelled",
    }
    assert retried["retryOf"] == original
    assert retried["executionId"] != original
    assert result["retriedPaused"]["steps"] == {
        "first": "succeeded",
        "hold": "waiting",
        "last": "queued",
    }
    final = result["retriedFinal"]
    assert (final["status"], final["retryOf"]) == ("completed", original)
    assert result["retriedMetadata"] == {"who": "retry"}
    assert any("reused" in e["message"] and e["nodeId"] == "first" for e in result["retriedLogs"])
    # The count plugin wrote a line for each node it really ran.
    assert control.runs_of(original) == ["first"]
    assert control.runs_of(retried["executionId"]) == ["last"]
    assert result["originalAfter"]["status"] == "cancelled"  # the original is left as it was


def test_retry_of_a_failed_execution_reruns_only_what_failed(control: Control) -> None:
    result = control.result("retry")
    assert result["failed"]["status"] == "failed"
    assert result["failedRetry"]["retryOf"] == result["failing"]
    again = result["failedAgain"]
    assert (again["status"], again["steps"]) == ("failed", {"first": "succeeded", "boom": "failed"})
    assert again["error"]["code"] == "ASSERTION_FAILED"
    assert control.runs_of(result["failing"]) == ["first"]
    assert control.runs_of(result["failedRetry"]["executionId"]) == []


# idempotency keys


def test_the_same_idempotency_key_returns_the_same_execution(control: Control) -> None:
    result = control.result("idempotency")
    assert result["again"] == result["first"]
    assert result["listedOnce"]["total"] == 1
    concurrent = result["concurrent"]
    assert all(o["ok"] for o in concurrent), concurrent
    ids = {o["data"]["executionId"] for o in concurrent}
    assert len(ids) == 1 and result["first"]["executionId"] not in ids
    assert result["listedTwice"]["total"] == 2


def test_the_same_idempotency_key_with_another_request_is_conflict(control: Control) -> None:
    error = control.result("idempotency")["conflict"]["error"]
    assert (error["code"], error["httpStatus"], error["shapeCode"]) == ("CONFLICT", 409, -32009)


# bad input


def test_unknown_ids_are_not_found(control: Control) -> None:
    unknown = control.result("bad-input")["unknown"]
    for name, outcome in unknown.items():
        assert outcome["ok"] is False, (name, outcome)
        assert (outcome["error"]["code"], outcome["error"]["httpStatus"]) == ("NOT_FOUND", 404), (
            name,
            outcome,
        )
    assert unknown["retry"]["error"]["path"] == "execution.retry"
    assert UNKNOWN in unknown["stop"]["error"]["message"]


def test_an_unknown_id_has_status_not_found_and_is_not_created(control: Control) -> None:
    status = control.result("bad-input")["unknownStatus"]
    assert (status["id"], status["status"], status["steps"]) == (UNKNOWN, "not_found", {})


def test_malformed_inputs_are_bad_request_naming_the_field(control: Control) -> None:
    malformed = control.result("bad-input")["malformed"]
    for name, outcome in malformed.items():
        assert outcome["ok"] is False, (name, outcome)
        assert (outcome["error"]["code"], outcome["error"]["httpStatus"]) == ("BAD_REQUEST", 400), (
            name,
            outcome,
        )
    messages = {name: outcome["error"]["message"] for name, outcome in malformed.items()}
    assert "executionId" in messages["stopBadId"]
    assert "force" in messages["stopExtraField"]
    assert "action" in messages["pauseControlAction"]
    assert "enabled" in messages["setTraceLogsString"]
    assert "concurrency" in messages["batchConcurrency"]
