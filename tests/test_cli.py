"""`blueprint serve` as users start it: a child process, flags and environment variables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, free_port


@pytest.fixture
def server_from_env(tmp_path: Path):
    db = tmp_path / "sub" / "bp.db"
    port = free_port()
    server = ServerProcess(
        [], env={"BLUEPRINT_PORT": str(port), "BLUEPRINT_DB": str(db)}, port=port
    )
    yield server, db
    server.stop()


def test_serve_takes_its_settings_from_the_environment(server_from_env):
    server, db = server_from_env
    assert db.exists()
    # curl -G .../system.health --data-urlencode 'input={"json":null}', as the README shows
    health = httpx.get(f"{server.url}/api/trpc/system.health", params={"input": '{"json":null}'})
    assert health.json()["result"]["data"]["json"]["status"] == "ok"
    batch = httpx.get(
        f"{server.url}/api/trpc/system.health,system.procedures",
        params={"batch": "1", "input": "{}"},
    )
    health_item, procedures_item = batch.json()
    assert health_item["result"]["data"]["json"]["database"] == "ok"
    paths = [p["path"] for p in procedures_item["result"]["data"]["json"]["procedures"]]
    assert "system.health" in paths


def test_serve_flags_choose_the_transformer_and_prefix(tmp_path: Path):
    server = ServerProcess(
        ["--db", str(tmp_path / "bp.db"), "--transformer", "none", "--prefix", "/trpc"]
    )
    try:
        response = httpx.get(f"{server.url}/trpc/system.health")
        assert response.json()["result"]["data"]["status"] == "ok"
    finally:
        server.stop()
    assert "serving tRPC on" in server.output()


@pytest.mark.parametrize(
    "flag",
    ["--max-batch-size", "--max-depth", "--max-nodes", "--node-concurrency", "--workers"],
)
def test_a_limit_below_one_is_refused_with_the_flag_named(flag, tmp_path: Path, capsys):
    from rpc.cli import main

    assert main(["serve", "--db", str(tmp_path / "bp.db"), flag, "0"]) == 2
    assert f"{flag} must be 1 or more, not 0" in capsys.readouterr().err


def test_a_file_from_a_newer_server_is_refused_in_one_line(tmp_path: Path, capsys):
    from rpc.cli import main

    db = tmp_path / "newer.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    for argv in (["serve", "--db", str(db)], ["keys", "list", "--db", str(db)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"blueprint: {db} has schema version 999, newer than this server")
        assert "Traceback" not in err


def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path: Path, capsys):
    from rpc.cli import main

    db = tmp_path / "photo.db"
    db.write_bytes(bytes(range(256)) * 32)
    assert main(["serve", "--db", str(db)]) == 2
    assert capsys.readouterr().err == f"blueprint: {db}: file is not a database\n"
    assert db.read_bytes() == bytes(range(256)) * 32
