"""HTTP benchmarks: execution.getExecutionStatus through a real server process, driven by wrk.

For each database size N, each pinning mode and each server variant, the harness starts a
server on a free port, checks that a status read answers 200 "completed" (and that the answer
is the same JSON whichever server gives it), warms it up, then runs wrk `runs` times, checking
the server's log for ERROR lines after each run.

Variants: (A) `blueprint serve` with default settings (finished statuses cached, 64 MiB);
(B) the same with the cache off (`--status-cache-bytes 0`), run only when `serve` has the
flag; the baseline, bench/baseline_starlette.py under uvicorn (httptools, uvloop); the
official Node tRPC server, bench/node_trpc/server.mjs (the same queries and JSON); Starlette
alone, bench/starlette_fixed.py, the baseline's framework answering a fixed status with no
database (the most any Starlette + aiosqlite endpoint can serve here); and the ceiling,
bench/ceiling_server.py, which answers a fixed status doing no work at all.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import node_server
from bench.common import REPO, BenchError, ForeignLoad, free_port, say, stop, summary, track
from bench.seed import seed_file
from store.keys import KeyAdmin

LUA = REPO / "bench" / "status.lua"
PATH_PREFIX = "/api/trpc/execution.getExecutionStatus?input="
THREADS, CONNECTIONS = 1, 32
SERVER_CPU, WRK_CPU = "0", "1"
CACHE_FLAG = "--status-cache-bytes"


@dataclass(frozen=True)
class Variant:
    key: str  #: "A", "B" or "baseline"
    label: str

    def command(self, port: int, db: Path) -> tuple[list[str], dict[str, str]]:
        host = ["--host", "127.0.0.1", "--port", str(port)]
        if self.key == "node":
            return ["node", str(node_server.SERVER), str(port), str(db)], {}
        if self.key == "ceiling":
            return [sys.executable, "-m", "bench.ceiling_server", str(port)], {
                "BENCH_CEILING_DB": str(db)
            }
        if self.key in UVICORN_APPS:
            app, variable = UVICORN_APPS[self.key]
            return [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                *host,
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                "--no-access-log",
            ], {variable: str(db)}
        command = [sys.executable, "-m", "rpc.cli", "serve", *host, "--db", str(db)]
        # Keys on, as in production (each request pays for its check); the rate limit off, as
        # one client making thousands of calls a second is what this measures.
        command += ["--log-level", "warning", "--rate-limit", "off"]
        if self.key == "B":
            command += [CACHE_FLAG, "0"]
        return command, {}


VARIANT_A = Variant("A", "A: blueprint, cache on")
VARIANT_B = Variant("B", "B: blueprint, cache off")
BASELINE = Variant("baseline", "baseline: Starlette + aiosqlite")
NODE = Variant("node", "Node tRPC server + better-sqlite3")
STARLETTE = Variant("starlette", "Starlette alone: fixed answer, no database")
CEILING = Variant("ceiling", "ceiling: fixed answer, no work")
#: The variants served by uvicorn: their app, and the variable that names the seeded file.
UVICORN_APPS = {
    "baseline": ("bench.baseline_starlette:app", "BENCH_BASELINE_DB"),
    "starlette": ("bench.starlette_fixed:app", "BENCH_STARLETTE_DB"),
}


def status_path(execution_id: str) -> str:
    payload = json.dumps({"json": {"executionId": execution_id}}, separators=(",", ":"))
    return PATH_PREFIX + urllib.parse.quote(payload, safe="")


# Tools


def ensure_wrk() -> str:
    """The path of wrk, installing the Debian package `wrk` first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "wrk"]
    update = ["apt-get", "update"]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise BenchError(
                "wrk is missing and cannot be installed without root: apt-get install wrk"
            )
        install, update = ["sudo", *install], ["sudo", *update]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"wrk not found: installing it with `{' '.join(install)}`")
    if subprocess.run(install, env=env, check=False).returncode != 0:
        say(f"that failed: refreshing the package lists with `{' '.join(update)}` and retrying")
        subprocess.run(update, env=env, check=False)
        subprocess.run(install, env=env, check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is missing and `apt-get install -y wrk` did not install it")
    say(f"wrk installed: {found}")
    return found


def can_pin() -> bool:
    return bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


def has_cache_flag() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "rpc.cli", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise BenchError(f"`blueprint serve --help` failed:\n{done.stdout}{done.stderr}")
    return CACHE_FLAG in done.stdout


def node_variant() -> tuple[list[Variant], str]:
    """The Node tRPC server, installed and built first if need be; or none, and why."""
    try:
        node = node_server.prepare()
    except node_server.NodeServerUnavailable as exc:
        say(f"  note: the Node tRPC server is skipped: {exc}")
        return [], f"not run: {exc}"
    return [NODE], f"run: Node {node_server.version(node)}"


# Servers


@dataclass
class Server:
    variant: Variant
    db: Path
    pinned: bool
    log_path: Path
    key: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        command, env = self.variant.command(self.port, self.db)
        if self.pinned:
            command = ["taskset", "-c", SERVER_CPU, *command]
        with self.log_path.open("wb") as log:
            self.process = track(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.variant.label} exited with code {self.process.returncode} before "
                    f"answering on {self.url}; its output:\n{self.output()}\ncommand: {command}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise BenchError(
            f"{self.variant.label} did not answer /healthz on {self.url} within {timeout:.0f} s; "
            f"its output:\n{self.output()}\ncommand: {command}"
        )

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive_and_clean(self) -> None:
        errors = [line for line in self.output().splitlines() if re.search(r"\bERROR\b", line)]
        if errors:
            raise BenchError(
                f"{self.variant.label}: ERROR lines in its log ({self.log_path}):\n"
                + "\n".join(errors[:20])
            )
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"{self.variant.label} died during the run:\n{self.output()}")

    def status(self, execution_id: str) -> tuple[dict[str, Any], int]:
        """One read; fails loudly unless it answers 200 with status "completed"."""
        try:
            response = httpx.get(
                self.url + status_path(execution_id),
                headers={"authorization": f"Bearer {self.key}"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            raise BenchError(f"{self.variant.label}: status read failed: {exc!r}") from exc
        if response.status_code != 200:
            raise BenchError(
                f"{self.variant.label}: status read of {execution_id} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        try:
            status = response.json()["result"]["data"]["json"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"{self.variant.label}: unexpected answer: {response.text[:500]}"
            ) from exc
        if status.get("status") != "completed":
            raise BenchError(
                f"{self.variant.label}: {execution_id} is {status.get('status')!r}, not 'completed'"
            )
        return status, len(response.content)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


# wrk


def api_key(db: Path) -> str:
    """A read-only key in the seeded file, sent with every request (the baseline ignores it)."""
    return KeyAdmin(str(db)).create(f"bench-{time.time_ns()}", ["executions:read"])


def run_wrk(
    wrk: str, url: str, paths_file: Path, duration: float, pinned: bool, key: str
) -> dict[str, Any]:
    command = [
        wrk,
        "-H",
        f"Authorization: Bearer {key}",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(paths_file),
    ]
    if pinned:
        command = ["taskset", "-c", WRK_CPU, *command]
    process = track(
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    )
    try:
        out, err = process.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 60:.0f} s") from None
    finally:
        stop(process, grace=2)
    text = out.decode(errors="replace")
    marker = re.search(r"^BENCH_RESULT (\{.*\})$", text, re.MULTILINE)
    if process.returncode != 0 or marker is None:
        raise BenchError(
            f"wrk failed (exit {process.returncode}): {' '.join(command)}\n{text}"
            f"{err.decode(errors='replace')}"
        )
    result: dict[str, Any] = json.loads(marker.group(1))
    result["requests_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
    result["wrk_output"] = text[: marker.start()].rstrip()
    if result["errors"]["status"]:
        raise BenchError(
            f"wrk saw {result['errors']['status']} answers that were not 2xx or 3xx:\n{text}"
        )
    return result


# The benchmark


def run_config(
    wrk: str,
    variant: Variant,
    db: Path,
    ids: list[str],
    paths_file: Path,
    pinned: bool,
    settings: dict[str, Any],
    reference: dict[str, Any],
    logs_dir: Path,
) -> dict[str, Any]:
    mode = "pinned" if pinned else "unpinned"
    label = f"{variant.label}, N={len(ids):,}, {mode}"
    log_path = logs_dir / f"{variant.key}-{len(ids)}-{mode}.log"
    key = api_key(db)
    server = Server(variant, db, pinned, log_path, key)
    try:
        server.start()
        # The same execution must read as the same JSON from every server (but those with a
        # fixed answer, which is some execution's).
        probe = ids[len(ids) // 2]
        status, size = server.status(probe)
        if variant in (STARLETTE, CEILING):
            pass
        elif probe not in reference:
            reference[probe] = status
        elif status != reference[probe]:
            raise BenchError(f"{label}: the status of {probe} differs from the other servers'")
        run_wrk(wrk, server.url, paths_file, settings["warmup_s"], pinned, key)
        server.check_alive_and_clean()
        runs = []
        for i in range(settings["runs"]):
            server.status(random.choice(ids))
            load = ForeignLoad([server.process.pid] if server.process else [])
            result = run_wrk(wrk, server.url, paths_file, settings["duration_s"], pinned, key)
            result["foreign_cpu"] = round(load.fraction(), 3)
            server.check_alive_and_clean()
            runs.append(result)
            lat = result["latency_us"]
            say(
                f"  {label}: run {i + 1}/{settings['runs']}: "
                f"{result['requests_per_s']:,.0f} req/s, p50 {lat['p50'] / 1000:.2f} ms, "
                f"p99 {lat['p99'] / 1000:.2f} ms; other load {result['foreign_cpu']:.0%}"
            )
    finally:
        server.stop()
    return {
        "variant": variant.key,
        "label": variant.label,
        "n": len(ids),
        "pinned": pinned,
        "response_bytes": size,
        "runs": runs,
        "requests_per_s": summary([r["requests_per_s"] for r in runs]),
        "p50_us": summary([r["latency_us"]["p50"] for r in runs]),
        "p99_us": summary([r["latency_us"]["p99"] for r in runs]),
        "foreign_cpu_max": max(r["foreign_cpu"] for r in runs),
    }


def run_http(quick: bool, runs: int, duration: float) -> dict[str, Any]:
    wrk = ensure_wrk()
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    sizes = [1_000, 10_000] if quick else [1_000, 100_000]
    pin_modes = [True, False] if can_pin() else [False]
    cache_flag = has_cache_flag()
    node, node_note = node_variant()
    variants = [
        VARIANT_A,
        *([VARIANT_B] if cache_flag else []),
        BASELINE,
        *node,
        STARLETTE,
        CEILING,
    ]
    settings = {
        "threads": THREADS,
        "connections": CONNECTIONS,
        "duration_s": duration,
        "warmup_s": 1.0 if quick else 2.0,
        "runs": runs,
        "server_cpu": SERVER_CPU,
        "wrk_cpu": WRK_CPU,
    }
    results: dict[str, Any] = {
        "settings": settings,
        "wrk": (wrk_version.stdout + wrk_version.stderr).splitlines()[:1],
        "status_cache_flag": cache_flag,
        "variant_b": "run"
        if cache_flag
        else f"not run: `blueprint serve` has no {CACHE_FLAG} flag, so the cache cannot be "
        "turned off from the command line",
        "node": node_note,
        "pinning": "run" if len(pin_modes) == 2 else "not run: needs taskset and 2 CPUs",
        "seeds": {},
        "configs": [],
    }
    if not cache_flag:
        say(f"  note: variant B (cache off) skipped: `blueprint serve` has no {CACHE_FLAG} flag")
    reference: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        for n in sizes:
            db, info = seed_file(tmp, n)
            ids = info.pop("ids")
            paths_file = tmp / f"paths-{n}.txt"
            paths_file.write_text("".join(status_path(i) + "\n" for i in ids))
            results["seeds"][str(n)] = info
            for pinned in pin_modes:
                for variant in variants:
                    results["configs"].append(
                        run_config(
                            wrk, variant, db, ids, paths_file, pinned, settings, reference, tmp
                        )
                    )
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
