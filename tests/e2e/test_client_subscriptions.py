"""execution.onUpdate and batch.onUpdate through the official httpSubscriptionLink (SSE).

`client/subscriptions.mjs` subscribes to an execution paused on a pause node, continues it once
the first event arrives, and collects every event until the server ends the stream; then it
subscribes again from an event id in the middle (`lastEventId`, as the link sends it when it
reconnects), from the start of the log, and after the end. Each data event reaches the client
as the link hands over tracked events: `{id, data}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rpc.settings import Settings
from tests.e2e._node import Scenarios
from tests.servers import running_server

pytestmark = pytest.mark.slow

EXECUTION_EVENTS = {"execution-update", "node-execution", "log"}


@pytest.fixture(scope="module")
def updates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    db = tmp_path_factory.mktemp("client-subscriptions") / "blueprint.db"
    with running_server(Settings(db=str(db), sse_ping_seconds=0.5)) as url:
        yield Scenarios("subscriptions.mjs", url)


def position(event_id: str) -> tuple[int, int]:
    whole, _, part = event_id.partition(".")
    return int(whole), int(part)


def ids(report: dict[str, Any]) -> list[str]:
    return [event["id"] for event in report["events"]]


def in_order_once(report: dict[str, Any]) -> None:
    positions = [position(event_id) for event_id in ids(report)]
    assert positions == sorted(set(positions)), ids(report)


def ended_by_the_server(report: dict[str, Any]) -> None:
    assert report["error"] is None, report["error"]
    assert (report["started"], report["ended"], report["completed"]) == (True, True, True), {
        key: value for key, value in report.items() if key != "events"
    }


def unchanging(event: dict[str, Any]) -> Any:
    """What a replay must repeat exactly: node and log events are facts of the log; an update
    carries the state when it is sent, so only its kind and execution are fixed."""
    data = event["data"]
    if data["type"] == "execution-update":
        return (event["id"], data["type"], data["executionId"])
    return (event["id"], data)


# execution.onUpdate


def test_execution_updates_run_from_a_snapshot_to_the_final_state(updates: Scenarios) -> None:
    result = updates.result("execution")
    live = result["live"]
    ended_by_the_server(live)
    assert result["continued"]["success"] is True
    events = [event["data"] for event in live["events"]]
    assert {event["type"] for event in events} <= EXECUTION_EVENTS
    assert {event["executionId"] for event in events} == {result["id"]}
    first, last = events[0], events[-1]
    assert (first["type"], first["status"], first["pauseReason"]) == (
        "execution-update",
        "paused",
        "wait-pause",
    )
    assert (last["type"], last["status"], last["progress"]) == (
        "execution-update",
        "completed",
        100,
    )
    in_order_once(live)


def test_execution_updates_carry_each_node_transition_and_log_line(updates: Scenarios) -> None:
    events = [event["data"] for event in updates.result("execution")["live"]["events"]]
    transitions = [
        (e["nodeId"], e["nodeType"], e["status"]) for e in events if e["type"] == "node-execution"
    ]
    assert transitions == [
        ("hold", "pause", "succeeded"),
        ("slow", "delay", "running"),
        ("slow", "delay", "succeeded"),
        ("done", "transform", "running"),
        ("done", "transform", "succeeded"),
    ]
    messages = [e["message"] for e in events if e["type"] == "log"]
    assert messages[0] == "Continued"
    assert messages[-1].startswith("Execution completed")
    assert all(isinstance(e["seq"], int) for e in events if e["type"] == "log")


def test_resuming_from_an_event_id_delivers_only_what_came_after(updates: Scenarios) -> None:
    result = updates.result("execution")
    live, resumed = result["live"], result["resumed"]
    ended_by_the_server(resumed)
    middle = result["middle"]
    assert result["resumeFrom"] == live["events"][middle]["id"]
    expected = live["events"][middle + 1 :]
    assert expected, live["events"]
    assert [unchanging(e) for e in resumed["events"]] == [unchanging(e) for e in expected]


def test_replaying_from_the_start_delivers_the_whole_log_once(updates: Scenarios) -> None:
    result = updates.result("execution")
    live, replayed = result["live"], result["replayed"]
    ended_by_the_server(replayed)
    in_order_once(replayed)
    messages = [e["data"]["message"] for e in replayed["events"] if e["data"]["type"] == "log"]
    assert messages[0].startswith("Execution queued")
    # After the live stream's snapshot, the replay is exactly what the live stream saw.
    snapshot = position(live["events"][0]["id"])
    later = [e for e in replayed["events"] if position(e["id"]) > snapshot]
    assert [unchanging(e) for e in later] == [unchanging(e) for e in live["events"][1:]]


def test_a_subscription_after_the_end_gets_the_final_state_and_ends(updates: Scenarios) -> None:
    after_end = updates.result("execution")["afterEnd"]
    ended_by_the_server(after_end)
    [event] = after_end["events"]
    assert (event["data"]["type"], event["data"]["status"]) == ("execution-update", "completed")


def test_subscription_errors_reach_the_client(updates: Scenarios) -> None:
    result = updates.result("execution")
    unknown, bad_id = result["unknown"], result["badId"]
    assert (unknown["error"]["code"], unknown["error"]["path"]) == (
        "NOT_FOUND",
        "execution.onUpdate",
    )
    assert bad_id["error"]["code"] == "BAD_REQUEST"
    assert unknown["events"] == [] and bad_id["events"] == []


def test_updates_of_every_execution_continue_until_the_client_leaves(updates: Scenarios) -> None:
    result = updates.result("everything")
    report = result["report"]
    assert report["error"] is None
    assert report["ended"] is False  # the server never ends it: the client left
    mine = [e["data"] for e in report["events"] if e["data"]["executionId"] == result["started"]]
    assert mine[-1]["status"] == "completed"
    in_order_once(report)


# batch.onUpdate


def test_batch_updates_run_from_a_snapshot_to_the_batch_end(updates: Scenarios) -> None:
    result = updates.result("batch")
    live = result["live"]
    ended_by_the_server(live)
    events = [event["data"] for event in live["events"]]
    assert {(e["type"], e["batchId"]) for e in events} == {("batch-update", result["batchId"])}
    first, last = events[0], events[-1]
    assert (first["status"], first["totalWorkflows"], first["running"]) == ("running", 2, 2)
    assert (last["status"], last["completed"], last["running"], last["queued"]) == (
        "completed",
        2,
        0,
        0,
    )
    assert {e["executionId"] for e in events[1:]} <= set(result["ids"])
    in_order_once(live)


def changing_rows(replay: dict[str, Any]) -> list[int]:
    """The log rows that changed an execution: each is followed by an execution-update."""
    return [
        position(event["id"])[0]
        for event in replay["events"]
        if event["data"]["type"] == "execution-update"
    ]


def test_resuming_batch_updates_delivers_every_later_update(updates: Scenarios) -> None:
    result = updates.result("batch")
    after = position(result["resumeFrom"])[0]
    assert result["resumeFrom"] == result["live"]["events"][0]["id"]
    rows = sorted(row for replay in result["replays"] for row in changing_rows(replay))
    expected = [f"{row}.4" for row in rows if row > after]
    assert len(expected) >= 2, result["replays"]  # both executions changed after the snapshot
    assert ids(result["resumed"]) == expected
    ended_by_the_server(result["resumed"])


def test_a_batch_subscription_after_the_end_gets_the_final_state(updates: Scenarios) -> None:
    result = updates.result("batch")
    after_end = result["afterEnd"]
    ended_by_the_server(after_end)
    [event] = after_end["events"]
    assert (event["data"]["status"], event["data"]["completed"]) == ("completed", 2)
    assert result["unknown"]["error"]["code"] == "NOT_FOUND"
