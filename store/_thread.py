"""Run a unit of work on an aiosqlite connection's own thread, as one round trip.

aiosqlite sends each call (execute, fetch, commit, cursor close) to its worker thread and back:
a round trip that costs far more than the SQL it carries. Sending one function that makes
several statements costs one round trip for all of them. aiosqlite has no public way to do
this, so we use `Connection._execute`, which every aiosqlite release since 0.17 has had (the
version range in pyproject.toml pins the releases this was checked against).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


async def run_on_thread(db: aiosqlite.Connection, work: Callable[..., T], *args: Any) -> T:
    """`work(sqlite3_connection, *args)` on the connection's thread."""
    return await db._execute(_call, db, work, args)  # type: ignore[no-any-return]


def _call(db: aiosqlite.Connection, work: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    connection: sqlite3.Connection = db._conn
    return work(connection, *args)


async def read_on_thread(db: aiosqlite.Connection, work: Callable[..., T], *args: Any) -> T:
    """As run_on_thread, inside one read transaction: every statement of `work` sees the same
    commit, so a status never mixes a step from one commit with counts from another."""
    return await db._execute(_call_in_snapshot, db, work, args)  # type: ignore[no-any-return]


def _call_in_snapshot(
    db: aiosqlite.Connection, work: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    connection: sqlite3.Connection = db._conn
    connection.execute("BEGIN")
    try:
        return work(connection, *args)
    finally:
        connection.execute("COMMIT")
