"""The writer process: the one connection that writes the execution log, in a process of its own.

Writing a step costs about as much Python as running it. In one process the engine and the
writer's thread take turns for the GIL; here the writer runs on another core while the engine
goes on, and the engine's share is encoding each group once (store/writer.py).

`python -m store.writer_process PATH DURABILITY PARENT_PID`: requests come on stdin and answers
go out on the stdout it started with (store/_wire.py); anything printed goes to stderr. It
stops at the end of its input, or, on Linux, the moment its parent dies (PR_SET_PDEATHSIG):
after a crash, nothing may commit behind the back of the server that restarts on the file.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import pickle
import select
import signal
import sqlite3
import sys

from store import _wire
from store.errors import StoreUnavailable
from store.groups import Committed, Write, WriterMemory, store_finished, write_group_or_each
from store.pragmas import Durability, connect

log = logging.getLogger("blueprint.store")

_STORE_AT_ONCE = 8  #: finished statuses stored per transaction, between the engine's groups
_UNSTORED_LIMIT = 100_000  #: beyond this many waiting, more are read the long way
_MERGE_EVENTS = 20_000  #: groups waiting are merged into one transaction up to this many events
_NOTHING = Committed(set())
_PR_SET_PDEATHSIG = 1


class Pipe:
    """Frames in from a file descriptor, and out to another."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._buffer = bytearray()

    def _frame_at_hand(self) -> bool:
        if len(self._buffer) < _wire.HEADER_BYTES:
            return False
        length = _wire.frame_length(self._buffer[: _wire.HEADER_BYTES])
        return len(self._buffer) >= _wire.HEADER_BYTES + length

    def waiting(self) -> bool:
        """Whether a whole request, or the end of input, is here, without blocking: at the end
        the server is closing, and statuses not yet stored wait for the next start."""
        while not self._frame_at_hand():
            readable, _, _ = select.select([self._read_fd], [], [], 0)
            if not readable:
                return False
            if not self._fill():
                return True
        return True

    def receive(self) -> bytes | None:
        """The next request, blocking; None at the end of input."""
        while not self._frame_at_hand():
            if not self._fill():
                return None
        length = _wire.frame_length(self._buffer[: _wire.HEADER_BYTES])
        end = _wire.HEADER_BYTES + length
        body = bytes(self._buffer[_wire.HEADER_BYTES : end])
        del self._buffer[:end]
        return body

    def _fill(self) -> bool:
        chunk = os.read(self._read_fd, 1 << 20)
        self._buffer += chunk
        return bool(chunk)

    def send(self, message: _wire.Message) -> None:
        view = memoryview(_wire.frame(message))
        while view:
            view = view[os.write(self._write_fd, view) :]


class WriterLoop:
    """Write each group as it comes; between them, store finished statuses."""

    def __init__(self, conn: sqlite3.Connection, pipe: Pipe) -> None:
        self._conn = conn
        self._pipe = pipe
        self._memory = WriterMemory()
        #: Finished executions whose status is not stored yet (an ordered set).
        self._unstored: dict[str, None] = {}
        self._refusing = False  #: a group failed, and the server has not sent it again yet

    def run(self) -> None:
        self._pipe.send(_wire.Ready())
        ahead: _wire.WriteGroup | _wire.StoreAll | None = None  # read, not yet answered
        while True:
            if ahead is None:
                if self._unstored and not self._pipe.waiting():
                    self._store_some()
                    self._pipe.send(_wire.SomeStored())
                    continue
                ahead = self._receive()
                if ahead is None:
                    return
            request, ahead = ahead, None
            if isinstance(request, _wire.StoreAll):
                while self._unstored:
                    self._store_some()
                self._pipe.send(_wire.AllStored())
                continue
            if self._refusing and not request.resume:
                self._pipe.send(_wire.GroupFailed(error="not tried: an earlier group failed"))
                continue
            self._refusing = False
            groups = [request]
            events = len(request.rows)
            # What else has come goes in the same transaction: one commit for all of it.
            while events < _MERGE_EVENTS and self._pipe.waiting():
                ahead = self._receive()
                if not isinstance(ahead, _wire.WriteGroup) or ahead.resume:
                    break
                groups.append(ahead)
                events += len(ahead.rows)
                ahead = None
            for answer in self._write(groups):
                self._pipe.send(answer)

    def _receive(self) -> _wire.WriteGroup | _wire.StoreAll | None:
        body = self._pipe.receive()
        return None if body is None else _wire.to_writer.decode(body)

    def _write(self, groups: list[_wire.WriteGroup]) -> list[_wire.Message]:
        """The groups in one transaction, and an answer for each."""
        writes = [[_unpickled_write(blob) for blob in group.writes] for group in groups]
        runnable = [w for each in writes for w in each if w.error is None]
        rows = groups[0].rows if len(groups) == 1 else [r for g in groups for r in g.rows]
        try:
            committed = write_group_or_each(self._conn, rows, runnable, self._memory)
        except Exception as exc:
            # Later groups must not land before these: refuse them until the server, having
            # them all back, sends them again.
            self._refusing = True
            failed = _wire.GroupFailed(error=f"{type(exc).__name__}: {exc}")
            return [failed] * len(groups)
        if len(self._unstored) < _UNSTORED_LIMIT:
            self._unstored.update(dict.fromkeys(committed.finished))
        answers: list[_wire.Message] = [
            _wire.GroupWritten(committed=_NOTHING, writes=[_outcome(w) for w in each])
            for each in writes[:-1]
        ]
        last = [_outcome(w) for w in writes[-1]]
        answers.append(_wire.GroupWritten(committed=committed, writes=last))
        return answers

    def _store_some(self) -> None:
        """Store some finished statuses while nothing else waits: the engine's groups go
        first; until then a status read takes the long way."""
        batch = list(itertools.islice(self._unstored, _STORE_AT_ONCE))
        try:
            store_finished(self._conn, batch)
        except Exception as exc:
            log.warning("storing finished statuses failed (read the long way): %s", exc)
        for execution_id in batch:
            self._unstored.pop(execution_id, None)


def _unpickled_write(blob: bytes) -> Write:
    try:
        work, args = pickle.loads(blob)
    except Exception as exc:
        write = Write(_never, ())
        write.error = StoreUnavailable(f"the writer process cannot load this write: {exc!r}")
        return write
    return Write(work, args)


def _never(conn: sqlite3.Connection) -> None:
    raise AssertionError("not run")


def _outcome(write: Write) -> _wire.WriteOutcome:
    if write.error is None:
        try:
            return _wire.WriteOutcome(ok=True, pickled=pickle.dumps(write.result))
        except Exception as exc:
            error: BaseException = StoreUnavailable(
                f"the result of {_name(write)} cannot be sent back: {exc!r}"
            )
    else:
        error = write.error
    try:
        return _wire.WriteOutcome(ok=False, pickled=pickle.dumps(error))
    except Exception:
        fallback = StoreUnavailable(f"{_name(write)} failed: {type(error).__name__}: {error}")
        return _wire.WriteOutcome(ok=False, pickled=pickle.dumps(fallback))


def _name(write: Write) -> str:
    return getattr(write.work, "__qualname__", repr(write.work))


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the line above
        os._exit(1)


def main(argv: list[str]) -> int:
    path, durability, parent_pid = argv
    _die_with_parent(int(parent_pid))
    # The server stops on Ctrl-C and then writes what it has queued: through this process,
    # which the terminal signals too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not break the frames
    _wire.widen_pipe(answers)  # the server widens the one it writes to
    logging.basicConfig(level=logging.WARNING, format="writer process: %(levelname)s %(message)s")
    conn = connect(path, Durability(durability))
    gc.freeze()  # what is loaded lives as long as the process
    try:
        WriterLoop(conn, Pipe(0, answers)).run()
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
