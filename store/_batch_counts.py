"""Keeping a batch's counts and status in step with its executions (the writer calls this)."""

from __future__ import annotations

import sqlite3

_ACTIVE = ("queued", "running", "paused")


def refresh_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    """Bring a batch's counts and status up to date with its executions."""
    row = conn.execute("SELECT stopped, total FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if row is None:
        return
    stopped, total = row
    counts = dict(
        conn.execute(
            "SELECT status, count(*) FROM executions WHERE batch_id = ? GROUP BY status",
            (batch_id,),
        ).fetchall()
    )
    active = sum(counts.get(status, 0) for status in _ACTIVE)
    created = sum(counts.values())
    ended_at = None
    if active or created < total:
        status = "running"
    else:
        # A stop that reached none of its executions (they had all ended) cancels nothing.
        cancelled = stopped and counts.get("cancelled")
        status = "cancelled" if cancelled else "failed" if counts.get("failed") else "completed"
        ended_at = conn.execute(
            "SELECT max(ended_at) FROM executions WHERE batch_id = ?", (batch_id,)
        ).fetchone()[0]
    conn.execute(
        "UPDATE batches SET status = ?, completed = ?, failed = ?, running = ?, queued = ?,"
        " ended_at = ? WHERE id = ?",
        (
            status,
            counts.get("completed", 0),
            counts.get("failed", 0),
            counts.get("running", 0) + counts.get("paused", 0),
            counts.get("queued", 0) + (total - created),
            ended_at,
            batch_id,
        ),
    )
