"""Every named query is an indexed lookup, so reading one execution costs the same however
many the log holds. Checked with EXPLAIN QUERY PLAN, not with timings."""

from __future__ import annotations

import re
import sqlite3

import pytest

from store import Store, queries
from store import migrations as migrations_module
from store._thread import run_on_thread
from store.reads import INCLUDE_OPTIONS
from tests.store._events import created, exec_id, execution, log, step, step_updated, trace, untrace

NAMED = {name: sql for name, sql in vars(queries).items() if name.isupper()}


def plan(conn: sqlite3.Connection, sql: str, args=()) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()]


def placeholders(sql: str) -> int:
    numbered = [int(n) for n in re.findall(r"\?(\d+)", sql)]
    return max(numbered) if numbered else sql.count("?")


def scans(lines: list[str]) -> list[str]:
    """Plan lines that read a whole table or index rather than a range of it."""
    return [line for line in lines if line.startswith("SCAN")]


@pytest.fixture
def conn(path):
    conn = sqlite3.connect(path, isolation_level=None)
    migrations_module.migrate(conn, path)
    yield conn
    conn.close()


@pytest.mark.parametrize("name", sorted(NAMED))
def test_each_named_query_searches_an_index(conn, name):
    sql = NAMED[name]
    lines = plan(conn, sql, [None] * placeholders(sql))
    assert scans(lines) == []
    if not sql.lstrip().startswith("INSERT"):
        assert any(line.startswith("SEARCH") for line in lines), lines


async def status_plans(store: Store, execution_id: str) -> list[tuple[str, list[str]]]:
    """Each statement a status read runs (all its parts), with its plan."""
    statements = await trace(store, reader=True)
    await store.executions.status(execution_id, 100, INCLUDE_OPTIONS)
    await store.executions.status(execution_id, 0)
    await untrace(store, reader=True)

    # The log follower polls on the same connection; its statements are not the read's.
    statements = [sql for sql in statements if "FROM meta" not in sql and "WHERE gid >" not in sql]

    def explain(conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
        return [(sql, plan(conn, sql)) for sql in statements]

    return await run_on_thread(store._reader_db, explain)


def emit_executions(store: Store, numbers: range) -> None:
    for n in numbers:
        record = execution(exec_id(n), total_steps=2)
        store.writer.emit(created(record, ("a", "b")))
        store.writer.emit(step_updated(record.id, 0, step("a", status="succeeded"), output=n))
        store.writer.emit(log(record.id, 1))
        store.writer.emit(log(record.id, 2, "warn", "a"))


async def test_a_status_read_has_the_same_indexed_plan_with_10_or_5000_executions(store):
    emit_executions(store, range(1, 11))
    await store.writer.flush()
    target = exec_id(5)
    small = await status_plans(store, target)

    emit_executions(store, range(11, 5001))
    await store.writer.flush()
    large = await status_plans(store, target)

    assert len(small) >= 5
    assert large == small
    for sql, lines in large:
        if sql.strip().upper() in ("BEGIN", "COMMIT"):
            continue  # the read transaction that gives the statements one snapshot
        assert scans(lines) == [], sql
        assert any(line.startswith("SEARCH") for line in lines), sql
