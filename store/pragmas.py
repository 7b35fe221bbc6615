"""How every connection to the log is set up, in the server's process and the writer's.

WAL lets readers see the last commit while the writer works. `synchronous=NORMAL` (the
default durability) survives a crash of the server process, which is what SIGKILL does, but
the newest commits can be lost if the machine itself loses power; `synchronous=FULL`
(`--durability strict`) survives that too, at the cost of an fsync per commit.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum


class Durability(StrEnum):
    NORMAL = "normal"  #: synchronous=NORMAL: survives a process crash
    STRICT = "strict"  #: synchronous=FULL: survives power loss too


#: Pages come straight from the OS page cache, not through a read() each: on a file larger
#: than SQLite's page cache (a big log), status reads got 10-20% faster in `make bench`. SQLite
#: caps this at its build's limit (2 GiB in Debian's); pages past it are read() as before.
MMAP_PRAGMA = "PRAGMA mmap_size = 2147418112"

PRAGMAS = (
    "PRAGMA busy_timeout = 5000",  # first: the writer process opens the file while it migrates
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
    MMAP_PRAGMA,
)


def pragmas(durability: Durability) -> tuple[str, ...]:
    synchronous = "FULL" if durability is Durability.STRICT else "NORMAL"
    return (*PRAGMAS, f"PRAGMA synchronous = {synchronous}")


def configure(conn: sqlite3.Connection, durability: Durability) -> None:
    for pragma in pragmas(durability):
        conn.execute(pragma)


def connect(path: str, durability: Durability) -> sqlite3.Connection:
    """A plain connection, set up as every other: for migrations and the writer process."""
    conn = sqlite3.connect(path, isolation_level=None)
    configure(conn, durability)
    return conn
