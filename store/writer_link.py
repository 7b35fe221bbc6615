"""The server's end of the writer process (store/writer_process.py): starting it, asking it,
and noticing when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Callable

from store import _wire
from store.errors import StoreUnavailable
from store.pragmas import Durability

log = logging.getLogger("blueprint.store")

START_TIMEOUT_S = 60.0  #: a loaded machine can take seconds to start Python


class WriterProcess:
    """One writer process at a time; a request after it ended starts another."""

    def __init__(self, path: str, durability: Durability) -> None:
        self._path = path
        self._durability = durability
        #: Called when the process says, unasked, that it stored finished statuses.
        self.on_stored: Callable[[], None] = lambda: None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[_wire.Message]] = deque()
        self._starting: asyncio.Task[None] | None = None
        self._requests: _Requests | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the process, if none runs, and wait until its connection is open."""
        if self.running:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        starting = self._starting
        try:
            await asyncio.shield(starting)
        finally:
            if starting.done() and self._starting is starting:
                self._starting = None

    @property
    def running(self) -> bool:
        return (
            self._process is not None
            and self._process.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    def send(self, message: _wire.WriteGroup | _wire.StoreAll) -> asyncio.Future[_wire.Message]:
        """The future answer to `message`: StoreUnavailable if the process ends first."""
        future: asyncio.Future[_wire.Message] = asyncio.get_running_loop().create_future()
        if not self.running or self._requests is None:
            future.set_exception(StoreUnavailable("the writer process is not running"))
            return future
        self._pending.append(future)
        self._requests.write(_wire.frame(message))
        return future

    async def close(self) -> None:
        """End of input: the process finishes what it was asked, then exits."""
        if self._starting is not None:
            await asyncio.wait([self._starting])  # done, failed or cancelled: all the same here
        await self._collect()

    async def _collect(self) -> None:
        process = self._process
        if process is None:
            return
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        await process.wait()
        if self._reader is not None:
            await self._reader

    async def _start(self) -> None:
        await self._collect()  # the one before, which ended
        # The child imports what the parent can: its modules, and the works of ad-hoc writes.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        theirs, ours = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "store.writer_process",
                self._path,
                self._durability.value,
                str(os.getpid()),
                stdin=theirs,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except BaseException:
            os.close(ours)
            raise
        finally:
            os.close(theirs)
        self._requests = _Requests(ours)
        self._process = process
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = await _receive(process)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if not isinstance(ready, _wire.Ready):
            process.kill()
            await process.wait()
            raise StoreUnavailable(
                f"the writer process did not start (exit code {process.returncode}); "
                "its error is above"
            )
        self._reader = asyncio.ensure_future(self._read(process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        try:
            while True:
                message = await _receive(process)
                if message is None:
                    break
                if isinstance(message, _wire.SomeStored):
                    self.on_stored()
                elif self._pending:
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result(message)
        except Exception as exc:  # frames out of step: nothing more can be trusted
            log.error("the writer process's answers cannot be read: %s", exc)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        code = await process.wait()
        if self._pending:
            log.error("the writer process ended (exit code %s) with requests unanswered", code)
        error = StoreUnavailable(f"the writer process ended (exit code {code})")
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)


class _Requests:
    """The pipe to the writer process, written without waiting.

    Not asyncio's pipe transport: once a write finds the pipe full, the transport keeps every
    later write in its buffer until the loop's next turn, and an engine running inline nodes
    holds the loop for tens of milliseconds while the writer process, having read what was in
    the pipe, waits idle. Here each write first tries again to send what is left over."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._left = bytearray()
        self._watching = False
        os.set_blocking(fd, False)
        _wire.widen_pipe(fd)

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            return  # closed: the reader fails what waits for an answer
        self._left += data
        self._send_left()

    def _send_left(self) -> None:
        try:
            while self._left:
                sent = os.write(self._fd, self._left)
                del self._left[:sent]
        except BlockingIOError:
            pass
        except OSError:  # the process is gone; its end of the answers says so
            self._left.clear()
        loop = asyncio.get_running_loop()
        if self._left and not self._watching:
            loop.add_writer(self._fd, self._send_left)
            self._watching = True
        elif not self._left and self._watching:
            loop.remove_writer(self._fd)
            self._watching = False

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._watching:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._watching = False
        os.close(self._fd)  # what is left unsent was never acknowledged
        self._fd = -1


async def _receive(process: asyncio.subprocess.Process) -> _wire.Message | None:
    """The next frame from the process; None once its output has ended."""
    assert process.stdout is not None
    try:
        header = await process.stdout.readexactly(_wire.HEADER_BYTES)
        body = await process.stdout.readexactly(_wire.frame_length(header))
    except asyncio.IncompleteReadError:
        return None
    return _wire.from_writer.decode(body)
