"""The messages between the engine process and the writer process, and how they are framed.

Each message is JSON, as the log stores it, so whatever the log could store crosses unchanged;
a frame is its length (4 bytes, big-endian) and then the message. The writer process answers
every request, in the order it came; it also says, unasked, when it has stored finished
statuses.

An ad-hoc write crosses as a pickle of its function (by module and name) and arguments, and
its result or error comes back the same way: both ends are this code base, over a pipe only
they hold.
"""

from __future__ import annotations

import contextlib
import fcntl

import msgspec

from store.groups import Committed, GroupRow

HEADER_BYTES = 4
PIPE_BYTES = 1 << 20  #: Linux's default limit for an unprivileged process
#: A frame larger than this is refused: no honest group comes near it (a group holds what
#: the engine did while the writer wrote the one before, and an input is at most a few MB).
MAX_FRAME_BYTES = 1 << 30


class Message(msgspec.Struct, tag_field="kind", frozen=True):
    pass


class WriteGroup(Message, tag="group", frozen=True):
    rows: list[GroupRow]
    writes: list[bytes]  #: each a pickled (work, args)
    #: After a failure the writer process refuses every group until one comes with this set:
    #: the server's retry of what failed, so the log stays a prefix of what the engine did.
    resume: bool = False


class StoreAll(Message, tag="idle", frozen=True):
    """Store every finished status still waiting, then answer."""


class Ready(Message, tag="ready", frozen=True):
    """Sent once, when the writer process's connection is open and configured."""


class WriteOutcome(msgspec.Struct, frozen=True, array_like=True):
    ok: bool
    pickled: bytes  #: the result, or the exception


class GroupWritten(Message, tag="written", frozen=True):
    committed: Committed
    writes: list[WriteOutcome]


class GroupFailed(Message, tag="failed", frozen=True):
    """Nothing of the group was written (the transaction rolled back, or it was refused after
    one that was); it may be sent again."""

    error: str


class AllStored(Message, tag="stored-all", frozen=True):
    pass


class SomeStored(Message, tag="stored", frozen=True):
    """Unasked: finished statuses were stored, so readers may now find them."""


ToWriter = WriteGroup | StoreAll
FromWriter = Ready | GroupWritten | GroupFailed | AllStored | SomeStored

_encode = msgspec.json.Encoder().encode


def frame(message: Message) -> bytes:
    body = _encode(message)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def frame_length(header: bytes | bytearray) -> int:
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {length} bytes from the other process: out of step")
    return length


to_writer = msgspec.json.Decoder(ToWriter)
from_writer = msgspec.json.Decoder(FromWriter)


def widen_pipe(fd: int) -> None:
    """A group is often a few hundred KB. Through a pipe's default 64 KB, the rest waits for
    the other end to read and the writing end to come back to it: the server's loop, which an
    engine running inline nodes holds for milliseconds. So the pipes take a whole group, where
    Linux allows."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # not a pipe, or over the system's limit
            fcntl.fcntl(fd, set_size, PIPE_BYTES)
