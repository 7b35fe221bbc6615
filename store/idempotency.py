"""Idempotency keys: the first request with a key creates; a repeat gets the same execution."""

from __future__ import annotations

import sqlite3

import msgspec

from engine.clock import now_ms
from store.writer import EventWriter

WINDOW_MS = 24 * 3600 * 1000
#: A claim younger than this whose execution is not in the log yet is still being created.
IN_FLIGHT_MS = 30_000


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    execution_id: str
    new: bool  #: this request should create the execution
    conflict: bool = False  #: the key was used with a different request


class IdempotencyKeys:
    def __init__(self, writer: EventWriter) -> None:
        self._writer = writer

    async def claim(self, key: str, fingerprint: bytes, candidate: str) -> Claim:
        """Claim `key` for a new execution `candidate`, or learn what it already names."""
        return await self._writer.write(_claim, key, fingerprint, candidate, now_ms())  # type: ignore[no-any-return]


def _claim(
    conn: sqlite3.Connection, key: str, fingerprint: bytes, candidate: str, now: int
) -> Claim:
    row = conn.execute(
        "SELECT fingerprint, execution_id, created_at FROM idempotency_keys WHERE key = ?", (key,)
    ).fetchone()
    if row is not None and row[2] > now - WINDOW_MS:
        if row[0] != fingerprint:
            return Claim(execution_id=row[1], new=False, conflict=True)
        exists = conn.execute("SELECT 1 FROM executions WHERE id = ?", (row[1],)).fetchone()
        if exists is not None or row[2] > now - IN_FLIGHT_MS:
            return Claim(execution_id=row[1], new=False)
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, execution_id, created_at)"
        " VALUES (?, ?, ?, ?)",
        (key, fingerprint, candidate, now),
    )
    return Claim(execution_id=candidate, new=True)
