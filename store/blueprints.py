"""Blueprints and their versions. Writes run inside the writer's transactions."""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
import msgspec

from engine.clock import now_iso
from engine.ids import new_id
from store import queries
from store._thread import read_on_thread
from store.errors import BlueprintNotFound
from store.writer import EventWriter

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class BlueprintMeta(msgspec.Struct, kw_only=True, rename="camel"):
    blueprint_id: str
    name: str
    description: str | None
    version: int
    node_count: int
    created_at: str
    updated_at: str


class Blueprints:
    def __init__(self, writer: EventWriter, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader

    async def create(self, document: dict[str, Any]) -> BlueprintMeta:
        return await self._writer.write(_create, document)  # type: ignore[no-any-return]

    async def update(self, blueprint_id: str, document: dict[str, Any]) -> BlueprintMeta:
        return await self._writer.write(_update, blueprint_id, document)  # type: ignore[no-any-return]

    async def delete(self, blueprint_id: str) -> bool:
        return await self._writer.write(_delete, blueprint_id)  # type: ignore[no-any-return]

    async def get(
        self, blueprint_id: str, version: int | None = None
    ) -> tuple[BlueprintMeta, dict[str, Any]]:
        """The blueprint's metadata and the document of that version (the newest by default)."""
        found = await read_on_thread(self._reader, _get, blueprint_id, version)
        if found is None:
            raise BlueprintNotFound(blueprint_id, version)
        return found  # type: ignore[no-any-return]

    async def find_by_name(self, name: str) -> tuple[BlueprintMeta, dict[str, Any]] | None:
        """The newest blueprint with exactly this name, with its newest document."""
        rows = await self._reader.execute_fetchall(
            "SELECT id FROM blueprints WHERE name = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (name,),
        )
        if not rows:
            return None
        return await self.get(next(iter(rows))[0])

    async def list(
        self, limit: int, offset: int, search: str | None
    ) -> tuple[int, list[BlueprintMeta]]:
        return await read_on_thread(self._reader, _list, limit, offset, search)


_COLUMNS = "id, name, description, version, node_count, created_at, updated_at"
_INSERT_VERSION = """
INSERT INTO blueprint_versions (blueprint_id, version, document, created_at) VALUES (?, ?, ?, ?)
"""
_UPDATE_BLUEPRINT = """
UPDATE blueprints SET name = ?, description = ?, version = ?, node_count = ?, updated_at = ?
WHERE id = ?
"""


def _meta(row: tuple[Any, ...]) -> BlueprintMeta:
    return BlueprintMeta(
        blueprint_id=row[0],
        name=row[1],
        description=row[2],
        version=row[3],
        node_count=row[4],
        created_at=row[5],
        updated_at=row[6],
    )


def _summary(document: dict[str, Any]) -> tuple[str, str | None, int]:
    return document["name"], document.get("description"), len(document["nodes"])


def _create(conn: sqlite3.Connection, document: dict[str, Any]) -> BlueprintMeta:
    now = now_iso()
    blueprint_id = new_id("bp")
    conn.execute(
        f"INSERT INTO blueprints ({_COLUMNS}) VALUES (?, ?, ?, 1, ?, ?, ?)",
        (blueprint_id, *_summary(document), now, now),
    )
    conn.execute(_INSERT_VERSION, (blueprint_id, 1, _encode(document), now))
    return _fetch_meta(conn, blueprint_id)


def _update(conn: sqlite3.Connection, blueprint_id: str, document: dict[str, Any]) -> BlueprintMeta:
    row = conn.execute("SELECT version FROM blueprints WHERE id = ?", (blueprint_id,)).fetchone()
    if row is None:
        raise BlueprintNotFound(blueprint_id)
    version = row[0] + 1
    now = now_iso()
    name, description, count = _summary(document)
    conn.execute(_UPDATE_BLUEPRINT, (name, description, version, count, now, blueprint_id))
    conn.execute(_INSERT_VERSION, (blueprint_id, version, _encode(document), now))
    return _fetch_meta(conn, blueprint_id)


def _delete(conn: sqlite3.Connection, blueprint_id: str) -> bool:
    conn.execute("DELETE FROM blueprint_versions WHERE blueprint_id = ?", (blueprint_id,))
    return conn.execute("DELETE FROM blueprints WHERE id = ?", (blueprint_id,)).rowcount > 0


def _fetch_meta(conn: sqlite3.Connection, blueprint_id: str) -> BlueprintMeta:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM blueprints WHERE id = ?", (blueprint_id,)
    ).fetchone()
    return _meta(row)


def _get(
    conn: sqlite3.Connection, blueprint_id: str, version: int | None
) -> tuple[BlueprintMeta, dict[str, Any]] | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM blueprints WHERE id = ?", (blueprint_id,)
    ).fetchone()
    if row is None:
        return None
    meta = _meta(row)
    wanted = meta.version if version is None else version
    found = conn.execute(
        "SELECT document, created_at FROM blueprint_versions"
        " WHERE blueprint_id = ? AND version = ?",
        (blueprint_id, wanted),
    ).fetchone()
    if found is None:
        return None
    document = _decode(found[0])
    if wanted == meta.version:
        return meta, document
    # An older version: its own name and size, and the time it was saved.
    name, description, count = _summary(document)
    older = msgspec.structs.replace(
        meta,
        version=wanted,
        name=name,
        description=description,
        node_count=count,
        updated_at=found[1],
    )
    return older, document


def _list(
    conn: sqlite3.Connection, limit: int, offset: int, search: str | None
) -> tuple[int, list[BlueprintMeta]]:
    where, args = "", tuple[str, ...]()
    if search:
        # instr() rather than LIKE, so % and _ in the search are plain characters.
        where = (
            " WHERE instr(casefold(name), ?1) > 0"
            " OR instr(casefold(coalesce(description, '')), ?1) > 0"
        )
        args = (search.casefold(),)
    total, rows = queries.newest_page(conn, "blueprints", _COLUMNS, where, args, limit, offset)
    return total, [_meta(row) for row in rows]
