"""Installs the Node tRPC reference server (bench/node_trpc/) for the HTTP benchmark.

npm 11 runs no install scripts unless told to, and better-sqlite3's script would try to fetch a
prebuilt binary from GitHub, which a machine that reaches only the registries cannot. So the
packages are installed with their scripts off, and the one native module is compiled here with
the node-gyp the package pins, against the headers of the Node that will run it when they are
on disk (they usually are: /usr/include/node), so nothing is downloaded but npm packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.common import REPO, say

HERE = REPO / "bench" / "node_trpc"
SERVER = HERE / "server.mjs"
_STAMP = HERE / "node_modules" / ".package-lock.json"
_MODULE = HERE / "node_modules" / "better-sqlite3"
_BINARY = _MODULE / "build" / "Release" / "better_sqlite3.node"
_NODE_GYP = HERE / "node_modules" / "node-gyp" / "bin" / "node-gyp.js"


class NodeServerUnavailable(Exception):
    """Why the Node variant cannot run here; the benchmark goes on without it."""


def prepare() -> str:
    """The node executable, with the server's packages installed and built; or raises
    NodeServerUnavailable saying what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeServerUnavailable("node and npm are not on PATH")
    lock = HERE / "package-lock.json"
    if not _STAMP.exists() or _STAMP.stat().st_mtime < lock.stat().st_mtime:
        say("  installing bench/node_trpc (npm ci)")
        _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
    if not _BINARY.exists():
        say("  compiling better-sqlite3 for the Node tRPC server (about 2 minutes, once)")
        command = [node, str(_NODE_GYP), "rebuild", "--release", f"--jobs={os.cpu_count() or 1}"]
        headers = _node_headers(node)
        if headers is not None:
            command.append(f"--nodedir={headers}")
        _run(command, cwd=_MODULE)
    return node


def version(node: str) -> str:
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _node_headers(node: str) -> Path | None:
    """The install prefix whose include/node has this Node's headers, if it is on disk."""
    prefix = Path(os.path.realpath(node)).parent.parent
    return prefix if (prefix / "include" / "node" / "node_api.h").exists() else None


def _run(command: list[str], cwd: Path = HERE) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise NodeServerUnavailable(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n" + "\n".join(tail)
        )
