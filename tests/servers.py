"""Real servers for tests: uvicorn on a free loopback port, in a thread or in a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import uvicorn

from rpc.cli import uvicorn_config
from rpc.router import RouterTree
from rpc.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(settings: Settings, router: RouterTree | None = None) -> Iterator[str]:
    """Serve create_app(settings, router) exactly as `blueprint serve` does; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn_config(settings, router)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class ServerProcess:
    """`blueprint serve` as a child process, for tests that kill or restart it."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        """Passing `port` leaves --port off the command line (to test BLUEPRINT_PORT)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        port_args = [] if port else ["--port", str(self.port)]
        command = [sys.executable, "-m", "rpc.cli", "serve", *port_args, *args]
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"blueprint-test-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server not ready: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()
