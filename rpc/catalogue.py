"""Adding a folder of blueprint files to the catalogue at startup (`--load-blueprints`)."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.engine import Engine
from engine.errors import BlueprintInvalid
from rpc.errors import RPCError
from rpc.files import read_blueprint
from store import Store

log = logging.getLogger("blueprint")


async def import_folder(folder: str, store: Store, engine: Engine, max_depth: int = 64) -> int:
    """Create each `*.json` blueprint whose name is new; save a new version of one whose
    document changed. Returns how many were created or updated. Bad files are logged, skipped:
    read with the same checks as batch file sources, so none can stop the server starting."""
    changed = 0
    for path in sorted(Path(folder).glob("*.json")):
        try:
            _, document = read_blueprint(folder, path.name, max_depth)
            engine.validate(document)
        except (RPCError, BlueprintInvalid) as exc:
            log.warning("skipping blueprint file %s: %s", path, exc)
            continue
        existing = await store.blueprints.find_by_name(document["name"])
        stored = {key: document[key] for key in ("name", "description", "nodes") if key in document}
        if existing is None:
            await store.blueprints.create(stored)
        elif existing[1] != stored:
            await store.blueprints.update(existing[0].blueprint_id, stored)
        else:
            continue
        changed += 1
    return changed
