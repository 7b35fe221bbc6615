"""Forward-only migrations keyed by PRAGMA user_version, on real files."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest

from engine.model import RunOptions
from store import SchemaTooNew, SQLiteTooOld, Store, migrations
from tests.store._events import created, exec_id, execution, read

SCHEMA = "SELECT type, name, sql FROM sqlite_master ORDER BY name"


def user_version(path: str) -> int:
    return int(read(path, "PRAGMA user_version")[0][0])


async def test_a_fresh_file_gets_the_latest_version(path):
    store = await Store.open(path)
    await store.close()
    assert user_version(path) == migrations.latest_version() >= 1
    tables = {row[1] for row in read(path, SCHEMA) if row[0] == "table"}
    assert {"blueprints", "blueprint_versions", "executions", "steps", "logs"} <= tables


async def test_reopening_changes_neither_schema_nor_data(path):
    store = await Store.open(path)
    meta = await store.blueprints.create({"name": "kept", "nodes": []})
    await store.close()
    schema = read(path, SCHEMA)

    store = await Store.open(path)
    try:
        assert (await store.blueprints.get(meta.blueprint_id))[1]["name"] == "kept"
    finally:
        await store.close()
    assert read(path, SCHEMA) == schema
    assert user_version(path) == migrations.latest_version()


async def test_a_newer_file_refuses_to_open_naming_both_versions(path):
    newer = migrations.latest_version() + 7
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()

    with pytest.raises(SchemaTooNew) as caught:
        await Store.open(path)
    message = str(caught.value)
    assert f"schema version {newer}" in message
    assert f"({migrations.latest_version()})" in message
    assert path in message
    assert user_version(path) == newer
    assert read(path, "SELECT count(*) FROM sqlite_master") == [(0,)]


def test_migrate_reports_the_latest_version_and_is_idempotent(path):
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate(conn, path) == migrations.latest_version()
        assert migrations.migrate(conn, path) == migrations.latest_version()
    finally:
        conn.close()


async def test_only_scripts_newer_than_the_file_are_applied(path, monkeypatch):
    await (await Store.open(path)).close()
    scripts = migrations._scripts()
    latest = scripts[-1][0]
    added = (latest + 1, f"{latest + 1:04d}_notes.sql", "CREATE TABLE notes (body TEXT);")
    monkeypatch.setattr(migrations, "_scripts", lambda: [*scripts, added])

    await (await Store.open(path)).close()  # would fail if the first script ran again
    assert user_version(path) == latest + 1
    assert read(path, "SELECT count(*) FROM notes") == [(0,)]


async def test_a_failing_migration_applies_nothing(path, monkeypatch):
    await (await Store.open(path)).close()
    scripts = migrations._scripts()
    latest = scripts[-1][0]
    broken = (latest + 1, "broken.sql", "CREATE TABLE half (x); INSERT INTO missing VALUES (1);")
    monkeypatch.setattr(migrations, "_scripts", lambda: [*scripts, broken])

    with pytest.raises(sqlite3.OperationalError, match="missing"):
        await Store.open(path)
    assert user_version(path) == latest
    assert read(path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []


async def test_version_14_moves_what_an_execution_started_with_out_of_its_row(path, monkeypatch):
    """A file written before 0014 keeps its executions: resume reads them from the new table."""
    scripts = migrations._scripts()
    monkeypatch.setattr(migrations, "_scripts", lambda: [s for s in scripts if s[0] <= 13])
    await (await Store.open(path)).close()
    record = execution(exec_id(1))
    blueprint = created(record, ("a", "b")).blueprint
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO executions (id, status, created_at, updated_at, snapshot, input,"
            " options, record) VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.start_time,
                record.updated_at,
                msgspec.json.encode(blueprint),
                b'{"n": 1}',
                msgspec.json.encode(RunOptions(debug=True)),
                msgspec.json.encode(record),
            ),
        )
    conn.close()
    monkeypatch.setattr(migrations, "_scripts", lambda: scripts)

    store = await Store.open(path)
    try:
        (unfinished,) = await store.resume_source.load_unfinished()
    finally:
        await store.close()
    assert (unfinished.blueprint, unfinished.input) == (blueprint, {"n": 1})
    assert unfinished.options == RunOptions(debug=True)
    columns = {row[1] for row in read(path, "PRAGMA table_info(executions)")}
    assert {"snapshot", "input", "options"}.isdisjoint(columns)


async def test_version_15_moves_step_outputs_into_their_steps(path, monkeypatch):
    """A file written before 0015 keeps every output: resume, a retry and the status read
    find them in the steps rows, and a step with none still has none."""
    scripts = migrations._scripts()
    monkeypatch.setattr(migrations, "_scripts", lambda: [s for s in scripts if s[0] <= 14])
    await (await Store.open(path)).close()
    record = execution(exec_id(1))
    event = created(record, ("a", "b"))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO executions (id, status, created_at, updated_at, record)"
            " VALUES (?, 'running', ?, ?, ?)",
            (record.id, record.start_time, record.updated_at, msgspec.json.encode(record)),
        )
        conn.execute(
            "INSERT INTO execution_inputs (execution_id, snapshot, input, options)"
            " VALUES (?, ?, 'null', '{}')",
            (record.id, msgspec.json.encode(event.blueprint)),
        )
        for index, initial in enumerate(event.steps):
            done = msgspec.structs.replace(initial, status="succeeded") if index == 0 else initial
            conn.execute(
                "INSERT INTO steps (execution_id, idx, node_id, status, record)"
                " VALUES (?, ?, ?, ?, ?)",
                (record.id, index, done.node_id, done.status, msgspec.json.encode(done)),
            )
        conn.execute(
            "INSERT INTO step_outputs (execution_id, idx, node_id, is_leaf, output, artifacts,"
            " metrics, links) VALUES (?, 0, 'a', 1, ?, ?, ?, NULL)",
            (record.id, b'{"k":1}', b'[{"name":"r"}]', b'{"rows":3}'),
        )
    conn.close()
    monkeypatch.setattr(migrations, "_scripts", lambda: scripts)

    store = await Store.open(path)
    try:
        (unfinished,) = await store.resume_source.load_unfinished()
        source = await store.executions.retry_source(record.id)
        status = msgspec.json.decode(await store.executions.status(record.id, 100, ("metrics",)))
    finally:
        await store.close()
    assert unfinished.outputs == {0: {"k": 1}}
    assert source is not None and source.succeeded == {"a": ({"k": 1}, ({"name": "r"},))}
    assert status["finalOutputs"] == [
        {"nodeId": "a", "output": {"k": 1}, "artifacts": [{"name": "r"}]}
    ]
    assert status["metrics"]["reported"] == {"a": {"rows": 3}}
    tables = {row[0] for row in read(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "step_outputs" not in tables
    assert read(path, "SELECT idx, output IS NULL FROM steps ORDER BY idx") == [(0, 0), (1, 1)]


async def test_an_sqlite_too_old_for_the_migrations_is_named_and_nothing_is_written(
    path, monkeypatch
):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(SQLiteTooOld) as caught:
        await Store.open(path)
    assert str(caught.value) == (
        f"blueprint needs SQLite 3.35.0 or newer to open {path};"
        " Python's sqlite3 module here uses SQLite 3.31.1"
    )
    assert read(path, "SELECT count(*) FROM sqlite_master") == [(0,)]
