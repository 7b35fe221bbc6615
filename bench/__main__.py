"""Benchmarks: `python -m bench [engine] [http] [--quick]` (`make bench` runs them all).

engine  durable steps/s of the in-process engine on a real Store (chain, fan-out, concurrent)
http    execution.getExecutionStatus through `blueprint serve`, with wrk, against N seeded
        executions, pinned and unpinned, beside a Starlette + aiosqlite baseline, the
        official Node tRPC server, Starlette alone answering a fixed status, and the ceiling
        of a server that does no work

Each measurement runs `--runs` times (3); the table shows the median and the spread. Raw
numbers go to bench/results/<name>-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import (
    ENGINE_TARGET_STEPS_PER_S,
    RESULTS,
    BenchError,
    check_quiet,
    fmt_int,
    fmt_ms,
    git_commit,
    install_exit_handlers,
    machine,
    say,
    utc_now,
)

PARTS = ("engine", "http")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("parts", nargs="*", metavar="{engine,http}", help="default: both")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes (200-node engine graphs, N=1,000 and 10,000) and 3 s wrk runs",
    )
    parser.add_argument("--runs", type=int, default=3, help="measurements of each benchmark")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (8; 3 with --quick)")
    parser.add_argument("--name", help="results file name prefix (default: from the parts)")
    args = parser.parse_args(argv)
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    args.parts = list(dict.fromkeys(args.parts)) or list(PARTS)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 8.0
    if args.runs < 1 or args.duration <= 0:
        parser.error("--runs and --duration must be positive")
    if args.name is None:
        args.name = ("bench" if args.parts == list(PARTS) else "-".join(args.parts)) + (
            "-quick" if args.quick else ""
        )
    return args


def spread(s: dict[str, float], fmt: Any = fmt_int) -> str:
    return f"{fmt(s['min'])} - {fmt(s['max'])} (±{s['spread_pct']:.0f}%)"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    engine = results.get("engine")
    if engine:
        for case in engine["cases"].values():
            sps = case["steps_per_s"]
            target = ENGINE_TARGET_STEPS_PER_S
            met = sps["median"] >= target
            first = case["runs"][0]
            rows.append(
                (
                    f"engine {case['title']}",
                    f"{fmt_int(sps['median'])} steps/s",
                    spread(sps),
                    f"{case['us_per_step']['median']:.0f} us/step; compiled in "
                    f"{first['compile_ms']:.0f} ms apart; rows: {first['log_rows']:,} "
                    f"logs, {first['step_rows']:,} steps; "
                    + ("target met" if met else f"{100 * sps['median'] / target:.0f}% of target")
                    + _load_note(case["foreign_cpu_max"]),
                )
            )
    http = results.get("http")
    if http:
        for config in http["configs"]:
            rps = config["requests_per_s"]
            rows.append(
                (
                    f"http {config['label']}, N={config['n']:,}, "
                    + ("pinned" if config["pinned"] else "unpinned"),
                    f"{fmt_int(rps['median'])} req/s",
                    spread(rps),
                    f"p50 {fmt_ms(config['p50_us']['median'])}, "
                    f"p99 {fmt_ms(config['p99_us']['median'])}; "
                    f"{config['response_bytes']:,} B" + _load_note(config["foreign_cpu_max"]),
                )
            )
    return rows


def _load_note(foreign: float) -> str:
    """Flags figures taken while other processes used more than 5% of the machine."""
    return f"; OTHER LOAD up to {foreign:.0%}" if foreign > 0.05 else ""


def render_table(results: dict[str, Any]) -> str:
    header = ("benchmark", "median", "min - max (spread)", "details (medians)")
    rows = table_rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if i == 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(header), rule, *(line(r) for r in rows), rule]
    if results.get("engine"):
        out.append(
            "engine: durable = from start() of the compiled blueprint until wait_settled() "
            "and writer.flush() returned; "
            f"target {ENGINE_TARGET_STEPS_PER_S:,} durable steps/s"
        )
    m, git = results["machine"], results["git"]
    out.append(
        f"{results['date']}  commit {git['commit']}{' (dirty)' if git['dirty'] else ''}  "
        f"{m['nproc']} CPUs ({m['cpu_model']})  Python {m['python']}  "
        f"runs per benchmark: {results['config']['runs']}"
    )
    busy = m.get("cpu_busy_before", {})
    if busy:
        out.append(
            "CPUs busy just before: "
            + ", ".join(f"{part} {value:.0%}" for part, value in busy.items())
            + (
                "  (WARNING: a busy machine lowers and scatters the figures)"
                if max(busy.values()) > 0.10
                else ""
            )
        )
    http = results.get("http")
    if http:
        s = http["settings"]
        out.append(
            f"http: wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']:g}s, random id "
            f"per request; pinned = server on CPU {s['server_cpu']}, wrk on CPU {s['wrk_cpu']}; "
            "cache on = the default 64 MiB cache of finished statuses"
        )
        out.append(
            "http Node tRPC server: bench/node_trpc/server.mjs, @trpc/server's standalone "
            "adapter with superjson and zod, the baseline's queries on better-sqlite3; "
            + http["node"].removeprefix("run: ")
        )
        out.append(
            "http Starlette alone: the baseline's uvicorn + Starlette answering one fixed "
            "status, no database: the most a Starlette + aiosqlite endpoint serves here"
        )
        out.append(
            "http ceiling: a bare uvloop protocol answering one fixed status, reading nothing: "
            "the most one Python process serves on this machine"
        )
        if http["variant_b"] != "run":
            out.append(f"http variant B (status cache off): {http['variant_b']}")
        if http["pinning"] != "run":
            out.append(f"http pinned mode: {http['pinning']}")
        for n, seed in http["seeds"].items():
            out.append(
                f"seeded N={int(n):,}: {seed['seconds']:.1f} s, "
                f"{seed['file_bytes'] / 2**20:,.0f} MiB, {seed['log_rows']:,} log rows"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_exit_handlers()
    started = time.monotonic()
    date = utc_now()
    results: dict[str, Any] = {
        "name": args.name,
        "date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_commit(),
        "machine": machine(),
        "config": {
            "parts": args.parts,
            "quick": args.quick,
            "runs": args.runs,
            "duration_s": args.duration,
        },
    }
    say(f"bench {' + '.join(args.parts)}{' (quick)' if args.quick else ''}: {args.runs} runs each")
    failure: str | None = None
    try:
        if "engine" in args.parts:
            from bench.engine_runs import run_engine

            say("engine: durable steps/s on a real Store")
            check_quiet("engine", results["machine"])
            results["engine"] = asyncio.run(run_engine(args.quick, args.runs))
        if "http" in args.parts:
            from bench.http_runs import run_http

            say("http: execution.getExecutionStatus under wrk")
            check_quiet("http", results["machine"])
            results["http"] = run_http(args.quick, args.runs, args.duration)
    except BenchError as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # a bug: still write what was measured, then show the traceback
        traceback.print_exc()
        failure = f"{type(exc).__name__}: {exc}"
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    if failure:
        results["error"] = failure
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}-{date.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    say("")
    say(render_table(results))
    say(f"took {results['elapsed_s']:.0f} s; raw numbers in {_relative(path)}")
    if failure:
        print(f"\nbench FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
