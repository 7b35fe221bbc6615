"""Blueprint files, read only from inside the configured blueprints folder.

Every path is resolved (`..` collapsed, symbolic links followed) before it is checked, so
neither `..`, an absolute path elsewhere, nor a link inside the folder that leads out of it
reaches a file outside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from rpc.errors import ErrorCode, RPCError

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000


def inside(folder: str, given: str) -> Path:
    """The real path of `given` (relative to `folder`, or absolute), which must lie inside it."""
    base = Path(folder).resolve()
    if "\0" in given:
        raise RPCError(ErrorCode.BAD_REQUEST, "A path may not contain NUL")
    real = (base / given).resolve()  # an absolute `given` replaces base
    if not real.is_relative_to(base):
        raise RPCError(
            ErrorCode.FORBIDDEN,
            f"{given!r} is outside the blueprints folder; only files inside it can be read",
        )
    return real


def read_blueprint(folder: str, given: str) -> tuple[str, Any]:
    """(path relative to the folder, decoded document) of one file."""
    path = inside(folder, given)
    if not path.is_file():
        raise RPCError(ErrorCode.NOT_FOUND, f"No blueprint file {given!r} in the blueprints folder")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RPCError(ErrorCode.PAYLOAD_TOO_LARGE, f"{given!r} is over {MAX_FILE_BYTES} bytes")
    try:
        document = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{given!r} is not valid JSON: {exc}") from None
    return str(path.relative_to(Path(folder).resolve())), document


def blueprint_files(folder: str, given: str) -> list[str]:
    """The `*.json` files of a folder inside the blueprints folder, by name, each checked."""
    path = inside(folder, given)
    if not path.is_dir():
        raise RPCError(ErrorCode.NOT_FOUND, f"No folder {given!r} in the blueprints folder")
    files = sorted(entry for entry in path.glob("*.json"))
    if len(files) > MAX_FILES:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{given!r} holds over {MAX_FILES} blueprint files")
    base = Path(folder).resolve()
    return [str(inside(folder, str(entry)).relative_to(base)) for entry in files]
