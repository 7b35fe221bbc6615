"""blueprint.* over a real server: the catalogue, its versions, validation and running one.

Every call goes over HTTP with the superjson envelope, as @trpc/client's httpLink sends it.
Tests share one server; each names its blueprints with its own token and searches by it.
The client helpers here (`API`, `TRPCError`) serve test_procedures_execution.py as well.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from rpc.settings import Settings
from tests.servers import running_server

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
BLUEPRINT_ID = re.compile(r"^bp_[0-9]{1,16}_[0-9a-z]{5}$")
FINAL = {"completed", "failed", "cancelled"}
BUILTIN_TYPES = {
    "assert",
    "condition",
    "delay",
    "http",
    "input",
    "noop",
    "pause",
    "python",
    "transform",
}


class TRPCError(Exception):
    """An error envelope as the server sent it."""

    def __init__(self, status: int, shape: dict[str, Any]) -> None:
        super().__init__(shape["message"])
        self.status = status
        self.shape = shape
        self.code: str = shape["data"]["code"]
        self.problems: list[dict[str, Any]] | None = shape["data"].get("problems")


class API:
    """Procedures called by path over HTTP, with the superjson envelope."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/api/trpc", timeout=30)

    def __enter__(self) -> API:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def query(self, path: str, input: Any = None) -> Any:
        params = {} if input is None else {"input": json.dumps({"json": input})}
        return unwrap(self.http.get(f"/{path}", params=params))

    def mutate(self, path: str, input: Any = None) -> Any:
        return unwrap(self.http.post(f"/{path}", json={"json": input}))

    def mutate_batch(self, path: str, inputs: list[Any]) -> list[Any]:
        """One POST batch of `path` calls; every call must succeed."""
        response = self.http.post(
            "/" + ",".join([path] * len(inputs)),
            params={"batch": "1"},
            json={str(i): {"json": value} for i, value in enumerate(inputs)},
        )
        items = response.json()
        assert response.status_code == 200, items
        return [item["result"]["data"]["json"] for item in items]

    def status(self, execution_id: str, **options: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.query(
            "execution.getExecutionStatus", {"executionId": execution_id, **options}
        )
        return found

    def wait_until(
        self,
        execution_id: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float = 20,
        **options: Any,
    ) -> dict[str, Any]:
        """Poll the status until `done(status)`; fail at the deadline with the last one seen."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(execution_id, **options)
            if done(status):
                return status
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting on {execution_id}: {status}")
            time.sleep(0.01)

    def wait_final(self, execution_id: str, **options: Any) -> dict[str, Any]:
        return self.wait_until(execution_id, lambda s: s["status"] in FINAL, **options)


def unwrap(response: httpx.Response) -> Any:
    body = response.json()
    if "error" in body:
        raise TRPCError(response.status_code, body["error"]["json"])
    assert response.status_code == 200, body
    return body["result"]["data"]["json"]


def wait_past(iso: str) -> None:
    """Until the clock is at least 2 ms past `iso`, so the next record is strictly newer."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    while time.time() < moment + 0.002:
        time.sleep(0.001)


def create_in_order(api: API, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create one by one, each in a later millisecond than the one before, so "newest first"
    has one answer (same-millisecond ties are the subject of their own test)."""
    created: list[dict[str, Any]] = []
    for document in documents:
        if created:
            wait_past(created[-1]["createdAt"])
        created.append(api.mutate("blueprint.create", document))
    return created


MAX_BATCHES = 30


def in_order_by_chance(times: list[str]) -> float:
    """How likely records made at these times come out in creation order when ties (the same
    millisecond) are broken at random."""
    chance = 1.0
    for count in Counter(times).values():
        chance /= math.factorial(count)
    return chance


def noop(node_id: str, *depends_on: str) -> dict[str, Any]:
    return {"id": node_id, "type": "noop", "dependsOn": list(depends_on)}


def ids(page: dict[str, Any]) -> list[str]:
    return [summary["blueprintId"] for summary in page["blueprints"]]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[API]:
    db = tmp_path_factory.mktemp("procedures-blueprint") / "blueprint.db"
    with running_server(Settings(db=str(db))) as url, API(url) as client:
        yield client


@pytest.fixture
def token() -> str:
    """A name part no other test uses, to find this test's blueprints with `search`."""
    return uuid.uuid4().hex[:12]


# -- create and get ------------------------------------------------------------------------


def test_create_returns_the_id_version_1_name_and_time(api: API, token: str) -> None:
    saved = api.mutate("blueprint.create", {"name": f"Nightly {token}", "nodes": [noop("a")]})
    assert BLUEPRINT_ID.match(saved["blueprintId"])
    assert saved["version"] == 1
    assert saved["name"] == f"Nightly {token}"
    assert ISO_TIME.match(saved["createdAt"])


def test_get_returns_the_document_with_its_id_version_and_times(api: API, token: str) -> None:
    document = {
        "name": f"Report {token}",
        "description": "counts things",
        "nodes": [
            {"id": "wait", "type": "delay", "config": {"ms": 5}, "retry": {"maxAttempts": 2}},
            {
                "id": "count",
                "type": "transform",
                "dependsOn": ["wait"],
                "config": {"expression": "input"},
            },
        ],
    }
    saved = api.mutate("blueprint.create", document)
    got = api.query("blueprint.get", {"blueprintId": saved["blueprintId"]})
    assert got == {
        **document,
        "blueprintId": saved["blueprintId"],
        "version": 1,
        "createdAt": saved["createdAt"],
        "updatedAt": got["updatedAt"],
    }
    assert ISO_TIME.match(got["updatedAt"])


def test_get_of_an_unknown_blueprint_is_not_found(api: API) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("blueprint.get", {"blueprintId": "bp_1733050800000_zzzzz"})
    assert (caught.value.code, caught.value.status) == ("NOT_FOUND", 404)


@pytest.mark.parametrize("blueprint_id", ["nope", "bp_", "exec_1733050800000_a3b7z", ""])
def test_a_malformed_blueprint_id_is_a_bad_request(api: API, blueprint_id: str) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("blueprint.get", {"blueprintId": blueprint_id})
    assert caught.value.code == "BAD_REQUEST"
    assert "blueprintId" in str(caught.value)


# -- validation ----------------------------------------------------------------------------

ANY_NODE = object()  # a problem whose nodeId may be any node it names (a cycle's start)

INVALID = [
    pytest.param(
        {"name": " ", "nodes": [noop("a")]}, [(None, "name", "non-empty")], id="blank-name"
    ),
    pytest.param({"name": "x", "nodes": []}, [(None, "nodes", "non-empty")], id="no-nodes"),
    pytest.param(
        {"name": "x", "nodes": [noop("a")], "owner": "me"},
        [(None, "owner", "unknown field")],
        id="unknown-field",
    ),
    pytest.param(
        {"name": "x", "nodes": [{"id": "a b", "type": "noop"}]},
        [("a b", "id", "letters, digits")],
        id="bad-id",
    ),
    pytest.param(
        {"name": "x", "nodes": [noop("a"), noop("a")]}, [("a", "id", "duplicate")], id="dup-id"
    ),
    pytest.param(
        {"name": "x", "nodes": [{"id": "a", "type": "teleport"}]},
        [("a", "type", "teleport")],
        id="unknown-type",
    ),
    pytest.param(
        {"name": "x", "nodes": [{"id": "a", "type": "delay", "config": {"ms": "soon"}}]},
        [("a", "config.ms", "int")],
        id="bad-config",
    ),
    pytest.param(
        {"name": "x", "nodes": [noop("a", "ghost")]},
        [("a", "dependsOn", "ghost")],
        id="unknown-dependency",
    ),
    pytest.param(
        {"name": "x", "nodes": [noop("a", "b"), noop("b", "a")]},
        [(ANY_NODE, "dependsOn", "cycle")],
        id="cycle",
    ),
    pytest.param(
        {
            "name": "x",
            "nodes": [
                {"id": "c", "type": "condition", "config": {"expression": "input", "then": ["x"]}},
                noop("x"),
            ],
        },
        [("c", "config.then", "direct dependant")],
        id="branch-not-a-dependant",
    ),
    pytest.param(
        {"name": "x", "nodes": [noop("a"), noop("b", "a", "a")]},
        [("b", "dependsOn", "twice")],
        id="dependency-twice",
    ),
    pytest.param(
        {"name": "x", "nodes": [{"id": "a", "type": "transform", "config": {"expression": "a["}}]},
        [("a", "config", "invalid expression")],
        id="bad-expression",
    ),
    pytest.param(
        {
            "name": "x",
            "nodes": [{"id": "a", "type": "transform", "config": {"template": "{{ [ }}"}}],
        },
        [("a", "config", "invalid expression")],
        id="bad-template",
    ),
    pytest.param(
        {"name": "x", "nodes": [{"id": "a", "type": "python", "config": {"function": "nope"}}]},
        [("a", "config.function", "unknown python function")],
        id="unknown-python-function",
    ),
    pytest.param(
        {"name": "x", "nodes": [{**noop("a"), "colour": "red"}]},
        [("a", "colour", "unknown field")],
        id="unknown-node-field",
    ),
    pytest.param({"name": "x", "nodes": [5]}, [(None, "nodes[0]", "object")], id="not-a-node"),
    pytest.param(
        {"name": "x", "nodes": [{"type": "noop"}]}, [(None, "nodes[0].id", "id")], id="no-id"
    ),
]

INVALID_BY_ID = {case.id: case.values for case in INVALID}


def assert_problems(problems: Any, expected: list[tuple[Any, str, str]]) -> None:
    """`problems` are exactly the expected ones, in any order, each {nodeId, field, message}."""
    assert isinstance(problems, list), problems
    assert all(set(p) == {"nodeId", "field", "message"} for p in problems), problems
    assert len(problems) == len(expected), problems
    unmatched = list(problems)
    for node_id, field, words in expected:
        match = next(
            (
                p
                for p in unmatched
                if (node_id is ANY_NODE or p["nodeId"] == node_id)
                and p["field"] == field
                and words in p["message"]
            ),
            None,
        )
        assert match is not None, f"no problem ({node_id}, {field}, ~{words!r}) in {problems}"
        unmatched.remove(match)


@pytest.mark.parametrize(("document", "expected"), INVALID)
def test_an_invalid_blueprint_is_a_bad_request_with_its_problems(
    api: API, document: dict[str, Any], expected: list[tuple[Any, str, str]]
) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.create", document)
    error = caught.value
    assert (error.status, error.shape["code"], error.code) == (400, -32600, "BAD_REQUEST")
    assert error.shape["data"]["path"] == "blueprint.create"
    assert error.shape["message"].startswith("Invalid blueprint")
    assert_problems(error.problems, expected)


@pytest.mark.parametrize(("document", "expected"), INVALID)
def test_validate_answers_the_same_problems_without_an_error(
    api: API, document: dict[str, Any], expected: list[tuple[Any, str, str]]
) -> None:
    answer = api.mutate("blueprint.validate", document)
    assert set(answer) == {"valid", "problems"}
    assert answer["valid"] is False
    assert_problems(answer["problems"], expected)


def test_every_problem_is_listed_not_just_the_first(api: API, token: str) -> None:
    document = {
        "name": token,
        "nodes": [
            noop("a"),
            noop("a"),
            {"id": "b", "type": "teleport"},
            {"id": "c", "type": "delay", "config": {"ms": "soon"}},
            {"id": "d", "type": "transform", "config": {}},
            noop("e", "ghost"),
        ],
    }
    expected = [
        ("a", "id", "duplicate"),
        ("b", "type", "teleport"),
        ("c", "config.ms", "int"),
        ("d", "config", "exactly one"),
        ("e", "dependsOn", "ghost"),
    ]
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.create", document)
    assert caught.value.code == "BAD_REQUEST"
    assert "5 problems" in str(caught.value)
    assert_problems(caught.value.problems, expected)
    assert_problems(api.mutate("blueprint.validate", document)["problems"], expected)
    assert api.query("blueprint.list", {"search": token})["total"] == 0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            {"name": "", "nodes": [{"id": "a", "type": "teleport"}]},
            [(None, "name", "non-empty"), ("a", "type", "teleport")],
            id="document-and-node-problems",
        ),
        pytest.param(
            {"name": "x", "nodes": [noop("a", "ghost"), noop("b", "c"), noop("c", "b")]},
            [("a", "dependsOn", "ghost"), (ANY_NODE, "dependsOn", "cycle")],
            id="unknown-dependency-and-a-cycle",
        ),
        pytest.param(
            {
                "name": "x",
                "nodes": [{"id": "a", "type": "noop", "timeoutMs": 0, "retry": {"maxAttempts": 0}}],
            },
            [("a", "timeoutMs", "positive"), ("a", "retry", "maxAttempts")],
            id="two-faults-of-one-node",
        ),
    ],
)
def test_one_problem_never_hides_another(
    api: API, document: dict[str, Any], expected: list[tuple[Any, str, str]]
) -> None:
    assert_problems(api.mutate("blueprint.validate", document)["problems"], expected)
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.create", document)
    assert_problems(caught.value.problems, expected)


@pytest.mark.parametrize("document", [[noop("a")], "a blueprint", 42, None, {}])
def test_validate_never_errors_even_for_what_is_not_a_blueprint(api: API, document: Any) -> None:
    answer = api.mutate("blueprint.validate", document)
    assert answer["valid"] is False
    assert answer["problems"]
    assert all(set(p) == {"nodeId", "field", "message"} for p in answer["problems"])


def test_validate_accepts_a_valid_document_and_saves_nothing(api: API, token: str) -> None:
    document = {"name": token, "description": "ok", "nodes": [noop("a"), noop("b", "a")]}
    assert api.mutate("blueprint.validate", document) == {"valid": True, "problems": []}
    assert api.query("blueprint.list", {"search": token})["total"] == 0


def test_the_node_limit_is_a_problem(make_server: Any) -> None:
    with API(make_server(max_nodes=3)) as small:
        nodes = [noop(node_id) for node_id in "abcd"]
        assert small.mutate("blueprint.create", {"name": "x", "nodes": nodes[:3]})["version"] == 1
        with pytest.raises(TRPCError) as caught:
            small.mutate("blueprint.create", {"name": "x", "nodes": nodes})
        assert caught.value.code == "BAD_REQUEST"
        assert_problems(caught.value.problems, [(None, "nodes", "limit is 3")])


def test_create_refuses_a_document_that_is_not_an_object(api: API) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.create", [noop("a")])
    assert caught.value.code == "BAD_REQUEST"


# -- versions ------------------------------------------------------------------------------


def test_update_makes_version_2_and_version_1_stays_readable(api: API, token: str) -> None:
    first = {"name": f"v1 {token}", "description": "first", "nodes": [noop("a")]}
    saved = api.mutate("blueprint.create", first)
    blueprint_id = saved["blueprintId"]
    second = {"name": f"v2 {token}", "description": "second", "nodes": [noop("a"), noop("b", "a")]}

    updated = api.mutate("blueprint.update", {"blueprintId": blueprint_id, **second})

    assert (updated["blueprintId"], updated["version"]) == (blueprint_id, 2)
    assert updated["createdAt"] == saved["createdAt"] <= updated["updatedAt"]
    newest = api.query("blueprint.get", {"blueprintId": blueprint_id})
    assert {k: newest[k] for k in ("name", "description", "nodes", "version")} == {
        **second,
        "version": 2,
    }
    old = api.query("blueprint.get", {"blueprintId": blueprint_id, "version": 1})
    assert {k: old[k] for k in ("name", "description", "nodes", "version")} == {
        **first,
        "version": 1,
    }
    assert old["blueprintId"] == blueprint_id
    assert old["createdAt"] == saved["createdAt"]
    (summary,) = api.query("blueprint.list", {"search": token})["blueprints"]
    assert (summary["version"], summary["nodeCount"], summary["name"]) == (2, 2, f"v2 {token}")
    with pytest.raises(TRPCError) as caught:
        api.query("blueprint.get", {"blueprintId": blueprint_id, "version": 3})
    assert caught.value.code == "NOT_FOUND"


def test_an_invalid_update_changes_nothing(api: API, token: str) -> None:
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("a")]})
    invalid = {"blueprintId": saved["blueprintId"], "name": token, "nodes": [noop("a", "a")]}
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.update", invalid)
    assert caught.value.code == "BAD_REQUEST"
    assert_problems(caught.value.problems, [("a", "dependsOn", "cycle")])
    assert api.query("blueprint.get", {"blueprintId": saved["blueprintId"]})["version"] == 1


@pytest.mark.parametrize("case", ["unknown-type", "blank-name", "cycle"])
def test_update_lists_problems_as_create_does(api: API, token: str, case: str) -> None:
    document, expected = INVALID_BY_ID[case]
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("a")]})
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.update", {"blueprintId": saved["blueprintId"], **document})
    assert caught.value.code == "BAD_REQUEST"
    assert_problems(caught.value.problems, expected)


def test_update_refuses_an_unknown_field_by_name(api: API, token: str) -> None:
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("a")]})
    update = {"blueprintId": saved["blueprintId"], "name": token, "nodes": [noop("a")], "owner": 1}
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.update", update)
    assert caught.value.code == "BAD_REQUEST"
    assert "owner" in str(caught.value)


def test_update_of_an_unknown_blueprint_is_not_found(api: API) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate(
            "blueprint.update",
            {"blueprintId": "bp_1733050800000_zzzzz", "name": "x", "nodes": [noop("a")]},
        )
    assert caught.value.code == "NOT_FOUND"


# -- list ----------------------------------------------------------------------------------


def test_list_is_newest_first_with_total_limit_and_offset(api: API, token: str) -> None:
    created = create_in_order(
        api, [{"name": f"{token} {n}", "nodes": [noop("a")]} for n in range(3)]
    )
    newest_first = [saved["blueprintId"] for saved in reversed(created)]

    page = api.query("blueprint.list", {"search": token})
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert ids(page) == newest_first

    page = api.query("blueprint.list", {"search": token, "limit": 2, "offset": 1})
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert ids(page) == newest_first[1:]
    assert ids(api.query("blueprint.list", {"search": token, "offset": 3})) == []


def test_list_summaries(api: API, token: str) -> None:
    saved = api.mutate(
        "blueprint.create",
        {"name": token, "description": "three", "nodes": [noop("a"), noop("b"), noop("c")]},
    )
    (summary,) = api.query("blueprint.list", {"search": token})["blueprints"]
    assert summary == {
        "blueprintId": saved["blueprintId"],
        "name": token,
        "description": "three",
        "version": 1,
        "nodeCount": 3,
        "createdAt": saved["createdAt"],
        "updatedAt": summary["updatedAt"],
    }


def test_list_search_ignores_case_in_name_and_description(api: API, token: str) -> None:
    created = create_in_order(
        api,
        [
            {"name": f"Alpha {token.upper()}", "nodes": [noop("a")]},
            {"name": "Beta", "description": f"about {token}-ZETA", "nodes": [noop("a")]},
            {"name": f"Gamma {token} 100% done", "nodes": [noop("a")]},
            {"name": f"Delta {token} 1000 done", "nodes": [noop("a")]},
        ],
    )
    alpha, beta, gamma, delta = (saved["blueprintId"] for saved in created)

    assert ids(api.query("blueprint.list", {"search": token.upper()})) == [
        delta,
        gamma,
        beta,
        alpha,
    ]
    assert ids(api.query("blueprint.list", {"search": f"{token}-zeta"})) == [beta]
    assert ids(api.query("blueprint.list", {"search": f"{token} 10"})) == [delta, gamma]
    # % and _ are plain characters, not LIKE wildcards.
    assert ids(api.query("blueprint.list", {"search": f"{token} 100%"})) == [gamma]
    assert ids(api.query("blueprint.list", {"search": f"{token}_"})) == []


def test_blueprints_created_in_one_millisecond_are_listed_newest_first(
    api: API, token: str
) -> None:
    # Creates in one batch share a write transaction, so several land in one millisecond. Ties
    # were once broken by the random end of the id: batches go on until such a tie-break could
    # pass by chance less than once in a million.
    created: list[dict[str, Any]] = []
    for _ in range(MAX_BATCHES):
        documents = [
            {"name": f"{token} {len(created) + n}", "nodes": [noop("a")]} for n in range(10)
        ]
        batch = api.mutate_batch("blueprint.create", documents)
        created += batch
        if in_order_by_chance([saved["createdAt"] for saved in created]) < 1e-6:
            break
    else:
        pytest.skip("this machine never created two blueprints in one millisecond")
    listed = ids(api.query("blueprint.list", {"search": token, "limit": 1000}))
    assert listed == [saved["blueprintId"] for saved in reversed(created)]


@pytest.mark.parametrize("paging", [{"limit": 0}, {"limit": 1001}, {"offset": -1}])
def test_list_refuses_bad_paging(api: API, paging: dict[str, int]) -> None:
    with pytest.raises(TRPCError) as caught:
        api.query("blueprint.list", paging)
    assert caught.value.code == "BAD_REQUEST"


# -- delete --------------------------------------------------------------------------------


def test_delete_then_get_is_not_found(api: API, token: str) -> None:
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("a")]})
    blueprint_id = saved["blueprintId"]
    api.mutate(
        "blueprint.update", {"blueprintId": blueprint_id, "name": token, "nodes": [noop("b")]}
    )

    assert api.mutate("blueprint.delete", {"blueprintId": blueprint_id}) == {
        "success": True,
        "blueprintId": blueprint_id,
    }

    for version in (None, 1, 2):
        wanted = (
            {"blueprintId": blueprint_id}
            if version is None
            else {"blueprintId": blueprint_id, "version": version}
        )
        with pytest.raises(TRPCError) as caught:
            api.query("blueprint.get", wanted)
        assert caught.value.code == "NOT_FOUND"
    assert api.query("blueprint.list", {"search": token})["total"] == 0
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.delete", {"blueprintId": blueprint_id})
    assert caught.value.code == "NOT_FOUND"


def test_a_past_execution_is_still_readable_after_its_blueprint_is_deleted(
    api: API, token: str
) -> None:
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("first")]})
    blueprint_id = saved["blueprintId"]
    ran = api.mutate("blueprint.execute", {"blueprintId": blueprint_id, "input": {"n": 1}})
    assert ran["status"] == "completed"

    api.mutate("blueprint.delete", {"blueprintId": blueprint_id})

    status = api.status(ran["id"])
    assert status["status"] == "completed"
    assert (status["blueprintId"], status["blueprintVersion"]) == (blueprint_id, 1)
    assert [step["nodeId"] for step in status["steps"]] == ["first"]
    assert status["finalOutputs"] == [{"nodeId": "first", "output": {"n": 1}, "artifacts": []}]
    listed = api.query("execution.list", {"blueprintId": blueprint_id})
    assert [e["executionId"] for e in listed["executions"]] == [ran["id"]]


def test_an_execution_runs_its_snapshot_when_the_blueprint_changes_under_it(
    api: API, token: str
) -> None:
    nodes = [{"id": "wait", "type": "delay", "config": {"ms": 200}}, noop("after", "wait")]
    saved = api.mutate("blueprint.create", {"name": token, "nodes": nodes})
    blueprint_id = saved["blueprintId"]
    started = api.mutate("execution.executeBlueprintWithLogging", {"blueprintId": blueprint_id})

    api.mutate(
        "blueprint.update", {"blueprintId": blueprint_id, "name": token, "nodes": [noop("other")]}
    )
    api.mutate("blueprint.delete", {"blueprintId": blueprint_id})

    status = api.wait_final(started["executionId"])
    assert status["status"] == "completed"
    assert status["blueprintVersion"] == 1
    assert [step["nodeId"] for step in status["steps"]] == ["wait", "after"]
    assert status["finalOutputs"][0]["output"] == {"wait": {"sleptMs": 200}}


# -- node types ----------------------------------------------------------------------------


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema a `$ref` points at, or the schema itself."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
    return resolved


def test_node_types_lists_the_nine_built_ins_with_config_schemas(api: API) -> None:
    types = api.query("blueprint.nodeTypes")
    assert [t["type"] for t in types].count("noop") == 1
    assert {t["type"] for t in types} == BUILTIN_TYPES
    for node_type in types:
        assert set(node_type) == {"type", "description", "configSchema"}
        assert isinstance(node_type["description"], str) and node_type["description"]
        assert resolve(node_type["configSchema"])["type"] == "object"
    schemas = {t["type"]: resolve(t["configSchema"]) for t in types}
    assert "ms" in schemas["delay"]["properties"]
    assert {"expression", "template"} <= set(schemas["transform"]["properties"])
    assert {"expression", "then", "else"} <= set(schemas["condition"]["properties"])
    assert schemas["http"]["required"] == ["url"]
    assert schemas["input"]["required"] == ["prompt"]
    assert schemas["python"]["required"] == ["function"]
    assert schemas["noop"]["properties"] == {}


# -- execute -------------------------------------------------------------------------------


def test_execute_waits_and_returns_the_full_status(api: API, token: str) -> None:
    nodes = [
        {"id": "wait", "type": "delay", "config": {"ms": 50}},
        {
            "id": "greet",
            "type": "transform",
            "dependsOn": ["wait"],
            "config": {"template": {"hello": "{{ input.who }}", "tag": "{{ metadata.tag }}"}},
        },
    ]
    saved = api.mutate("blueprint.create", {"name": token, "nodes": nodes})

    status = api.mutate(
        "blueprint.execute",
        {
            "blueprintId": saved["blueprintId"],
            "input": {"who": "ann"},
            "metadata": {"tag": "t1"},
            "waitMs": 20_000,
        },
    )

    assert status["status"] == "completed"
    assert (status["blueprintId"], status["blueprintVersion"]) == (saved["blueprintId"], 1)
    assert (status["progress"], status["totalSteps"], status["completedSteps"]) == (100, 2, 2)
    assert status["metadata"] == {"tag": "t1"}
    assert ISO_TIME.match(status["endTime"])
    assert status["finalOutputs"] == [
        {"nodeId": "greet", "output": {"hello": "ann", "tag": "t1"}, "artifacts": []}
    ]
    assert status == api.status(status["id"])


def test_execute_runs_the_version_asked_for(api: API, token: str) -> None:
    saved = api.mutate("blueprint.create", {"name": token, "nodes": [noop("one")]})
    blueprint_id = saved["blueprintId"]
    api.mutate(
        "blueprint.update", {"blueprintId": blueprint_id, "name": token, "nodes": [noop("two")]}
    )

    newest = api.mutate("blueprint.execute", {"blueprintId": blueprint_id})
    first = api.mutate("blueprint.execute", {"blueprintId": blueprint_id, "version": 1})

    assert (newest["blueprintVersion"], newest["steps"][0]["nodeId"]) == (2, "two")
    assert (first["blueprintVersion"], first["steps"][0]["nodeId"]) == (1, "one")
    with pytest.raises(TRPCError) as caught:
        api.mutate("blueprint.execute", {"blueprintId": blueprint_id, "version": 3})
    assert caught.value.code == "NOT_FOUND"


def test_execute_returns_when_the_execution_pauses(api: API) -> None:
    ask = {"id": "ask", "type": "input", "config": {"prompt": "Go?", "schema": {"type": "object"}}}
    status = api.mutate(
        "blueprint.execute", {"blueprint": {"name": "asks", "nodes": [ask]}, "waitMs": 60_000}
    )
    assert (status["status"], status["pauseReason"], status["pausedNodeId"]) == (
        "paused",
        "input",
        "ask",
    )
    assert status["endTime"] is None


def test_execute_reports_a_failure_in_the_status(api: API) -> None:
    check = {
        "id": "check",
        "type": "assert",
        "config": {"expression": "input.ok", "message": "not ok"},
    }
    status = api.mutate(
        "blueprint.execute",
        {"blueprint": {"name": "checks", "nodes": [check]}, "input": {"ok": False}},
    )
    assert status["status"] == "failed"
    assert status["error"] == {"code": "ASSERTION_FAILED", "message": "not ok", "nodeId": "check"}


@pytest.mark.parametrize("wait_ms", [-1, 300_001, "soon"])
def test_execute_refuses_a_bad_wait(api: API, wait_ms: Any) -> None:
    with pytest.raises(TRPCError) as caught:
        api.mutate(
            "blueprint.execute",
            {"blueprint": {"name": "x", "nodes": [noop("a")]}, "waitMs": wait_ms},
        )
    assert caught.value.code == "BAD_REQUEST"
    assert "waitMs" in str(caught.value)
