"""`--load-blueprints`: a folder's good blueprint files are added; bad ones are skipped, and
none can keep the server from starting."""

from __future__ import annotations

import json
from pathlib import Path

from engine.engine import Engine
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from rpc.catalogue import import_folder
from store import Store


async def test_bad_files_are_skipped_and_good_ones_added(tmp_path: Path):
    folder = tmp_path / "blueprints"
    folder.mkdir()
    good = {"name": "good", "nodes": [{"id": "a", "type": "noop"}]}
    (folder / "good.json").write_text(json.dumps(good))
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "broken.json").write_text("{not json")
    (folder / "invalid.json").write_text(json.dumps({"name": "x", "nodes": [{"id": "a"}]}))
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps({"name": "outside", "nodes": [{"id": "a", "type": "noop"}]}))
    (folder / "link.json").symlink_to(outside)

    store = await Store.open(str(tmp_path / "bp.db"))
    registry = NodeRegistry()
    register_builtins(registry)
    engine = Engine(registry, store.writer)
    try:
        assert await import_folder(str(folder), store, engine) == 1
        assert await import_folder(str(folder), store, engine) == 0  # unchanged: no new version
        assert await store.blueprints.find_by_name("good") is not None
        assert await store.blueprints.find_by_name("outside") is None
    finally:
        await engine.close()
        await store.close()
