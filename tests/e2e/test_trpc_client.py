"""The official @trpc/client (Node) against a real server: every HTTP link, both transformers.

Each scenario of `client/trpc-client.mjs` runs once per server and prints a JSON report: each
call's result or TRPCClientError, subscription events, and the HTTP requests the links made
(so a "batch" that went out as several requests cannot pass).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rpc.codec import Transformer
from rpc.settings import Settings
from tests import sample_router
from tests.e2e._node import CLIENT_DIR, node_command
from tests.servers import running_server

NODE_TIMEOUT = 60
TRICKY_TEXT = 'a+b c&d=%2C ü 😀\n"q"'  # the same string as in trpc-client.mjs


class NodeClient:
    """Runs scenarios against one server; each scenario runs once and its report is shared."""

    def __init__(self, base_url: str, transformer: Transformer) -> None:
        self.base_url = base_url
        self.transformer = transformer
        self._reports: dict[str, dict[str, Any]] = {}

    def run(self, scenario: str) -> dict[str, Any]:
        if scenario not in self._reports:
            self._reports[scenario] = self._run(scenario)
        return self._reports[scenario]

    def _run(self, scenario: str) -> dict[str, Any]:
        script = node_command("trpc-client.mjs")
        command = [*script, self.base_url, self.transformer.value, scenario]
        done = subprocess.run(
            command, cwd=CLIENT_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT
        )
        if done.returncode != 0:
            pytest.fail(f"{scenario} exited {done.returncode}:\n{done.stderr}")
        report: dict[str, Any] = json.loads(done.stdout)
        if report.get("timedOut"):
            pytest.fail(f"{scenario} did not finish: {report}")
        return report


def settings_for(tmp_path_factory: pytest.TempPathFactory, transformer: Transformer) -> Settings:
    db = tmp_path_factory.mktemp(f"trpc-client-{transformer}") / "blueprint.db"
    return Settings(db=str(db), transformer=transformer, sse_ping_seconds=0.2)


@pytest.fixture(scope="module")
def superjson_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    settings = settings_for(tmp_path_factory, Transformer.SUPERJSON)
    with running_server(settings, sample_router.router) as url:
        yield NodeClient(url, Transformer.SUPERJSON)


@pytest.fixture(scope="module")
def plain_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    settings = settings_for(tmp_path_factory, Transformer.NONE)
    with running_server(settings, sample_router.router) as url:
        yield NodeClient(url, Transformer.NONE)


@pytest.fixture(
    scope="module", params=["superjson_client", "plain_client"], ids=["superjson", "none"]
)
def client(request: pytest.FixtureRequest) -> NodeClient:
    """The client configured like its server: with superjson, or with no transformer."""
    node_client: NodeClient = request.getfixturevalue(request.param)
    return node_client


class Instant:
    """Equal to any ISO 8601 string naming this moment: the exact format is the server's own."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and datetime.fromisoformat(other) == self.moment

    def __repr__(self) -> str:
        return f"Instant({self.moment.isoformat()})"


GREETED_AT = Instant(datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC))


def summarize(outcome: dict[str, Any]) -> Any:
    """A result's data, or an error as (data.code, data.httpStatus, data.path)."""
    if outcome["ok"]:
        return outcome["data"]
    error = outcome["error"]
    assert error["name"] == "TRPCClientError", error
    return (error["code"], error["httpStatus"], error["path"])


def sent(report: dict[str, Any]) -> list[tuple[str, list[str], bool]]:
    """The HTTP requests the links made, as (method, paths, batch=1)."""
    return [(r["method"], r["paths"], r["batch"]) for r in report["requests"]]


# -- httpLink ------------------------------------------------------------------------------


def test_http_link_query_with_date_input(client: NodeClient) -> None:
    greeting = client.run("single")["result"][0]
    assert summarize(greeting) == {"greeting": "hi bob", "at": GREETED_AT}


def test_http_link_queries_without_input(client: NodeClient) -> None:
    outcomes = client.run("single")["result"][1:3]
    assert [summarize(outcome) for outcome in outcomes] == ["ok", "ok"]


def test_http_link_input_survives_url_encoding(client: NodeClient) -> None:
    echoed = summarize(client.run("single")["result"][3])
    assert echoed == {"text": TRICKY_TEXT, "tags": ["x,y", "%2C"], "extra": None}


def test_http_link_mutation(client: NodeClient) -> None:
    assert summarize(client.run("single")["result"][4]) == 42


def test_http_link_sends_one_request_per_call(client: NodeClient) -> None:
    assert sent(client.run("single")) == [
        ("GET", ["greet"], False),
        ("GET", ["noinput"], False),
        ("GET", ["nested.deep.noinput"], False),
        ("GET", ["echo"], False),
        ("POST", ["math.add"], False),
    ]


def test_superjson_values_are_revived_before_validation(superjson_client: NodeClient) -> None:
    # Unrevived, the bigints would come back as strings and the Map as a list of pairs.
    (outcome,) = superjson_client.run("revive")["result"]
    assert summarize(outcome)["extra"] == {
        "big": 10,
        "dotted.key": 5,
        "pairs": {"k": 1},
        "when": Instant(datetime(1970, 1, 1, tzinfo=UTC)),
    }


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, ("NOT_FOUND", 404, "no.such.path")),
        (1, ("FORBIDDEN", 403, "forbidden")),
        (2, ("CONFLICT", 409, "conflict")),
        (3, ("INTERNAL_SERVER_ERROR", 500, "boom")),
        (4, ("BAD_REQUEST", 400, "echo")),
        (5, ("BAD_REQUEST", 400, "math.add")),
    ],
    ids=["not-found", "forbidden", "conflict", "internal", "bad-query-input", "bad-mutation-input"],
)
def test_errors_arrive_as_trpc_client_errors(
    client: NodeClient, index: int, expected: tuple[str, int, str]
) -> None:
    assert summarize(client.run("errors")["result"][index]) == expected


def test_error_messages(client: NodeClient) -> None:
    messages = [outcome["error"]["message"] for outcome in client.run("errors")["result"]]
    assert messages[:4] == [
        'No procedure found on path "no.such.path"',
        "nope",
        "already done",
        "Internal server error",
    ]
    assert "tags" in messages[4]


def test_internal_error_message_does_not_leak(client: NodeClient) -> None:
    assert "kaboom" not in json.dumps(client.run("errors"))


# -- httpBatchLink and httpBatchStreamLink -------------------------------------------------

MIXED_QUERIES = [
    "sleep",  # settles last, so the JSONL lines arrive out of order
    "greet",
    "noinput",
    "forbidden",
    "no.such.path",
    "boom",
    "greet",
    "nested.deep.noinput",
]
MIXED_OUTCOMES = [
    100,
    {"greeting": "hi ann", "at": GREETED_AT},
    "ok",
    ("FORBIDDEN", 403, "forbidden"),
    ("NOT_FOUND", 404, "no.such.path"),
    ("INTERNAL_SERVER_ERROR", 500, "boom"),
    ("BAD_REQUEST", 400, "greet"),
    "ok",
]


@pytest.mark.parametrize("scenario", ["batch", "stream"])
def test_batched_queries_settle_one_by_one(client: NodeClient, scenario: str) -> None:
    outcomes = client.run(scenario)["result"]
    assert [summarize(outcome) for outcome in outcomes] == MIXED_OUTCOMES
    assert "name" in outcomes[6]["error"]["message"]
    assert "kaboom" not in outcomes[5]["error"]["message"]


def test_batch_link_sends_one_request(client: NodeClient) -> None:
    report = client.run("batch")
    assert sent(report) == [("GET", MIXED_QUERIES, True)]
    assert report["requests"][0]["status"] == 207


def test_batch_stream_link_sends_one_jsonl_request(client: NodeClient) -> None:
    (request,) = client.run("stream")["requests"]
    assert (request["method"], request["paths"], request["batch"]) == ("GET", MIXED_QUERIES, True)
    assert request["trpcAccept"] == "application/jsonl"
    assert request["status"] == 200


def test_batch_of_mutations(client: NodeClient) -> None:
    report = client.run("batch-mutations")
    assert [summarize(outcome) for outcome in report["result"]] == [
        3,
        ("CONFLICT", 409, "conflict"),
        30,
    ]
    assert sent(report) == [("POST", ["math.add", "conflict", "math.add"], True)]


# -- httpSubscriptionLink ------------------------------------------------------------------


def test_subscription_receives_tracked_ticks_then_stops(client: NodeClient) -> None:
    report = client.run("ticks")
    assert report["result"] == {
        "events": [{"id": str(n), "data": {"n": n}} for n in (1, 2, 3)],
        "started": True,
        "stopped": True,
        "completed": True,
        "error": None,
    }
    # One connection: had the stream ended without `return`, EventSource would reconnect.
    assert sent(report) == [("GET", ["ticks"], False)]


def test_subscription_resumes_after_last_event_id(client: NodeClient) -> None:
    result = client.run("ticks-resume")["result"]
    assert result["events"] == [{"id": str(n), "data": {"n": n}} for n in (3, 4, 5)]
    assert result["stopped"] is True


def test_failing_subscription_surfaces_trpc_client_error(client: NodeClient) -> None:
    report = client.run("ticks-fail")
    result = report["result"]
    assert result["events"] == [{"id": "1", "data": {"n": 1}}]
    assert result["error"] == {
        "name": "TRPCClientError",
        "message": "ticks failed after 1",
        "code": "CONFLICT",
        "httpStatus": 409,
        "path": "ticks",
    }
    assert result["stopped"] is False
    # CONFLICT is not retryable: the client must not reconnect.
    assert sent(report) == [("GET", ["ticks"], False)]


def test_untracked_subscription_without_input(client: NodeClient) -> None:
    report = client.run("forever")
    assert report["result"]["events"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert report["result"]["started"] is True
    assert sent(report) == [("GET", ["forever"], False)]


def test_subscription_with_invalid_input_fails_once(client: NodeClient) -> None:
    report = client.run("ticks-invalid")
    error = report["result"]["error"]
    assert (error["code"], error["httpStatus"], error["path"]) == ("BAD_REQUEST", 400, "ticks")
    assert "count" in error["message"]
    assert report["result"]["events"] == []
    assert sent(report) == [("GET", ["ticks"], False)]
