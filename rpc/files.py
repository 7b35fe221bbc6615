"""Blueprint files, read only from inside the configured blueprints folder.

Every path is resolved (`..` collapsed, symbolic links followed) before it is checked, so
neither `..`, an absolute path elsewhere, nor a link inside the folder that leads out of it
reaches a file outside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from rpc._jsondepth import exceeds_depth
from rpc.errors import ErrorCode, RPCError

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000


def inside(folder: str, given: str) -> Path:
    """The real path of `given` (relative to `folder`, or absolute), which must lie inside it."""
    base = Path(folder).resolve()
    if "\0" in given:
        raise RPCError(ErrorCode.BAD_REQUEST, "A path may not contain NUL")
    try:
        real = (base / given).resolve()  # an absolute `given` replaces base
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links (before 3.13)
        raise unreadable(given, exc) from None
    if not real.is_relative_to(base):
        raise RPCError(
            ErrorCode.FORBIDDEN,
            f"{given!r} is outside the blueprints folder; only files inside it can be read",
        )
    return real


def read_blueprint(folder: str, given: str, max_depth: int) -> tuple[str, Any]:
    """(path relative to the folder, decoded document) of one file; a file nesting deeper
    than `max_depth` is refused as the same input on the wire would be."""
    path = inside(folder, given)
    try:
        if not path.is_file():
            message = f"No blueprint file {given!r} in the blueprints folder"
            raise RPCError(ErrorCode.NOT_FOUND, message)
        if path.stat().st_size > MAX_FILE_BYTES:
            message = f"{given!r} is over {MAX_FILE_BYTES} bytes"
            raise RPCError(ErrorCode.PAYLOAD_TOO_LARGE, message)
        raw = path.read_bytes()
    except OSError as exc:
        raise unreadable(given, exc) from None
    if exceeds_depth(raw, max_depth):
        message = f"{given!r} nests deeper than the limit of {max_depth} levels"
        raise RPCError(ErrorCode.BAD_REQUEST, message)
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{given!r} is not valid JSON: {exc}") from None
    return str(path.relative_to(Path(folder).resolve())), document


def blueprint_files(folder: str, given: str) -> list[str]:
    """The `*.json` files of a folder inside the blueprints folder, by name, each checked."""
    path = inside(folder, given)
    try:
        if not path.is_dir():
            message = f"No folder {given!r} in the blueprints folder"
            raise RPCError(ErrorCode.NOT_FOUND, message)
        files = sorted(entry for entry in path.glob("*.json"))
    except OSError as exc:
        raise unreadable(given, exc) from None
    if len(files) > MAX_FILES:
        raise RPCError(ErrorCode.BAD_REQUEST, f"{given!r} holds over {MAX_FILES} blueprint files")
    base = Path(folder).resolve()
    return [str(inside(folder, str(entry)).relative_to(base)) for entry in files]


def unreadable(given: str, exc: Exception) -> RPCError:
    """A path the system will not read (a name too long, a loop of links): the caller's."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return RPCError(ErrorCode.BAD_REQUEST, f"{given!r} cannot be read: {reason}")
