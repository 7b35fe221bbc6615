"""What a restart must take up again: the engine's ResumeSource, read from the log."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from engine.model import Blueprint, RunOptions
from engine.ports import UnfinishedExecution
from engine.records import Execution, Step
from store import queries
from store._thread import read_on_thread
from store.outputs import StoredOutputs

_execution = msgspec.json.Decoder(Execution)
_step = msgspec.json.Decoder(Step)
_blueprint = msgspec.json.Decoder(Blueprint)
_options = msgspec.json.Decoder(RunOptions)
_any = msgspec.json.Decoder()


class LogResumeSource:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def load_unfinished(self, owner: str | None = None) -> list[UnfinishedExecution]:
        return await read_on_thread(self._db, load_unfinished, owner)


def load_unfinished(
    conn: sqlite3.Connection, owner: str | None = None
) -> list[UnfinishedExecution]:
    found = []
    for execution_id, record, snapshot, input_, options in conn.execute(
        queries.UNFINISHED_EXECUTIONS, (owner,)
    ).fetchall():
        steps = [_step.decode(row[1]) for row in conn.execute(queries.STEPS_OF, (execution_id,))]
        stored = StoredOutputs(conn.execute(queries.OUTPUT_ROWS, (execution_id,)).fetchall())
        outputs = {index: stored.decoded(index) for index in stored}
        last_seq = conn.execute(queries.LAST_SEQ, (execution_id,)).fetchone()[0] or 0
        found.append(
            UnfinishedExecution(
                execution=_execution.decode(record),
                steps=steps,
                outputs=outputs,
                blueprint=_blueprint.decode(snapshot),
                input=_any.decode(input_),
                options=_options.decode(options),
                last_seq=last_seq,
            )
        )
    return found
