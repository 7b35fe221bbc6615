"""Following the log: what the follower reads after this server's own commits."""

from __future__ import annotations

import asyncio

from store.follower import LogFollower
from tests.store._events import created, exec_id, execution, log, trace, untrace


def follower_at(position: int, own: list[tuple[int, int]]) -> LogFollower:
    follower = LogFollower(None, changed=lambda ids: None, cleared=lambda: None)  # type: ignore[arg-type]
    follower._position = position
    for gids in own:
        follower.notify(gids)
    return follower


def test_its_own_rows_alone_are_passed_without_reading():
    follower = follower_at(10, [(11, 20), (21, 25)])
    assert follower._skipped_own() is True
    assert follower.position == 25


def test_a_gap_before_its_own_rows_is_read():
    """Another server wrote gid 21: its executions' cached statuses must be dropped."""
    follower = follower_at(10, [(11, 20), (22, 25)])
    assert follower._skipped_own() is False
    assert follower.position == 20


def test_with_a_subscriber_its_own_rows_are_read_too():
    follower = follower_at(10, [(11, 20)])
    follower.subscribe()
    assert follower._skipped_own() is False
    assert follower.position == 10


async def test_commits_of_this_server_cost_the_reader_no_query(store):
    store.follower._poll_seconds = 3600  # no poll in the way: only what commits cause
    store.follower.notify()
    await asyncio.sleep(0.05)
    statements = await trace(store, reader=True)
    record = execution(exec_id(1))
    store.writer.emit(created(record))
    for seq in range(1, 6):
        store.writer.emit(log(record.id, seq))
        await store.writer.flush()
    await asyncio.sleep(0.05)
    await untrace(store, reader=True)
    assert [s for s in statements if "logs" in s] == []
    assert store.follower.position == await store.follower.last_gid()
