"""Which engine runs which execution, and taking over those of engines that died.

Each engine holds an exclusive lock (flock) on its own file beside the database for as long as
its process lives; the kernel releases it when the process ends, however it ends. An engine
whose lock can be taken is dead, and its unfinished executions (and finished ones with webhooks
still to deliver) go to whoever takes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from store.writer import EventWriter

_ACTIVE = "('queued', 'running', 'paused')"


class Owners:
    def __init__(self, writer: EventWriter, db_path: str) -> None:
        self._writer = writer
        self._folder = Path(f"{db_path}.engines")
        self._lock_fd: int | None = None

    def register(self, engine_id: str) -> None:
        """Hold this engine's lock for as long as the process lives."""
        self._folder.mkdir(parents=True, exist_ok=True)
        # Locked before it is given its name, so no other engine ever sees it unlocked.
        provisional = self._folder / f".{engine_id}.{os.getpid()}"
        fd = os.open(provisional, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())  # for people (and tests) asking which process
        os.replace(provisional, self._folder / f"{engine_id}.lock")
        self._lock_fd = fd

    def unregister(self, engine_id: str) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                (self._folder / f"{engine_id}.lock").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def one_at_a_time(self, task: str) -> Iterator[None]:
        """While held, no other engine on this database holds it for the same task (a startup
        step several worker processes would otherwise race through)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._folder / f"{task}.task", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def claim_orphans(self, engine_id: str) -> int:
        """Take the executions of engines that died; returns how many were taken."""
        return await self._writer.write(_claim, engine_id, str(self._folder))  # type: ignore[no-any-return]


def _claim(conn: sqlite3.Connection, engine_id: str, folder: str) -> int:
    owners = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT owner FROM executions WHERE status IN {_ACTIVE}"
            " OR id IN (SELECT execution_id FROM webhook_deliveries WHERE status = 'pending')"
        )
    ]
    taken = 0
    for owner in owners:
        if owner == engine_id or (owner is not None and _alive(Path(folder), owner)):
            continue
        cursor = conn.execute(
            f"UPDATE executions SET owner = ? WHERE owner IS ? AND (status IN {_ACTIVE}"
            " OR id IN (SELECT execution_id FROM webhook_deliveries WHERE status = 'pending'))",
            (engine_id, owner),
        )
        taken += cursor.rowcount
    return taken


def _alive(folder: Path, engine_id: str) -> bool:
    """Whether some process still holds that engine's lock."""
    path = folder / f"{engine_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    with contextlib.suppress(OSError):
        path.unlink()
    return False
