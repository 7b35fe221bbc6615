"""API keys: made and revoked by the command line, checked by the server from memory.

A key reads `bp_<id>_<secret>`. The id finds the key's row; only a SHA-256 of the secret is
stored, and it is compared in constant time. The secret is 32 random bytes, so a fast hash is
enough: there is nothing to guess that a slow one would protect.

The server holds every key in memory and learns of changes through a stamp file beside the
database that the command line rewrites after each change. Servers map it into memory and look
at it before each request, which is how a revoked key is refused at once, even by a server
already running, for the price of a memory read.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import mmap
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from engine.clock import iso_ms, now_ms
from store import migrations
from store.writer import EventWriter

KEY_PREFIX = "bp"
log = logging.getLogger("blueprint.store")


class StoredKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key_id: str
    secret_hash: bytes
    scopes: frozenset[str]
    revoked: bool


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `keys list` shows: everything but the key."""

    name: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyExists(Exception):
    pass


def stamp_path(db_path: str) -> Path:
    return Path(f"{db_path}.keys-changed")


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a key as presented, or None if it is not shaped like one of ours."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        return None
    return key_id, secret


@contextlib.contextmanager
def _connection(db_path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5.0)
    try:
        yield conn
    finally:
        conn.close()


class KeyAdmin:
    """The command line's side: create, list and revoke keys in the database file."""

    def __init__(self, db_path: str) -> None:
        self._db_path = db_path
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)

    def _open(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return _connection(self._db_path)

    def create(self, name: str, scopes: Iterable[str]) -> str:
        """A new key, returned whole this once; KeyExists if a live key has that name."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._open() as conn:
            _prepare(conn, self._db_path)
            try:
                conn.execute(
                    "INSERT INTO api_keys (key_id, name, secret_hash, scopes, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key_id, name, _hash(secret), msgspec.json.encode(sorted(scopes)), now_ms()),
                )
            except sqlite3.IntegrityError:
                raise KeyExists(f"a key named {name!r} exists; revoke it first") from None
        self._stamp()
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        with self._open() as conn:
            _prepare(conn, self._db_path)
            rows = conn.execute(
                "SELECT name, scopes, created_at, last_used_at, revoked_at FROM api_keys"
                " ORDER BY created_at, id"
            ).fetchall()
        return [
            KeyInfo(
                name=name,
                scopes=msgspec.json.decode(scopes),
                created_at=iso_ms(created),
                last_used_at=iso_ms(used) if used is not None else None,
                revoked_at=iso_ms(revoked) if revoked is not None else None,
            )
            for name, scopes, created, used, revoked in rows
        ]

    def revoke(self, name: str) -> bool:
        """Whether a live key of that name was revoked."""
        with self._open() as conn:
            _prepare(conn, self._db_path)
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now_ms(), name),
            )
            revoked = cursor.rowcount > 0
        if revoked:
            self._stamp()
        return revoked

    def _stamp(self) -> None:
        ChangeStamp(stamp_path(self._db_path)).bump()


def _prepare(conn: sqlite3.Connection, db_path: str) -> None:
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    migrations.migrate(conn, db_path)


class ChangeStamp:
    """Eight bytes in a file beside the database that change whenever the keys do. Writers
    overwrite them in place; servers map the file into memory, so a look costs a memory read,
    not a system call. Whether the file itself was replaced is checked once a second."""

    _SIZE = 8

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._inode: int | None = None
        self._checked = -math.inf

    def bump(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, time.time_ns().to_bytes(self._SIZE, "little"), 0)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        now = time.monotonic()
        if now - self._checked > 1.0:
            self._checked = now
            self._remap()
        return self._map[: self._SIZE] if self._map is not None else b""

    def _remap(self) -> None:
        try:
            inode = os.stat(self._path).st_ino
            if inode == self._inode and self._map is not None:
                return
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            inode = None
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < self._SIZE:
                os.ftruncate(fd, self._SIZE)
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(fd, self._SIZE, access=mmap.ACCESS_READ)
            self._inode = os.fstat(fd).st_ino if inode is None else inode
        except OSError:
            self._map = None
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


class KeyRing:
    """The server's side: every key in memory, reloaded when the stamp file changes."""

    def __init__(self, db_path: str, writer: EventWriter | None = None) -> None:
        self._db_path = db_path
        self._stamp = ChangeStamp(stamp_path(db_path)) if db_path != ":memory:" else None
        self._seen = b""
        self._keys: dict[str, StoredKey] = {}
        self._writer = writer
        self._used: set[str] = set()  #: ids of keys used since uses were last written
        #: Keys as presented that verified, so a key's next request skips hashing it. Only a
        #: key that matched its hash gets in; cleared whenever the keys change.
        self._verified: dict[str, StoredKey] = {}

    @property
    def has_keys(self) -> bool:
        """Whether any key was ever made (revoked ones count: once on, auth stays on)."""
        return bool(self._keys)

    def load(self) -> None:
        """Read every key now (at startup: the stamp may be older than the keys)."""
        if self._stamp is not None:
            self._seen = self._stamp.read()
            self._keys = self._load()

    def refresh(self) -> None:
        """Reload if the command line changed the keys since the last look."""
        if self._stamp is not None:
            seen = self._stamp.read()
            if seen != self._seen:
                try:
                    self._keys = self._load()
                    self._verified = {}
                except sqlite3.Error:
                    # Keep the keys we know and look again on the next request.
                    log.exception("reloading API keys failed")
                    return
                self._seen = seen

    def _load(self) -> dict[str, StoredKey]:
        if not os.path.exists(self._db_path):
            return {}
        with _connection(self._db_path) as conn:
            conn.execute("PRAGMA busy_timeout = 5000")
            try:
                rows = conn.execute(
                    "SELECT key_id, name, secret_hash, scopes, revoked_at FROM api_keys"
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                return {}  # a file no server has opened yet: no keys
        return {
            key_id: StoredKey(
                name=name,
                key_id=key_id,
                secret_hash=bytes(secret_hash),
                scopes=frozenset(msgspec.json.decode(scopes)),
                revoked=revoked is not None,
            )
            for key_id, name, secret_hash, scopes, revoked in rows
        }

    def verify(self, presented: str) -> StoredKey | None:
        """The live key presented, or None (unknown, malformed or revoked)."""
        known = self._verified.get(presented)
        if known is not None:
            self._used.add(known.key_id)
            return known
        parts = split_key(presented)
        if parts is None:
            return None
        key = self._keys.get(parts[0])
        if key is None or not hmac.compare_digest(_hash(parts[1]), key.secret_hash):
            return None
        if key.revoked:
            return None
        if len(self._verified) >= 10_000:
            self._verified.clear()
        self._verified[presented] = key
        self._used.add(key.key_id)
        return key

    async def write_uses(self) -> None:
        """Record which keys were used, as of now: batched every few seconds, as a write (or
        even a clock read) per request would cost more than the rest of the check."""
        if not self._used or self._writer is None:
            return
        used, self._used = self._used, set()
        await self._writer.write(_mark_used, used, now_ms())


def _mark_used(conn: sqlite3.Connection, key_ids: set[str], at: int) -> None:
    conn.executemany(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE key_id = ?",
        [(at, key_id) for key_id in key_ids],
    )
