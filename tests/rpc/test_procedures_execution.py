"""execution.* over a real server: starting executions, their status, lists and logs.

The server loads this module as a plugin (see `register`): a `hold` node runs until the test
opens its gate, so "running" is a state the test controls rather than a race it hopes to win,
and a `measure` node reports a metric and an artifact.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from engine.context import NodeContext
from engine.registry import NodeRegistry
from rpc.settings import Settings
from tests.rpc.test_procedures_blueprint import (
    API,
    ISO_TIME,
    MAX_BATCHES,
    TRPCError,
    in_order_by_chance,
    noop,
    wait_past,
)
from tests.servers import running_server

EXECUTION_ID = re.compile(r"^exec_[0-9]{1,16}_[0-9a-z]{5}$")
STATUS_FIELDS = {
    "id",
    "blueprintId",
    "blueprintVersion",
    "batchId",
    "status",
    "progress",
    "startTime",
    "endTime",
    "updatedAt",
    "totalSteps",
    "completedSteps",
    "failedSteps",
    "runningSteps",
    "skippedSteps",
    "steps",
    "logs",
    "logsTruncated",
    "currentStep",
    "runningNodeIds",
    "awaitingInput",
    "pausedNodeId",
    "pauseReason",
    "error",
    "finalOutputs",
    "metadata",
}
STEP_FIELDS = {
    "stepId",
    "nodeId",
    "name",
    "type",
    "status",
    "attemptNo",
    "predecessorsLeft",
    "queuedAt",
    "startedAt",
    "completedAt",
    "durationMs",
    "nextRetryAt",
    "error",
    "attempts",
}
SUMMARY_FIELDS = {
    "executionId",
    "blueprintId",
    "blueprintVersion",
    "batchId",
    "status",
    "progress",
    "startTime",
    "endTime",
    "durationMs",
    "totalSteps",
    "completedSteps",
    "failedSteps",
}
LEVELS = ["trace", "debug", "info", "warn", "error"]

# -- the plugin ----------------------------------------------------------------------------

GATES: defaultdict[str, threading.Event] = defaultdict(threading.Event)


class HoldConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gate: str


class MeasureConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rows: int


async def hold(ctx: NodeContext, config: HoldConfig) -> dict[str, str]:
    """Runs until the test opens its gate."""
    gate = GATES[config.gate]
    while not gate.is_set():
        await asyncio.sleep(0.005)
    return {"released": config.gate}


async def measure(ctx: NodeContext, config: MeasureConfig) -> dict[str, int]:
    """Reports a metric and attaches an artifact."""
    ctx.metric("rows", config.rows)
    ctx.artifact({"type": "file", "outputId": "rows.csv", "url": "http://x/rows.csv"})
    return {"rows": config.rows}


def register(registry: NodeRegistry) -> None:
    """The plugin hook: servers here start with `plugins=(__name__,)`."""
    registry.node_type("hold", config=HoldConfig)(hold)
    registry.node_type("measure", config=MeasureConfig)(measure)


# -- fixtures and helpers ------------------------------------------------------------------


def settings(db: str, **overrides: Any) -> Settings:
    return Settings(db=db, plugins=(__name__,), **overrides)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[API]:
    db = tmp_path_factory.mktemp("procedures-execution") / "blueprint.db"
    with running_server(settings(str(db))) as url, API(url) as client:
        yield client


@pytest.fixture
def gate() -> Iterator[str]:
    """A closed gate for `hold` nodes (and its own `<gate>-<suffix>` ones, for a test that
    needs more); all are opened at the end so nothing is left holding."""
    name = uuid.uuid4().hex
    yield name
    for key in list(GATES):
        if key.startswith(name):
            GATES[key].set()


def open_gate(name: str) -> None:
    GATES[name].set()


def held(node_id: str, gate: str, *depends_on: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "hold",
        "config": {"gate": gate},
        "dependsOn": list(depends_on),
        **fields,
    }


def inline(*nodes: dict[str, Any], name: str = "inline") -> dict[str, Any]:
    return {"name": name, "nodes": list(nodes)}


def start(api: API, request: dict[str, Any]) -> dict[str, Any]:
    started: dict[str, Any] = api.mutate("execution.executeBlueprintWithLogging", request)
    return started


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["nodeId"]: step for step in status["steps"]}


def all_logs(api: API, execution_id: str) -> list[dict[str, Any]]:
    page = api.query("execution.getLogs", {"executionId": execution_id, "limit": 1000})
    assert page["hasMore"] is False
    logs: list[dict[str, Any]] = page["logs"]
    return logs


FAN_OUT_FAN_IN = inline(
    noop("start"),
    {"id": "side", "type": "transform", "config": {"template": {"seen": "{{ input.n }}"}}},
    {"id": "left", "type": "delay", "config": {"ms": 30}, "dependsOn": ["start"]},
    {
        "id": "right",
        "type": "transform",
        "config": {"expression": "nodes.start.output.n"},
        "dependsOn": ["start"],
    },
    noop("join", "left", "right"),
    name="fan",
)


# -- executeBlueprintWithLogging -----------------------------------------------------------


def test_execute_with_logging_returns_at_once(api: API, gate: str) -> None:
    saved = api.mutate("blueprint.create", inline(held("wait", gate)))

    started = start(api, {"blueprintId": saved["blueprintId"]})

    assert set(started) == {"executionId", "status", "blueprintId", "version"}
    assert EXECUTION_ID.match(started["executionId"])
    assert started["status"] in ("queued", "running")
    assert (started["blueprintId"], started["version"]) == (saved["blueprintId"], 1)
    status = api.wait_until(started["executionId"], lambda s: s["currentStep"] == "wait")
    assert (status["status"], status["endTime"]) == ("running", None)
    open_gate(gate)
    assert api.wait_final(started["executionId"])["status"] == "completed"


def test_execute_with_logging_runs_the_newest_version_unless_told(api: API) -> None:
    saved = api.mutate("blueprint.create", inline(noop("one")))
    blueprint_id = saved["blueprintId"]
    api.mutate("blueprint.update", {"blueprintId": blueprint_id, **inline(noop("two"))})

    newest = start(api, {"blueprintId": blueprint_id})
    first = start(api, {"blueprintId": blueprint_id, "version": 1})

    assert (newest["version"], first["version"]) == (2, 1)
    assert by_node(api.wait_final(newest["executionId"])).keys() == {"two"}
    assert by_node(api.wait_final(first["executionId"])).keys() == {"one"}


def test_an_inline_blueprint_runs_without_an_id(api: API) -> None:
    started = start(api, {"blueprint": inline(noop("a")), "input": {"k": 1}})
    assert (started["blueprintId"], started["version"]) == (None, None)
    status = api.wait_final(started["executionId"])
    assert (status["blueprintId"], status["blueprintVersion"]) == (None, None)
    assert status["finalOutputs"] == [{"nodeId": "a", "output": {"k": 1}, "artifacts": []}]


@pytest.mark.parametrize("path", ["execution.executeBlueprintWithLogging", "blueprint.execute"])
@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({}, id="neither"),
        pytest.param(
            {"blueprintId": "bp_1733050800000_zzzzz", "blueprint": inline(noop("a"))}, id="both"
        ),
        pytest.param({"blueprint": inline(noop("a")), "version": 1}, id="version-without-id"),
        pytest.param({"blueprintId": "bp-1"}, id="malformed-id"),
        pytest.param({"blueprint": inline(noop("a")), "metadata": [1]}, id="metadata-not-object"),
    ],
)
def test_a_start_needs_exactly_one_of_blueprint_id_or_blueprint(
    api: API, path: str, request_: dict[str, Any]
) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate(path, request_)
    assert (caught.value.code, caught.value.status) == ("BAD_REQUEST", 400)


@pytest.mark.parametrize("path", ["execution.executeBlueprintWithLogging", "blueprint.execute"])
def test_an_invalid_inline_blueprint_lists_its_problems(api: API, path: str) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate(path, {"blueprint": inline(noop("a", "a"), {"id": "b", "type": "teleport"})})
    assert caught.value.code == "BAD_REQUEST"
    assert {(p["nodeId"], p["field"]) for p in caught.value.problems or []} == {
        ("a", "dependsOn"),
        ("b", "type"),
    }


@pytest.mark.parametrize("path", ["execution.executeBlueprintWithLogging", "blueprint.execute"])
def test_an_unknown_blueprint_is_not_found(api: API, path: str) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate(path, {"blueprintId": "bp_1733050800000_zzzzz"})
    assert (caught.value.code, caught.value.status) == ("NOT_FOUND", 404)


def test_execute_with_logging_takes_no_wait(api: API) -> None:
    with pytest.raises(TRPCError) as caught:
        start(api, {"blueprint": inline(noop("a")), "waitMs": 10})
    assert caught.value.code == "BAD_REQUEST"
    assert "waitMs" in str(caught.value)


# -- blueprint.execute's wait --------------------------------------------------------------


def test_execute_returns_a_running_status_when_the_wait_is_over(api: API, gate: str) -> None:
    status = api.mutate(
        "blueprint.execute", {"blueprint": inline(held("long", gate)), "waitMs": 20}
    )
    assert set(status) >= STATUS_FIELDS
    assert (status["status"], status["endTime"], status["progress"]) == ("running", None, 0)
    assert (status["currentStep"], status["runningNodeIds"]) == ("long", ["long"])
    assert by_node(status)["long"]["status"] == "running"
    open_gate(gate)
    assert api.wait_final(status["id"])["status"] == "completed"


# -- getExecutionStatus --------------------------------------------------------------------


def test_a_completed_status_has_every_field(api: API) -> None:
    started = start(
        api, {"blueprint": FAN_OUT_FAN_IN, "input": {"n": 21}, "metadata": {"who": "ann"}}
    )
    status = api.wait_final(started["executionId"])

    assert set(status) >= STATUS_FIELDS
    assert status["id"] == started["executionId"]
    assert (status["blueprintId"], status["blueprintVersion"], status["batchId"]) == (
        None,
        None,
        None,
    )
    assert (status["status"], status["progress"], status["error"]) == ("completed", 100, None)
    for field in ("startTime", "endTime", "updatedAt"):
        assert ISO_TIME.match(status[field]), field
    assert status["startTime"] <= status["endTime"] <= status["updatedAt"]
    assert isinstance(status["durationMs"], int) and status["durationMs"] >= 0
    counts = [status[k] for k in ("totalSteps", "completedSteps", "failedSteps")]
    assert counts == [5, 5, 0]
    assert (status["runningSteps"], status["skippedSteps"]) == (0, 0)
    assert (status["currentStep"], status["runningNodeIds"]) == (None, [])
    assert (status["awaitingInput"], status["pausedNodeId"], status["pauseReason"]) == (
        None,
        None,
        None,
    )
    assert status["metadata"] == {"who": "ann"}
    assert status["logsTruncated"] is False
    assert status["logs"] == all_logs(api, status["id"])
    assert not {"outputs", "metrics", "artifacts"} & set(status)
    # The leaves (no dependants) in the blueprint's node order.
    assert status["finalOutputs"] == [
        {"nodeId": "side", "output": {"seen": 21}, "artifacts": []},
        {"nodeId": "join", "output": {"left": {"sleptMs": 30}, "right": 21}, "artifacts": []},
    ]


def test_step_records(api: API) -> None:
    started = start(api, {"blueprint": FAN_OUT_FAN_IN, "input": {"n": 1}})
    status = api.wait_final(started["executionId"])

    steps = status["steps"]
    assert [s["nodeId"] for s in steps] == ["start", "side", "left", "right", "join"]
    assert len({s["stepId"] for s in steps}) == 5
    for step in steps:
        assert set(step) == STEP_FIELDS
        assert (step["status"], step["attemptNo"], step["predecessorsLeft"]) == (
            "succeeded",
            1,
            0,
        )
        assert (step["nextRetryAt"], step["error"], step["name"]) == (None, None, step["nodeId"])
        for field in ("queuedAt", "startedAt", "completedAt"):
            assert ISO_TIME.match(step[field]), field
        assert isinstance(step["durationMs"], int) and step["durationMs"] >= 0
        (attempt,) = step["attempts"]
        assert attempt == {
            "attemptNo": 1,
            "startedAt": step["startedAt"],
            "completedAt": step["completedAt"],
            "error": None,
        }
    assert {s["nodeId"]: s["type"] for s in steps} == {
        "start": "noop",
        "side": "transform",
        "left": "delay",
        "right": "transform",
        "join": "noop",
    }
    assert by_node(status)["join"]["startedAt"] >= by_node(status)["left"]["completedAt"]


def test_a_running_status(api: API, gate: str) -> None:
    started = start(
        api, {"blueprint": inline(held("h1", gate), held("h2", gate), noop("after", "h1", "h2"))}
    )
    status = api.wait_until(started["executionId"], lambda s: s["runningSteps"] == 2)

    assert (status["status"], status["progress"], status["endTime"]) == ("running", 0, None)
    assert (status["currentStep"], status["runningNodeIds"]) == ("h1", ["h1", "h2"])
    steps = by_node(status)
    assert [steps[n]["status"] for n in ("h1", "h2", "after")] == ["running", "running", "queued"]
    assert steps["after"]["predecessorsLeft"] == 2
    assert steps["h1"]["completedAt"] is None
    assert steps["h1"]["attempts"][0]["completedAt"] is None
    assert status["finalOutputs"] == []
    open_gate(gate)
    done = api.wait_final(status["id"])
    assert (done["status"], done["progress"], done["completedSteps"]) == ("completed", 100, 3)


def test_logs_limit_keeps_the_newest_entries(api: API) -> None:
    started = start(api, {"blueprint": FAN_OUT_FAN_IN, "input": {"n": 1}})
    everything = api.wait_final(started["executionId"])["logs"]
    assert len(everything) > 3
    assert [entry["seq"] for entry in everything] == list(range(1, len(everything) + 1))
    for entry in everything:
        assert set(entry) == {"seq", "timestamp", "level", "nodeId", "message", "data"}
        assert ISO_TIME.match(entry["timestamp"]) and entry["level"] in LEVELS

    newest = api.status(started["executionId"], logsLimit=2)
    assert (newest["logs"], newest["logsTruncated"]) == (everything[-2:], True)
    none = api.status(started["executionId"], logsLimit=0)
    assert (none["logs"], none["logsTruncated"]) == ([], True)
    exact = api.status(started["executionId"], logsLimit=len(everything))
    assert (exact["logs"], exact["logsTruncated"]) == (everything, False)


def test_include_outputs_metrics_and_artifacts(api: API) -> None:
    blueprint = inline(
        noop("first"),
        {"id": "count", "type": "measure", "config": {"rows": 3}, "dependsOn": ["first"]},
    )
    started = start(api, {"blueprint": blueprint, "input": {"x": 1}})
    api.wait_final(started["executionId"])
    artifact = {"type": "file", "outputId": "rows.csv", "url": "http://x/rows.csv"}

    full = api.status(started["executionId"], include=["outputs", "metrics", "artifacts"])

    assert full["outputs"] == {"first": {"x": 1}, "count": {"rows": 3}}
    assert full["artifacts"] == [{"nodeId": "count", **artifact}]
    metrics = full["metrics"]
    assert isinstance(metrics["durationMs"], int)
    assert metrics["steps"].keys() == {"first", "count"}
    assert metrics["steps"]["count"]["attempts"] == 1
    assert metrics["steps"]["count"]["durationMs"] == by_node(full)["count"]["durationMs"]
    assert metrics["reported"] == {"count": {"rows": 3.0}}
    assert full["finalOutputs"] == [
        {"nodeId": "count", "output": {"rows": 3}, "artifacts": [artifact]}
    ]
    only_outputs = api.status(started["executionId"], include=["outputs"])
    assert "outputs" in only_outputs
    assert not {"metrics", "artifacts"} & set(only_outputs)


@pytest.mark.parametrize(
    "options",
    [{"logsLimit": -1}, {"logsLimit": 1001}, {"include": ["secrets"]}, {"include": "outputs"}],
)
def test_bad_status_options_are_bad_requests(api: API, options: dict[str, Any]) -> None:
    with pytest.raises(TRPCError) as caught:
        api.status("exec_1733050800000_a3b7z", **options)
    assert caught.value.code == "BAD_REQUEST"


def test_an_unknown_id_is_a_not_found_status(api: API) -> None:
    status = api.status("exec_1733050800000_a3b7z")
    assert set(status) >= STATUS_FIELDS
    assert (status["id"], status["status"]) == ("exec_1733050800000_a3b7z", "not_found")
    counts = ("progress", "totalSteps", "completedSteps", "failedSteps", "runningSteps")
    assert [status[k] for k in (*counts, "skippedSteps")] == [0] * 6
    lists = ("steps", "logs", "finalOutputs", "runningNodeIds")
    assert [status[k] for k in lists] == [[], [], [], []]
    assert (status["error"], status["awaitingInput"], status["endTime"]) == (None, None, None)


@pytest.mark.parametrize("path", ["execution.getExecutionStatus", "execution.getLogs"])
@pytest.mark.parametrize(
    "execution_id", ["", "exec_", "exec_123", "exec_1733050800000_A3B7Z", "bp_1_aaaaa", "x" * 50]
)
def test_a_malformed_id_is_a_bad_request(api: API, path: str, execution_id: str) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query(path, {"executionId": execution_id})
    assert (caught.value.code, caught.value.status) == ("BAD_REQUEST", 400)
    assert "executionId" in str(caught.value)


def test_an_input_node_pauses_the_execution_awaiting_input(api: API) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    blueprint = inline(
        noop("before"),
        {
            "id": "approve",
            "type": "input",
            "dependsOn": ["before"],
            "config": {"prompt": "Publish?", "schema": schema},
        },
        noop("publish", "approve"),
    )
    started = start(api, {"blueprint": blueprint})
    status = api.wait_until(started["executionId"], lambda s: s["status"] == "paused")

    awaiting = status["awaitingInput"]
    assert set(awaiting) == {"nodeId", "prompt", "schema", "requestedAt"}
    assert (awaiting["nodeId"], awaiting["prompt"], awaiting["schema"]) == (
        "approve",
        "Publish?",
        schema,
    )
    assert ISO_TIME.match(awaiting["requestedAt"])
    assert (status["pausedNodeId"], status["pauseReason"]) == ("approve", "input")
    steps = by_node(status)
    assert [steps[n]["status"] for n in ("before", "approve", "publish")] == [
        "succeeded",
        "waiting",
        "queued",
    ]
    assert (status["progress"], status["completedSteps"], status["endTime"]) == (33, 1, None)
    active = api.query("execution.listActive")["executions"]
    assert {"executionId": status["id"], "status": "paused"}.items() <= next(
        e for e in active if e["executionId"] == status["id"]
    ).items()


def test_a_failed_execution_shows_its_error(api: API, gate: str) -> None:
    go = f"{gate}-go"
    blueprint = inline(
        held("busy", gate),
        held("ready", go),
        {
            "id": "check",
            "type": "assert",
            "config": {"expression": "input.ok", "message": "not ok"},
            "dependsOn": ["ready"],
        },
        noop("after", "check"),
    )
    started = start(api, {"blueprint": blueprint, "input": {"ok": False}})
    api.wait_until(started["executionId"], lambda s: s["runningSteps"] == 2)
    open_gate(go)
    status = api.wait_final(started["executionId"])

    error = {"code": "ASSERTION_FAILED", "message": "not ok", "nodeId": "check"}
    assert (status["status"], status["error"]) == ("failed", error)
    assert ISO_TIME.match(status["endTime"])
    assert (status["failedSteps"], status["completedSteps"], status["progress"]) == (1, 1, 25)
    steps = by_node(status)
    assert (steps["check"]["status"], steps["check"]["error"]) == ("failed", error)
    assert steps["check"]["attempts"][0]["error"] == error
    # A failure stops the execution: running nodes are cancelled, unstarted ones too.
    assert [steps[n]["status"] for n in ("busy", "after")] == ["cancelled", "cancelled"]
    assert steps["busy"]["attempts"][-1]["error"]["code"] == "CANCELLED"
    assert steps["after"]["attempts"] == []
    assert status["finalOutputs"] == []


def test_each_attempt_is_recorded(api: API, gate: str) -> None:
    slow = held("slow", gate, timeoutMs=20, retry={"maxAttempts": 2, "backoffMs": 1})
    started = start(api, {"blueprint": inline(slow)})
    status = api.wait_final(started["executionId"])

    assert status["status"] == "failed"
    assert (status["error"]["code"], status["error"]["nodeId"]) == ("TIMEOUT", "slow")
    step = by_node(status)["slow"]
    assert (step["status"], step["attemptNo"], step["nextRetryAt"]) == ("failed", 2, None)
    assert [a["attemptNo"] for a in step["attempts"]] == [1, 2]
    for attempt in step["attempts"]:
        assert attempt["error"]["code"] == "TIMEOUT"
        assert attempt["startedAt"] <= attempt["completedAt"]


def test_a_branch_not_taken_is_skipped(api: API) -> None:
    blueprint = inline(
        {
            "id": "check",
            "type": "condition",
            "config": {"expression": "input.big", "then": ["big"], "else": ["small"]},
        },
        noop("big", "check"),
        noop("small", "check"),
        noop("after-big", "big"),
    )
    started = start(api, {"blueprint": blueprint, "input": {"big": False}})
    status = api.wait_final(started["executionId"])

    assert (status["status"], status["progress"]) == ("completed", 100)
    assert (status["completedSteps"], status["skippedSteps"]) == (4, 2)
    steps = by_node(status)
    assert [steps[n]["status"] for n in ("big", "after-big", "small")] == [
        "skipped",
        "skipped",
        "succeeded",
    ]
    assert [f["nodeId"] for f in status["finalOutputs"]] == ["small"]


@pytest.mark.parametrize(
    ("node", "debug", "reason"),
    [
        pytest.param(
            {"id": "wait", "type": "pause", "config": {"message": "hi"}},
            False,
            "wait-pause",
            id="pause-node",
        ),
        pytest.param(
            {**noop("wait", "first"), "breakpoint": True}, True, "breakpoint", id="breakpoint"
        ),
    ],
)
def test_why_an_execution_paused(api: API, node: dict[str, Any], debug: bool, reason: str) -> None:
    status = api.mutate(
        "blueprint.execute", {"blueprint": inline(noop("first"), node), "debug": debug}
    )
    assert (status["status"], status["pauseReason"], status["pausedNodeId"]) == (
        "paused",
        reason,
        "wait",
    )
    assert status["awaitingInput"] is None
    assert [s["status"] for s in status["steps"]] == ["succeeded", "waiting"]


def test_a_breakpoint_is_ignored_without_debug(api: API) -> None:
    blueprint = inline(noop("first"), {**noop("wait", "first"), "breakpoint": True})
    assert api.mutate("blueprint.execute", {"blueprint": blueprint})["status"] == "completed"


def test_a_failure_with_continue_on_error_lets_the_execution_complete(api: API) -> None:
    failing = {"id": "f", "type": "assert", "config": {"expression": "`false`"}}
    blueprint = inline({**failing, "continueOnError": True}, noop("next", "f"))
    status = api.mutate("blueprint.execute", {"blueprint": blueprint})

    assert (status["status"], status["progress"], status["error"]) == ("completed", 100, None)
    assert (status["failedSteps"], status["completedSteps"]) == (1, 1)
    assert by_node(status)["f"]["error"]["code"] == "ASSERTION_FAILED"
    assert status["finalOutputs"] == [{"nodeId": "next", "output": {"f": None}, "artifacts": []}]


def test_an_execution_timeout_fails_it(api: API, gate: str) -> None:
    status = api.mutate(
        "blueprint.execute", {"blueprint": inline(held("slow", gate)), "timeoutMs": 50}
    )
    assert status["status"] == "failed"
    assert (status["error"]["code"], status["error"]["nodeId"]) == ("TIMEOUT", None)
    assert by_node(status)["slow"]["status"] == "cancelled"


@pytest.mark.parametrize("path", ["execution.executeBlueprintWithLogging", "blueprint.execute"])
def test_a_repeated_idempotency_key_returns_the_first_execution(
    make_server: Any, path: str
) -> None:
    with API(make_server()) as api:
        saved = api.mutate("blueprint.create", inline(noop("a")))
        request = {"blueprintId": saved["blueprintId"], "idempotencyKey": "nightly-2024-12-01"}
        first = start(api, request)

        again = api.mutate(path, request)

        again_id = again.get("executionId", again.get("id"))
        assert again_id == first["executionId"]
        assert api.query("execution.list", {"blueprintId": saved["blueprintId"]})["total"] == 1


def test_an_idempotency_key_with_a_different_request_is_a_conflict(make_server: Any) -> None:
    with API(make_server()) as api:
        request = {"blueprint": inline(noop("a")), "idempotencyKey": "nightly-2024-12-01"}
        start(api, {**request, "input": 1})
        with pytest.raises(TRPCError) as caught:
            start(api, {**request, "input": 2})
        assert (caught.value.code, caught.value.status) == ("CONFLICT", 409)


# -- list and listActive -------------------------------------------------------------------


def test_list_filters_by_blueprint_and_status_newest_first(api: API) -> None:
    saved = api.mutate("blueprint.create", inline(noop("ok")))
    blueprint_id = saved["blueprintId"]
    failing = {"id": "no", "type": "assert", "config": {"expression": "`false`"}}
    api.mutate("blueprint.update", {"blueprintId": blueprint_id, **inline(failing)})
    ran = []
    for version in (1, 2, 1):
        if ran:
            wait_past(ran[-1]["startTime"])
        ran.append(
            api.mutate("blueprint.execute", {"blueprintId": blueprint_id, "version": version})
        )
    first, failed, last = ran
    start(api, {"blueprint": inline(noop("elsewhere"))})

    page = api.query("execution.list", {"blueprintId": blueprint_id})
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert [e["executionId"] for e in page["executions"]] == [last["id"], failed["id"], first["id"]]
    page = api.query("execution.list", {"blueprintId": blueprint_id, "status": "completed"})
    assert [e["executionId"] for e in page["executions"]] == [last["id"], first["id"]]
    page = api.query("execution.list", {"blueprintId": blueprint_id, "status": "failed"})
    assert [e["executionId"] for e in page["executions"]] == [failed["id"]]
    page = api.query("execution.list", {"blueprintId": blueprint_id, "limit": 1, "offset": 1})
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [e["executionId"] for e in page["executions"]] == [failed["id"]]

    summary = api.query("execution.list", {"blueprintId": blueprint_id, "status": "failed"})[
        "executions"
    ][0]
    assert set(summary) == SUMMARY_FIELDS
    assert summary == {
        "executionId": failed["id"],
        "blueprintId": blueprint_id,
        "blueprintVersion": 2,
        "batchId": None,
        "status": "failed",
        "progress": 0,
        "startTime": failed["startTime"],
        "endTime": failed["endTime"],
        "durationMs": summary["durationMs"],
        "totalSteps": 1,
        "completedSteps": 0,
        "failedSteps": 1,
    }
    assert isinstance(summary["durationMs"], int) and summary["durationMs"] >= 0


@pytest.mark.parametrize("query", [{"status": "not_found"}, {"limit": 0}, {"offset": -1}])
def test_list_refuses_bad_filters(api: API, query: dict[str, Any]) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("execution.list", query)
    assert caught.value.code == "BAD_REQUEST"


def test_executions_started_in_one_millisecond_are_listed_newest_first(make_server: Any) -> None:
    # A fresh server, so the list holds only these. Inline blueprints start in batch order (no
    # lookup to wait for); see the blueprint list's test of the same bug for the stopping rule.
    with API(make_server()) as api:
        started: list[dict[str, Any]] = []
        for _ in range(MAX_BATCHES):
            request = {"blueprint": inline(noop("a"))}
            started += api.mutate_batch("execution.executeBlueprintWithLogging", [request] * 10)
            page = api.query("execution.list", {"limit": 1000})
            if in_order_by_chance([e["startTime"] for e in page["executions"]]) < 1e-6:
                break
        else:
            pytest.skip("this machine never started two executions in one millisecond")
        listed = [e["executionId"] for e in page["executions"]]
        assert listed == [s["executionId"] for s in reversed(started)]


def test_list_active_shows_a_running_execution_and_its_node(api: API, gate: str) -> None:
    saved = api.mutate("blueprint.create", inline(noop("first"), held("second", gate, "first")))
    started = start(api, {"blueprintId": saved["blueprintId"]})
    api.wait_until(started["executionId"], lambda s: s["currentStep"] == "second")

    active = api.query("execution.listActive")
    assert active["totalActive"] == len(active["executions"])
    (entry,) = (e for e in active["executions"] if e["executionId"] == started["executionId"])
    assert entry == {
        "executionId": started["executionId"],
        "status": "running",
        "currentNodeId": "second",
        "progress": 50,
        "blueprintId": saved["blueprintId"],
        "startTime": entry["startTime"],
    }
    assert ISO_TIME.match(entry["startTime"])

    open_gate(gate)
    api.wait_final(started["executionId"])
    after = api.query("execution.listActive")["executions"]
    assert started["executionId"] not in {e["executionId"] for e in after}


def test_executions_over_the_limit_wait_queued(make_server: Any, gate: str) -> None:
    base = make_server(plugins=(__name__,), max_running_executions=1)
    with API(base) as api:
        first = start(api, {"blueprint": inline(held("hold", gate))})
        running = api.wait_until(first["executionId"], lambda s: s["currentStep"] == "hold")
        wait_past(running["startTime"])
        second = start(api, {"blueprint": inline(noop("later"))})

        assert second["status"] == "queued"
        queued = api.status(second["executionId"])
        assert (queued["status"], queued["progress"], queued["currentStep"]) == ("queued", 0, None)
        assert [s["status"] for s in queued["steps"]] == ["queued"]
        active = api.query("execution.listActive")
        assert active["totalActive"] == 2
        assert [
            (e["executionId"], e["status"], e["currentNodeId"]) for e in active["executions"]
        ] == [
            (second["executionId"], "queued", None),
            (first["executionId"], "running", "hold"),
        ]
        listed = api.query("execution.list", {"status": "queued"})["executions"]
        assert [e["executionId"] for e in listed] == [second["executionId"]]

        open_gate(gate)
        assert api.wait_final(second["executionId"])["status"] == "completed"
        assert api.wait_final(first["executionId"])["status"] == "completed"
        assert api.query("execution.listActive") == {"totalActive": 0, "executions": []}


# -- getLogs -------------------------------------------------------------------------------


def test_get_logs_pages_by_after_seq(api: API) -> None:
    started = start(api, {"blueprint": FAN_OUT_FAN_IN, "input": {"n": 1}})
    api.wait_final(started["executionId"])
    everything = all_logs(api, started["executionId"])
    last = everything[-1]["seq"]

    pages, after = [], 0
    for _ in range(len(everything)):
        page = api.query(
            "execution.getLogs",
            {"executionId": started["executionId"], "afterSeq": after, "limit": 3},
        )
        assert set(page) == {"logs", "nextSeq", "hasMore"}
        assert all(entry["seq"] > after for entry in page["logs"])
        assert page["nextSeq"] == page["logs"][-1]["seq"]
        pages.append(page["logs"])
        after = page["nextSeq"]
        if not page["hasMore"]:
            break
    else:
        pytest.fail(f"still hasMore after {len(pages)} pages")
    assert [len(logs) for logs in pages[:-1]] == [3] * (len(pages) - 1)
    assert [entry for logs in pages for entry in logs] == everything
    assert after == last
    assert api.query(
        "execution.getLogs", {"executionId": started["executionId"], "afterSeq": last}
    ) == {"logs": [], "nextSeq": last, "hasMore": False}


def test_get_logs_filters_by_minimum_level_and_node(api: API, gate: str) -> None:
    slow = held("slow", gate, timeoutMs=20, retry={"maxAttempts": 2, "backoffMs": 1})
    started = start(api, {"blueprint": inline(noop("quick"), slow), "traceLogs": True})
    api.wait_final(started["executionId"])
    everything = all_logs(api, started["executionId"])
    assert {"trace", "info", "warn", "error"} <= {entry["level"] for entry in everything}

    for level in LEVELS:
        page = api.query(
            "execution.getLogs", {"executionId": started["executionId"], "level": level}
        )
        rank = LEVELS.index(level)
        assert page["logs"] == [e for e in everything if LEVELS.index(e["level"]) >= rank], level

    page = api.query("execution.getLogs", {"executionId": started["executionId"], "nodeId": "slow"})
    assert page["logs"] == [e for e in everything if e["nodeId"] == "slow"]
    assert page["logs"]
    page = api.query(
        "execution.getLogs",
        {"executionId": started["executionId"], "nodeId": "quick", "level": "info"},
    )
    assert page["logs"] == [
        e for e in everything if e["nodeId"] == "quick" and e["level"] != "trace"
    ]
    page = api.query(
        "execution.getLogs", {"executionId": started["executionId"], "nodeId": "nobody"}
    )
    assert page == {"logs": [], "nextSeq": 0, "hasMore": False}


def test_without_trace_logs_no_trace_entries_are_written(api: API) -> None:
    started = start(api, {"blueprint": inline(noop("a"))})
    api.wait_final(started["executionId"])
    assert "trace" not in {entry["level"] for entry in all_logs(api, started["executionId"])}


def test_get_logs_of_an_unknown_execution_is_not_found(api: API) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("execution.getLogs", {"executionId": "exec_1733050800000_a3b7z"})
    assert (caught.value.code, caught.value.status) == ("NOT_FOUND", 404)


@pytest.mark.parametrize(
    "options", [{"level": "loud"}, {"afterSeq": -1}, {"limit": 0}, {"limit": 1001}]
)
def test_bad_log_options_are_bad_requests(api: API, options: dict[str, Any]) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("execution.getLogs", {"executionId": "exec_1733050800000_a3b7z", **options})
    assert caught.value.code == "BAD_REQUEST"


# -- onUpdate: resuming a stream that has ended ---------------------------------------------


def sse_events(api: API, input: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(event kind, id) of each event of an onUpdate stream, read until it ends."""
    events: list[tuple[str, str | None]] = []
    params = {"input": json.dumps({"json": input})}
    with api.http.stream("GET", "/execution.onUpdate", params=params, timeout=30) as response:
        kind, event_id, has_data = "message", None, False
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("id: "):
                event_id = line[len("id: ") :]
            elif line.startswith("data:"):
                has_data = True
            elif line == "" and has_data:
                if kind != "ping":
                    events.append((kind, event_id))
                kind, event_id, has_data = "message", None, False
            if events and events[-1][0] == "return":
                break
    return events


def test_a_stream_resumed_after_its_end_ends_at_once(api: API) -> None:
    execution_id = start(api, {"blueprint": inline(noop("only"))})["executionId"]
    api.wait_until(execution_id, lambda s: s["status"] == "completed")
    everything = sse_events(api, {"executionId": execution_id, "lastEventId": "0"})
    ids = [event_id for kind, event_id in everything if event_id is not None]
    assert everything[-1][0] == "return" and ids

    last_row = ids[-1].split(".")[0]
    for resume_from in (ids[-1], last_row, str(int(last_row) + 1000)):
        resumed = sse_events(api, {"executionId": execution_id, "lastEventId": resume_from})
        assert [kind for kind, _ in resumed] == ["connected", "return"], resume_from
    # Resumed before the last event of the row that ended it, that event still comes.
    before_last = sse_events(api, {"executionId": execution_id, "lastEventId": ids[-2]})
    assert [event_id for _, event_id in before_last if event_id] == [ids[-1]]
