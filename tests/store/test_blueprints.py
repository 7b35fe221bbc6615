"""Blueprints and their versions, saved through the writer and read back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from store import BlueprintNotFound
from store import blueprints as blueprints_module
from tests.store._events import read


def document(name: str = "Nightly report", description: str | None = None, nodes: int = 1):
    doc: dict[str, Any] = {
        "name": name,
        "nodes": [{"id": f"n{i}", "type": "noop"} for i in range(nodes)],
    }
    if description is not None:
        doc["description"] = description
    return doc


async def create_apart(store, *documents) -> list[str]:
    """Create each document a few milliseconds after the last, so their times differ."""
    ids = []
    for doc in documents:
        ids.append((await store.blueprints.create(doc)).blueprint_id)
        await asyncio.sleep(0.003)
    return ids


async def test_create_returns_version_1_and_its_summary(store):
    meta = await store.blueprints.create(document(description="d", nodes=3))
    assert meta.blueprint_id.startswith("bp_")
    assert (meta.name, meta.description, meta.version, meta.node_count) == (
        "Nightly report",
        "d",
        1,
        3,
    )
    assert meta.created_at == meta.updated_at


async def test_get_returns_the_document_as_saved(store):
    saved = document(description="with ünïcode ✓")
    meta = await store.blueprints.create(saved)
    got_meta, got = await store.blueprints.get(meta.blueprint_id)
    assert got == saved
    assert got_meta == meta


async def test_update_makes_a_new_version_and_keeps_the_old_one(store):
    meta = await store.blueprints.create(document("v1", nodes=1))
    await asyncio.sleep(0.003)
    newer = await store.blueprints.update(meta.blueprint_id, document("v2", nodes=2))
    assert (newer.blueprint_id, newer.version, newer.name, newer.node_count) == (
        meta.blueprint_id,
        2,
        "v2",
        2,
    )
    assert newer.created_at == meta.created_at < newer.updated_at

    assert (await store.blueprints.get(meta.blueprint_id))[1]["name"] == "v2"
    old_meta, old = await store.blueprints.get(meta.blueprint_id, 1)
    assert (old_meta.version, old["name"], len(old["nodes"])) == (1, "v1", 1)
    assert (await store.blueprints.get(meta.blueprint_id, 2))[1]["name"] == "v2"


@pytest.mark.parametrize("version", [0, 3, -1])
async def test_get_of_a_version_that_does_not_exist_is_not_found(store, version):
    meta = await store.blueprints.create(document())
    await store.blueprints.update(meta.blueprint_id, document())
    with pytest.raises(BlueprintNotFound, match=f"{meta.blueprint_id} version {version}"):
        await store.blueprints.get(meta.blueprint_id, version)


async def test_get_of_an_unknown_blueprint_is_not_found(store):
    with pytest.raises(BlueprintNotFound, match="No blueprint bp_404"):
        await store.blueprints.get("bp_404")


async def test_update_of_an_unknown_blueprint_is_not_found_and_saves_nothing(store, path):
    with pytest.raises(BlueprintNotFound):
        await store.blueprints.update("bp_404", document())
    assert read(path, "SELECT count(*) FROM blueprint_versions") == [(0,)]


async def test_delete_removes_the_blueprint_and_every_version(store, path):
    meta = await store.blueprints.create(document())
    await store.blueprints.update(meta.blueprint_id, document())
    kept = await store.blueprints.create(document("kept"))

    assert await store.blueprints.delete(meta.blueprint_id) is True
    with pytest.raises(BlueprintNotFound):
        await store.blueprints.get(meta.blueprint_id)
    with pytest.raises(BlueprintNotFound):
        await store.blueprints.get(meta.blueprint_id, 1)
    assert read(path, "SELECT blueprint_id FROM blueprint_versions") == [(kept.blueprint_id,)]
    assert (await store.blueprints.list(20, 0, None))[0] == 1


async def test_delete_of_an_unknown_blueprint_answers_false(store):
    assert await store.blueprints.delete("bp_404") is False


async def test_list_is_newest_first_with_total_limit_and_offset(store):
    ids = await create_apart(store, *(document(f"bp {n}") for n in range(5)))
    total, metas = await store.blueprints.list(20, 0, None)
    assert (total, [m.blueprint_id for m in metas]) == (5, ids[::-1])
    total, metas = await store.blueprints.list(2, 1, None)
    assert (total, [m.blueprint_id for m in metas]) == (5, [ids[3], ids[2]])
    assert await store.blueprints.list(2, 5, None) == (5, [])


async def test_list_shows_the_newest_version_summary(store):
    meta = await store.blueprints.create(document("first", nodes=1))
    await store.blueprints.update(meta.blueprint_id, document("second", "now described", 4))
    _, (listed,) = await store.blueprints.list(20, 0, None)
    assert (listed.name, listed.description, listed.version, listed.node_count) == (
        "second",
        "now described",
        2,
        4,
    )


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("nightly", ["Nightly report"]),
        ("REPORT", ["Weekly", "Nightly report"]),  # Weekly's description says "report"
        ("über", ["ÜBER-Export"]),
        ("strasse", ["Straße"]),  # casefold, not just lower
        ("ÉTÉ", ["été"]),
        ("50%", ["50% off"]),  # % is a plain character, not a wildcard
        ("a_b", []),  # so is _
        ("nothing like it", []),
    ],
)
async def test_list_search_matches_name_or_description_ignoring_case(store, search, expected):
    await create_apart(
        store,
        document("Nightly report"),
        document("Weekly", "a longer Report"),
        document("ÜBER-Export"),
        document("Straße"),
        document("été"),
        document("50% off"),
        document("axb"),
    )
    total, metas = await store.blueprints.list(20, 0, search)
    assert (total, [m.name for m in metas]) == (len(expected), expected)


async def test_search_total_counts_past_the_limit(store):
    await create_apart(store, *(document(f"match {n}") for n in range(3)), document("other"))
    total, metas = await store.blueprints.list(1, 0, "MATCH")
    assert (total, [m.name for m in metas]) == (3, ["match 2"])


async def test_find_by_name_is_exact_and_newest(store):
    older, newer = await create_apart(store, document("Same"), document("Same"))
    found = await store.blueprints.find_by_name("Same")
    assert found is not None
    assert found[0].blueprint_id == newer != older
    assert await store.blueprints.find_by_name("same") is None


async def test_list_is_newest_first_within_one_millisecond(store, monkeypatch):
    # Creation times are to the millisecond and ids end in random characters; fix both so
    # the older of two same-millisecond blueprints has the larger id.
    ids = iter(["bp_1733047200000_zzzzz", "bp_1733047200000_aaaaa"])
    monkeypatch.setattr(blueprints_module, "now_iso", lambda: "2024-12-01T10:00:00.000Z")
    monkeypatch.setattr(blueprints_module, "new_id", lambda prefix: next(ids))
    older = await store.blueprints.create(document("older"))
    newer = await store.blueprints.create(document("newer"))
    _, metas = await store.blueprints.list(20, 0, None)
    assert [m.blueprint_id for m in metas] == [newer.blueprint_id, older.blueprint_id]
