"""API keys, scopes and rate limits on a real `blueprint serve` process, keys made and revoked
with the real `blueprint keys` command.

The walk goes over every registered procedure, so a procedure added later without the right
scope, or reachable without a key, fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rpc.procedures import root_router
from rpc.router import Kind, Procedure, Scope, flatten
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.slow

PROCEDURES = flatten(root_router())
ALL_SCOPES = [s.value for s in Scope if s is not Scope.ANY_KEY]


def blueprint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc.cli", *args], capture_output=True, text=True, timeout=60
    )


def create_key(db: Path, name: str, scopes: list[str]) -> str:
    done = blueprint(
        "keys", "create", "--name", name, "--scopes", ",".join(scopes), "--db", str(db)
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert done.stdout == key + "\n", "the key is alone on standard output"
    return key


class Caller:
    def __init__(self, base: str, client: httpx.Client) -> None:
        self.base = base
        self.client = client

    def call(self, path: str, proc: Procedure, key: str | None = None, how: str = "bearer"):
        headers = {}
        if key is not None:
            headers = {"authorization": f"Bearer {key}"} if how == "bearer" else {"x-api-key": key}
        url = f"{self.base}/api/trpc/{path}"
        if proc.kind is Kind.MUTATION:
            headers["content-type"] = "application/json"
            return self.client.post(url, content=b"", headers=headers)
        if proc.kind is Kind.SUBSCRIPTION:
            # An error before the stream starts is an ordinary JSON answer; a stream that starts
            # is closed at once.
            with self.client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                return response
        return self.client.get(url, headers=headers)


def code_of(response: httpx.Response) -> str | None:
    if response.status_code == 200 and "json" not in response.headers.get("content-type", ""):
        return None  # a subscription stream: let in
    body = response.json()
    if "error" not in body:
        return None
    return body["error"]["json"]["data"]["code"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Caller, Path, dict]]:
    db = tmp_path_factory.mktemp("security") / "bp.db"
    keys = {"admin": create_key(db, "admin", ["admin"])}
    for scope in ALL_SCOPES:
        keys[f"only {scope}"] = create_key(db, f"only-{scope}", [scope])
        others = [s for s in ALL_SCOPES if s not in (scope, "admin")]
        keys[f"all but {scope}"] = create_key(db, f"all-but-{scope}", others)
    server = ServerProcess(["--db", str(db), "--rate-limit", "off"])
    try:
        with httpx.Client(timeout=30) as client:
            yield Caller(server.url, client), db, keys
    finally:
        server.stop()


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_every_procedure_refuses_a_caller_without_a_key(keyed, path: str):
    caller, _, _ = keyed
    response = caller.call(path, PROCEDURES[path])
    assert response.status_code == 401
    assert code_of(response) == "UNAUTHORIZED"


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_every_procedure_refuses_an_unknown_key(keyed, path: str):
    caller, _, _ = keyed
    response = caller.call(path, PROCEDURES[path], "bp_0123456789ab_not-a-real-secret")
    assert code_of(response) == "UNAUTHORIZED"


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_every_procedure_needs_its_own_scope(keyed, path: str):
    caller, _, keys = keyed
    proc = PROCEDURES[path]
    if proc.scope is Scope.ANY_KEY:
        for name in ("only executions:read", "only blueprints:write"):
            assert code_of(caller.call(path, proc, keys[name])) not in ("FORBIDDEN", "UNAUTHORIZED")
        return
    response = caller.call(path, proc, keys[f"all but {proc.scope.value}"], how="x-api-key")
    assert response.status_code == 403
    assert code_of(response) == "FORBIDDEN"
    assert f'"{proc.scope.value}"' in response.json()["error"]["json"]["message"]
    for enough in (f"only {proc.scope.value}", "admin"):
        assert code_of(caller.call(path, proc, keys[enough])) not in ("FORBIDDEN", "UNAUTHORIZED")


def test_each_call_of_a_batch_is_held_to_its_own_scope(keyed):
    caller, _, keys = keyed
    response = caller.client.get(
        f"{caller.base}/api/trpc/blueprint.list,execution.list?batch=1",
        headers={"authorization": f"Bearer {keys['only blueprints:read']}"},
    )
    assert response.status_code == 207
    first, second = response.json()
    assert "result" in first
    assert second["error"]["json"]["data"]["code"] == "FORBIDDEN"


def test_system_procedures_lists_each_scope(keyed):
    caller, _, keys = keyed
    response = caller.client.get(
        f"{caller.base}/api/trpc/system.procedures",
        headers={"authorization": f"Bearer {keys['only executions:read']}"},
    )
    listed = {
        p["path"]: p["scope"] for p in response.json()["result"]["data"]["json"]["procedures"]
    }
    assert listed == {path: proc.scope.value for path, proc in PROCEDURES.items()}


def test_a_subscription_takes_its_key_from_connection_params(keyed):
    caller, _, keys = keyed
    params = json.dumps({"apiKey": keys["only executions:read"]})
    url = f"{caller.base}/api/trpc/execution.onUpdate"
    query = {"input": json.dumps({"json": {"executionId": "exec_1_nope"}})}
    with caller.client.stream("GET", url, params={**query, "connectionParams": params}) as response:
        assert response.status_code != 401
    with caller.client.stream("GET", url, params=query) as response:
        assert response.status_code == 401


def test_a_revoked_key_is_refused_at_once_by_the_running_server(keyed):
    caller, db, _ = keyed
    key = create_key(db, "short-lived", ["admin"])
    health = PROCEDURES["system.health"]
    assert code_of(caller.call("system.health", health, key)) is None

    done = blueprint("keys", "revoke", "short-lived", "--db", str(db))
    assert done.returncode == 0, done.stderr

    for path in sorted(PROCEDURES):
        response = caller.call(path, PROCEDURES[path], key)
        assert code_of(response) == "UNAUTHORIZED", path


def test_keys_list_shows_everything_but_the_keys(keyed):
    _, db, keys = keyed
    done = blueprint("keys", "list", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    listed = {k["name"]: k for k in json.loads(done.stdout)}
    assert listed["admin"]["scopes"] == ["admin"]
    assert listed["only-executions:read"]["revokedAt"] is None
    for key in keys.values():
        assert key not in done.stdout
        assert key.split("_", 2)[2] not in db.read_bytes().decode("latin-1")


def test_without_keys_the_server_refuses_to_listen_beyond_loopback(tmp_path: Path):
    done = blueprint(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--db", str(tmp_path / "x.db")
    )
    assert done.returncode == 2
    assert "without API keys" in done.stderr
    assert "blueprint keys create" in done.stderr


def test_without_keys_the_server_says_it_runs_open_on_loopback(tmp_path: Path):
    server = ServerProcess(["--db", str(tmp_path / "x.db")])
    try:
        assert "no API keys" in server.output()
        response = httpx.get(f"{server.url}/api/trpc/system.health", timeout=30)
        assert response.status_code == 200
    finally:
        server.stop()


def test_the_rate_limit_answers_too_many_requests_with_retry_after(tmp_path: Path):
    db = tmp_path / "bp.db"
    key = create_key(db, "reader", ["executions:read"])
    server = ServerProcess(["--db", str(db), "--rate-limit", "2/s", "--rate-burst", "3"])
    try:
        with httpx.Client(timeout=30) as client:
            url = f"{server.url}/api/trpc/execution.list"
            headers = {"x-api-key": key}
            answers = [client.get(url, headers=headers) for _ in range(6)]
            statuses = [a.status_code for a in answers]
            assert statuses[:3] == [200, 200, 200]
            limited = [a for a in answers if a.status_code == 429]
            assert limited, statuses
            assert int(limited[0].headers["retry-after"]) >= 1
            assert limited[0].json()["error"]["json"]["data"]["code"] == "TOO_MANY_REQUESTS"
            # Health checks are never limited.
            assert all(client.get(f"{server.url}/healthz").status_code == 200 for _ in range(20))
    finally:
        server.stop()


WAITS = {
    "name": "waits",
    "nodes": [{"id": "ask", "type": "input", "config": {"prompt": "Go?", "schema": {}}}],
}


def test_a_key_may_have_only_so_many_active_executions(tmp_path: Path):
    db = tmp_path / "bp.db"
    key = create_key(db, "runner", ["executions:write", "executions:read"])
    other = create_key(db, "other", ["executions:write"])
    server = ServerProcess(["--db", str(db), "--max-active-per-key", "2"])
    try:
        url = f"{server.url}/api/trpc/execution.executeBlueprintWithLogging"

        def start(with_key: str) -> httpx.Response:
            return httpx.post(
                url, json={"json": {"blueprint": WAITS}}, headers={"x-api-key": with_key}
            )

        first, second = start(key), start(key)
        assert (first.status_code, second.status_code) == (200, 200)
        refused = start(key)
        assert refused.status_code == 429
        assert "2 active executions" in refused.json()["error"]["json"]["message"]
        assert start(other).status_code == 200  # the limit is per key

        stop = httpx.post(
            f"{server.url}/api/trpc/execution.stop",
            json={"json": {"executionId": first.json()["result"]["data"]["json"]["executionId"]}},
            headers={"x-api-key": key},
        )
        assert stop.json()["result"]["data"]["json"]["success"] is True
        assert start(key).status_code == 200
    finally:
        server.stop()
