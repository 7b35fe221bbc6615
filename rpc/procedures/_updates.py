"""Subscription events, read from the log so a client that reconnects misses nothing.

Each log row (global number G) gives, in order: a `node-execution` event (id `G.1`) when the row
records a step's transition, the `log` event itself (`G.2`), and then an `execution-update`
(`G.3`) when the row changed the execution, or a `batch-update` (`G.4`) for batch followers.
Resuming after `G.k` delivers the rest of row G's events, then every later row: exactly once.
Update events carry the execution's (or batch's) state when they are sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from engine.records import Execution, LogEntry
from rpc.errors import ErrorCode, RPCError
from rpc.router import Tracked
from store.follower import LogFollower, LogRow

_entry = msgspec.json.Decoder(LogEntry)
_to_builtins = msgspec.to_builtins

EventId = tuple[int, int]
_EVENT_ID = re.compile(r"([0-9]{1,18})(?:\.([0-9]{0,18}))?")


def parse_event_id(text: str | None) -> EventId | None:
    """`G.k` (or a bare `G`, meaning all of row G was seen)."""
    if not text:
        return None
    # ASCII digits, few enough for SQLite (str.isdigit() takes "²", which int() refuses).
    match = _EVENT_ID.fullmatch(text)
    if match is None:
        raise RPCError(ErrorCode.BAD_REQUEST, f"lastEventId {text!r} is not an id this server sent")
    whole, part = match.groups()
    return int(whole), int(part) if part else 9


def event_id(position: EventId) -> str:
    return f"{position[0]}.{position[1]}"


def execution_update(record: Execution, at: str) -> dict[str, Any]:
    return {
        "type": "execution-update",
        "executionId": record.id,
        "at": at,
        "status": record.status.value,
        "progress": record.progress,
        "totalSteps": record.total_steps,
        "completedSteps": record.completed_steps,
        "failedSteps": record.failed_steps,
        "currentStep": record.current_step,
        "pauseReason": None if record.pause_reason is None else record.pause_reason.value,
    }


def row_events(
    row: LogRow,
) -> tuple[list[tuple[EventId, dict[str, Any]]], dict[str, Any] | None]:
    """The node and log events of one row, and the transition it records (its data), if any."""
    entry = _entry.decode(row.entry)
    data = entry.data if isinstance(entry.data, dict) else {}
    events: list[tuple[EventId, dict[str, Any]]] = []
    marked = data if data.get("event") in ("node", "execution") else None
    if data.get("event") == "node":
        events.append(
            (
                (row.gid, 1),
                {
                    "type": "node-execution",
                    "executionId": row.execution_id,
                    "at": entry.timestamp,
                    "nodeId": entry.node_id,
                    "nodeType": data.get("nodeType"),
                    "status": data.get("status"),
                    "attemptNo": data.get("attemptNo"),
                    "error": data.get("error"),
                },
            )
        )
    log_event = {"type": "log", "executionId": row.execution_id, "at": entry.timestamp}
    events.append(((row.gid, 2), {**log_event, **_to_builtins(entry)}))
    return events, marked


async def follow(
    follower: LogFollower,
    execution_id: str | None,
    after: EventId,
    wants: Callable[[str], bool] | None,
) -> AsyncIterator[list[LogRow]]:
    """Rows after `after`, from the log first, then as they come; each row once."""
    subscription = follower.subscribe(wants)
    try:
        seen = after[0] - (1 if after[1] < 9 else 0)  # a partly seen row is read again
        while True:  # catch up from the log: the subscription buffers what arrives meanwhile
            rows = await follower.rows_after(seen, execution_id)
            rows = [row for row in rows if wants is None or wants(row.execution_id)]
            if not rows:
                break
            seen = rows[-1].gid
            yield rows
        while True:
            rows = [row for row in await subscription.next() if row.gid > seen]
            if rows:
                seen = rows[-1].gid
                yield rows
    finally:
        follower.unsubscribe(subscription)


#: (execution id, time, the transition, the row's number) -> the update event and whether the
#: stream ends
Snapshot = Callable[[str, str, dict[str, Any], int], Awaitable[tuple[dict[str, Any], bool] | None]]


async def updates(
    rows: AsyncIterator[list[LogRow]],
    after: EventId,
    snapshot: Snapshot,
    slot: int,
    details: bool = True,
) -> AsyncIterator[Tracked]:
    """Events of the rows, skipping those up to `after`. After a row that changed an execution,
    `snapshot(execution id, time, transition, row number)` gives the update event (sent as
    `G.slot`) and whether the followed execution or batch has ended, which ends the stream. Without
    `details`, only the update events are sent (batch followers)."""
    async for batch in rows:
        for row in batch:
            events, marked = row_events(row)
            for position, event in events if details else ():
                if position > after:
                    yield Tracked(event_id(position), event)
            if marked is not None:
                found = await snapshot(row.execution_id, events[-1][1]["at"], marked, row.gid)
                if found is not None:
                    update, ended = found
                    if (row.gid, slot) > after:
                        yield Tracked(event_id((row.gid, slot)), update)
                    if ended:
                        return
