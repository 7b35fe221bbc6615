"""The engine's ControlLog: commands kept in the `controls` table."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from engine.clock import now_iso
from engine.control import AnyCommand, Outcome, RecordedCommand
from engine.ports import PendingCommand
from engine.records import AwaitingInput, Execution, ExecutionStatus
from store._thread import read_on_thread
from store.writer import EventWriter

_encode = msgspec.json.Encoder().encode
_command = msgspec.json.Decoder(AnyCommand)
_outcome = msgspec.json.Decoder(Outcome)
_execution = msgspec.json.Decoder(Execution)

PENDING = """
SELECT c.id, c.execution_id, c.command, e.status FROM controls c
JOIN executions e ON e.id = c.execution_id
WHERE c.outcome IS NULL ORDER BY c.id
"""


class Controls:
    def __init__(self, writer: EventWriter, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader

    async def record(self, execution_id: str, command: AnyCommand) -> int:
        return await self._writer.write(_insert, execution_id, _encode(command))  # type: ignore[no-any-return]

    async def pending(self) -> list[PendingCommand]:
        rows = await read_on_thread(self._reader, _pending)
        return [
            PendingCommand(
                recorded=RecordedCommand(
                    id=row[0], execution_id=row[1], command=_command.decode(row[2])
                ),
                status=ExecutionStatus(row[3]),
            )
            for row in rows
        ]

    async def outcome(self, command_id: int) -> Outcome | None:
        rows = await self._reader.execute_fetchall(
            "SELECT outcome FROM controls WHERE id = ?", (command_id,)
        )
        found = next(iter(rows), None)
        return None if found is None or found[0] is None else _outcome.decode(found[0])

    async def awaiting_input(self, execution_id: str) -> AwaitingInput | None:
        rows = await self._reader.execute_fetchall(
            "SELECT record FROM executions WHERE id = ?", (execution_id,)
        )
        found = next(iter(rows), None)
        return None if found is None else _execution.decode(found[0]).awaiting_input


def _insert(conn: sqlite3.Connection, execution_id: str, command: bytes) -> int:
    cursor = conn.execute(
        "INSERT INTO controls (execution_id, command, created_at) VALUES (?, ?, ?)",
        (execution_id, command, now_iso()),
    )
    return int(cursor.lastrowid or 0)


def _pending(conn: sqlite3.Connection) -> list[tuple[int, str, bytes, str]]:
    return conn.execute(PENDING).fetchall()
