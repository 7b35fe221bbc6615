"""Finished executions' statuses, stored whole (migration 0013), so reading one is a lookup.

The writer stores them when it has nothing else to do, so the engine never waits for one.
Every later write to a finished execution rebuilds its row, if it has one, in the same
transaction, so a row is never older than what it describes. One without a row yet needs
nothing: the writer that queued it reads it when it stores it, in a write transaction that
comes after the write (writes take SQLite's write lock one at a time).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from store import queries
from store.reads import SNAPSHOT_LOGS_LIMIT, read_status


def refresh_finished(conn: sqlite3.Connection, execution_ids: Iterable[str]) -> None:
    """Store the status of each of these that has finished; drop the row of any other."""
    for execution_id in execution_ids:
        found = read_status(conn, execution_id, SNAPSHOT_LOGS_LIMIT, (), stored=False)
        if found is not None and found[1]:
            conn.execute(queries.STORE_FINISHED_STATUS, (execution_id, found[0]))
        else:
            conn.execute(queries.DROP_FINISHED_STATUS, (execution_id,))


def rebuild_stored(conn: sqlite3.Connection, execution_ids: Iterable[str]) -> None:
    """After a write to these executions: rebuild the stored status of those that have one.
    (Building one reads the whole status; a late log line right after the end is common.)"""
    has_row = queries.HAS_FINISHED_STATUS
    stored = [i for i in execution_ids if conn.execute(has_row, (i,)).fetchone() is not None]
    if stored:
        refresh_finished(conn, stored)
