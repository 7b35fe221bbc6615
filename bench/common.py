"""What every benchmark shares: errors, statistics, the machine's description, child processes."""

from __future__ import annotations

import atexit
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ENGINE_TARGET_STEPS_PER_S = 10_000


class BenchError(RuntimeError):
    """A benchmark could not run or its result is not to be trusted; stops the harness."""


def say(message: str) -> None:
    print(message, flush=True)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of repeated measurements."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {
        "median": median,
        "min": low,
        "max": high,
        # half the range, relative to the median: "±3%" reads as "runs within 3% of it"
        "spread_pct": 100 * (high - low) / 2 / median if median else 0.0,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain")),
    }


def utc_now() -> datetime:
    return datetime.now(UTC)


# Child processes (servers, wrk) are tracked so that every way out of the harness stops them.
_children: set[subprocess.Popen[bytes]] = set()


def track(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    _children.add(process)
    return process


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; waits for it either way."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    finally:
        _children.discard(process)


def _stop_all() -> None:
    for process in list(_children):
        stop(process, grace=3.0)


def _on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM (and SIGHUP) into an exception so that every `finally` runs.
    raise SystemExit(128 + signum)


def install_exit_handlers() -> None:
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def cpu_busy(seconds: float = 1.0) -> float:
    """The fraction of all CPUs' time spent busy over `seconds`, from /proc/stat (-1 if unknown).

    Taken before each part: other work on the machine makes the figures lower and noisier.
    """

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return -1.0
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else -1.0


def check_quiet(part: str, record: dict[str, Any]) -> None:
    busy = cpu_busy()
    record.setdefault("cpu_busy_before", {})[part] = round(busy, 3)
    record.setdefault("loadavg_before", {})[part] = os.getloadavg()
    if busy > 0.10:
        say(
            f"  WARNING: the CPUs are {busy:.0%} busy before the {part} benchmarks start "
            "(other processes); results will be lower and noisier than on a quiet machine"
        )


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, all its threads, in seconds (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8]) / os.sysconf("SC_CLK_TCK")
    idle = (fields[3] + fields[4]) / os.sysconf("SC_CLK_TCK")
    return total - idle, total


def _own_seconds(pids: Sequence[int]) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished, waited children (wrk)
    seconds = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return seconds + sum(_proc_cpu_seconds(pid) for pid in pids)


class ForeignLoad:
    """How much of the machine other processes used while a measurement ran.

    Machine-wide busy time (/proc/stat) minus the harness's own, its finished children's (wrk)
    and its live servers' (`pids`), as a fraction of all CPUs' time; -1 when unknown.
    """

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        try:
            self._busy, self._total = _machine_busy_seconds()
        except (OSError, ValueError, IndexError):
            self._total = -1.0
        self._own = _own_seconds(self.pids)

    def fraction(self) -> float:
        if self._total < 0:
            return -1.0
        try:
            busy, total = _machine_busy_seconds()
        except (OSError, ValueError, IndexError):
            return -1.0
        foreign = (busy - self._busy) - (_own_seconds(self.pids) - self._own)
        elapsed = total - self._total
        return max(0.0, foreign / elapsed) if elapsed > 0 else -1.0
