"""Commands that race, fired at once from the official @trpc/client.

`client/races.mjs` sends them through httpLink (one HTTP request per call, so the server
really handles them concurrently) and once through httpBatchLink (one request carrying both).
Whatever order the server applies them in, each gets a definite answer (`success: false` with
a message, or an error code where the answer has no `success`) and the execution ends up
consistent and not stuck. No test depends on which racer wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rpc.settings import Settings
from tests.e2e._node import Scenarios
from tests.servers import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def races(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    db = tmp_path_factory.mktemp("client-races") / "blueprint.db"
    with running_server(Settings(db=str(db))) as url:
        yield Scenarios("races.mjs", url)


def answers_of(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers, each checked to be a definite one (not an error, and with a message)."""
    for outcome in outcomes:
        assert outcome["ok"] is True, outcome
        assert isinstance(outcome["data"]["message"], str) and outcome["data"]["message"]
    return [outcome["data"] for outcome in outcomes]


def one_wins(answers: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    winners = [answer for answer in answers if answer["success"]]
    assert len(winners) == 1, answers
    return winners[0], [answer for answer in answers if not answer["success"]]


def separate_requests(report: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [r for r in report["requests"] if path in r["paths"]]


@pytest.mark.parametrize("scenario", ["two-continues", "two-continues-batched"])
def test_two_continues_at_once_one_continues_the_other_is_refused(
    races: Scenarios, scenario: str
) -> None:
    result = races.result(scenario)
    _, [loser] = one_wins(answers_of(result["answers"]))
    # Refused because the winner already continued it (and it may already have ended).
    assert any(word in loser["message"] for word in ("not paused", "already")), loser
    assert result["final"]["status"] == "completed"
    assert result["holdAttempts"] == 1  # the pause node finished once


def test_two_continues_went_as_two_requests_or_as_one_batch(races: Scenarios) -> None:
    apart = separate_requests(races.run("two-continues"), "execution.continue")
    assert [(r["method"], r["paths"], r["batch"]) for r in apart] == [
        ("POST", ["execution.continue"], False),
        ("POST", ["execution.continue"], False),
    ]
    together = separate_requests(races.run("two-continues-batched"), "execution.continue")
    assert [(r["method"], r["paths"], r["batch"], r["status"]) for r in together] == [
        ("POST", ["execution.continue", "execution.continue"], True, 200)
    ]


def test_stop_and_continue_at_once_end_cancelled(races: Scenarios) -> None:
    result = races.result("stop-and-continue")
    stopped, continued = answers_of([result["stopped"], result["continued"]])
    assert stopped["success"] is True  # running or paused, a stop always applies
    if not continued["success"]:
        assert "cancelled" in continued["message"], continued
    after = result["after"]
    assert (after["status"], after["steps"]) == (
        "cancelled",
        {"hold": "cancelled", "wait": "cancelled"},
    )
    assert result["active"]["totalActive"] == 0


def test_two_pauses_at_once_one_pauses(races: Scenarios) -> None:
    result = races.result("two-pauses")
    _, [loser] = one_wins(answers_of(result["answers"]))
    assert "paused" in loser["message"]
    assert (result["after"]["status"], result["after"]["pauseReason"]) == ("paused", "manual")
    assert result["stopped"]["success"] is True
    assert result["final"]["status"] == "cancelled"


def test_a_stop_racing_the_last_step_either_cancels_or_finds_it_completed(
    races: Scenarios,
) -> None:
    for trial in races.result("stop-while-finishing")["trials"]:
        [answer] = answers_of([trial["answer"]])
        after, step = trial["after"], trial["afterStep"]
        if answer["success"]:
            # Applied first: the step was cancelled and its attempt says so.
            assert (after["status"], step["status"]) == ("cancelled", "cancelled"), trial
            assert step["attempts"][-1]["error"]["code"] == "CANCELLED", trial
            assert after["finalOutputs"] == []
        else:
            # The step won: completed, and the stop changed nothing.
            assert "completed" in answer["message"], trial
            assert (after["status"], step["status"]) == ("completed", "succeeded"), trial
            assert after["finalOutputs"][0]["output"] == {"sleptMs": 250}
        assert trial["final"] == after, trial  # what the stop left is where it stays
        assert after["endTime"] is not None


def test_input_to_an_execution_not_waiting_for_it_is_refused(races: Scenarios) -> None:
    result = races.result("input-not-waiting")
    to_running, to_held, to_other_node, to_done = answers_of(
        [result["toRunning"], result["toHeld"], result["toOtherNode"], result["toDone"]]
    )
    assert [a["success"] for a in (to_running, to_held, to_other_node, to_done)] == [False] * 4
    assert "running" in to_running["message"]
    assert "not waiting for input" in to_held["message"]
    assert "'ask'" in to_other_node["message"] and "'other'" in to_other_node["message"]
    assert "completed" in to_done["message"]
    # Nothing changed: each is as it was before the refused input.
    assert result["after"] == result["before"]


def test_concurrent_inputs_exactly_one_is_accepted(races: Scenarios) -> None:
    result = races.result("concurrent-inputs")
    valid, invalid = result["answers"][:3], result["answers"][3]
    winner, losers = one_wins(answers_of(valid))
    assert len(losers) == 2
    accepted = result["data"][[o["data"] for o in valid].index(winner)]
    final = result["final"]
    assert final["status"] == "completed"
    assert final["finalOutputs"][0]["output"] == accepted
    # The invalid one is rejected for its data, or refused because the node was answered.
    if invalid["ok"]:
        assert invalid["data"]["success"] is False, invalid
    else:
        assert invalid["error"]["code"] == "BAD_REQUEST", invalid


def test_commands_that_do_not_fit_the_state_are_refused_and_change_nothing(
    races: Scenarios,
) -> None:
    result = races.result("refusals")
    refusals = ["stopDone", "pauseDone", "continueDone", "skipDone"]
    for name in refusals:
        [answer] = answers_of([result[name]])
        assert answer["success"] is False and "completed" in answer["message"], (name, answer)
    for name in ["skipRunning", "unbreakRunning", "skipHeld", "unbreakHeld"]:
        [answer] = answers_of([result[name]])
        assert answer["success"] is False, (name, answer)
        assert "not paused at a breakpoint" in answer["message"], (name, answer)
    [continue_running, pause_held] = answers_of([result["continueRunning"], result["pauseHeld"]])
    assert continue_running["success"] is False and "running" in continue_running["message"]
    assert pause_held["success"] is False and "paused" in pause_held["message"]
    after = result["after"]
    assert after["done"] == result["doneBefore"]
    assert (after["running"]["status"], after["running"]["steps"]) == (
        "running",
        {"wait": "running"},
    )
    held = after["held"]
    assert (held["status"], held["pauseReason"], held["steps"]["hold"]) == (
        "paused",
        "wait-pause",
        "waiting",
    )


def test_the_same_key_at_once_starts_one_execution(races: Scenarios) -> None:
    result = races.result("same-key")
    same = result["same"]
    assert all(outcome["ok"] for outcome in same), same
    assert len({outcome["data"]["executionId"] for outcome in same}) == 1
    different = result["different"]
    assert sorted(outcome["ok"] for outcome in different) == [False, True], different
    [refused] = [outcome for outcome in different if not outcome["ok"]]
    assert refused["error"]["code"] == "CONFLICT"
    assert result["listed"]["total"] == 2  # one per key, however many asked
