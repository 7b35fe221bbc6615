"""Forward-only schema migrations: `NNNN_name.sql`, applied in order; the version is
`PRAGMA user_version`. A file newer than this code refuses to open."""

from __future__ import annotations

import sqlite3
from importlib import resources

from store.errors import SchemaTooNew, SQLiteTooOld

#: ALTER TABLE ... DROP COLUMN, which migration 0014 uses, came in SQLite 3.35.
MIN_SQLITE = (3, 35, 0)


def _scripts() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files(__package__).iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), name, entry.read_text()))
    return sorted(found)


def latest_version() -> int:
    return _scripts()[-1][0]


def check_version(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version; SchemaTooNew if a newer server wrote it, SQLiteTooOld if
    this SQLite cannot run the migrations."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SQLiteTooOld(
            f"blueprint needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer to open {path};"
            f" Python's sqlite3 module here uses SQLite {sqlite3.sqlite_version}"
        )
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = latest_version()
    if current > latest:
        raise SchemaTooNew(
            f"{path} has schema version {current}, newer than this server understands "
            f"({latest}); run a newer blueprint, or point --db at another file"
        )
    return current


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema up to date; returns the version. Runs on the connection's thread."""
    current = check_version(conn, path)
    for version, _name, script in _scripts():
        if version <= current:
            continue
        # The version bump shares the script's transaction: a migration applies whole or not at all.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return latest_version()
