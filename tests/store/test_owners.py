"""Which engine runs which execution, and taking over those of engines that died."""

from __future__ import annotations

import os

import msgspec

from engine.events import ExecutionCreated
from store import Store
from store.owners import Owners
from tests.store._events import at, created, exec_id, execution


def owned(n: int, owner: str | None, status: str = "running") -> ExecutionCreated:
    return msgspec.structs.replace(created(execution(exec_id(n), status, at(n))), owner=owner)


async def test_only_the_executions_of_engines_that_died_are_taken(store: Store, path: str):
    alive, dead = Owners(store.writer, path), Owners(store.writer, path)
    alive.register("engine-alive")
    dead.register("engine-dead")
    store.writer.emit(owned(1, "engine-alive"))
    store.writer.emit(owned(2, "engine-dead"))
    store.writer.emit(owned(3, "engine-dead", "completed"))
    store.writer.emit(owned(4, None, "queued"))  # written before engines had owners
    await store.writer.flush()
    # Dying: the process ends and the kernel frees the lock, but nobody removes its file.
    assert dead._lock_fd is not None
    os.close(dead._lock_fd)

    assert await store.owners.claim_orphans("engine-me") == 2
    mine = await store.resume_source.load_unfinished(owner="engine-me")
    assert [item.execution.id for item in mine] == [exec_id(2), exec_id(4)]
    theirs = await store.resume_source.load_unfinished(owner="engine-alive")
    assert [item.execution.id for item in theirs] == [exec_id(1)]
    assert await store.owners.claim_orphans("engine-me") == 0  # nothing left to take
    alive.unregister("engine-alive")


async def test_an_engine_that_stopped_cleanly_leaves_its_executions_to_others(
    store: Store, path: str
):
    stopped = Owners(store.writer, path)
    stopped.register("engine-stopped")
    store.writer.emit(owned(1, "engine-stopped", "paused"))
    await store.writer.flush()
    assert await store.owners.claim_orphans("engine-me") == 0
    stopped.unregister("engine-stopped")
    assert not os.path.exists(f"{path}.engines/engine-stopped.lock")

    assert await store.owners.claim_orphans("engine-me") == 1


async def test_an_engine_sees_itself_alive(store: Store, path: str):
    store.owners.register("engine-me")
    store.writer.emit(owned(1, "engine-me"))
    await store.writer.flush()
    other = Owners(store.writer, path)
    assert await other.claim_orphans("engine-other") == 0
    store.owners.unregister("engine-me")
