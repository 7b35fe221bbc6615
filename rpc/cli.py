"""The `blueprint` command: `blueprint serve` runs the server."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import uvicorn
from uvicorn.supervisors import Multiprocess

from rpc._http_connection import TRPCConnection
from rpc._http_protocol import EdgeOptions
from rpc.app import WORKER_SETTINGS_VARIABLE, create_app
from rpc.auth import SCOPES, refusal
from rpc.codec import Transformer
from rpc.heap import prepare_for_serving
from rpc.ratelimit import RateLimit
from rpc.router import RouterTree
from rpc.settings import Settings
from store import Durability, StoreError
from store.keys import KeyAdmin, KeyExists

log = logging.getLogger("blueprint")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blueprint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    env = os.environ.get
    defaults = Settings()
    serve.add_argument(
        "--workers",
        type=int,
        default=int(env("BLUEPRINT_WORKERS", defaults.workers)),
        help="server processes sharing the port and the database file (default 1)",
    )
    serve.add_argument("--host", default=env("BLUEPRINT_HOST", defaults.host))
    serve.add_argument("--port", type=int, default=int(env("BLUEPRINT_PORT", defaults.port)))
    serve.add_argument("--db", default=env("BLUEPRINT_DB", defaults.db), help="SQLite file")
    serve.add_argument("--prefix", default=defaults.prefix, help="URL prefix of the tRPC endpoint")
    serve.add_argument(
        "--transformer", choices=[t.value for t in Transformer], default=defaults.transformer.value
    )
    serve.add_argument(
        "--dev", action="store_true", help="development mode: stack traces in errors"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browsers on ORIGIN (repeatable; '*' for any); default: same origin only",
    )
    serve.add_argument(
        "--allow-method-override", action="store_true", help="accept queries sent by POST"
    )
    serve.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    serve.add_argument("--max-input-bytes", type=int, default=defaults.max_input_bytes)
    serve.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    serve.add_argument("--max-depth", type=int, default=defaults.max_depth)
    serve.add_argument(
        "--durability",
        choices=[d.value for d in Durability],
        default=defaults.durability.value,
        help="normal: survives a crash of the server; strict: also power loss (fsync per commit)",
    )
    serve.add_argument(
        "--blueprints-dir",
        default=env("BLUEPRINT_BLUEPRINTS_DIR", defaults.blueprints_dir),
        help="the folder batch file and folder sources may read",
    )
    serve.add_argument(
        "--load-blueprints",
        action="store_true",
        help="add the blueprints folder's *.json files to the catalogue at start",
    )
    serve.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE and call its register(registry) to add node types (repeatable)",
    )
    serve.add_argument(
        "--max-running-executions", type=int, default=defaults.max_running_executions
    )
    serve.add_argument("--node-concurrency", type=int, default=defaults.node_concurrency)
    serve.add_argument("--max-nodes", type=int, default=defaults.max_nodes)
    serve.add_argument(
        "--status-cache-bytes",
        type=int,
        default=defaults.status_cache_bytes,
        help="memory for the encoded statuses of finished executions; 0 turns the cache off",
    )
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--webhook-allow",
        action="append",
        default=[],
        metavar="HOST",
        help="a host webhooks may be sent to (repeatable); default: loopback only",
    )
    serve.add_argument(
        "--rate-limit",
        default=env("BLUEPRINT_RATE_LIMIT", "100/s"),
        help="calls per key (per client address when open), like 100/s or 6000/min, or off",
    )
    serve.add_argument(
        "--rate-burst", type=int, help="calls at once from a full bucket (default: 2 s worth)"
    )
    serve.add_argument(
        "--max-active-per-key",
        type=int,
        default=defaults.max_active_per_key,
        help="queued, running and paused executions one API key may have",
    )
    serve.add_argument(
        "--max-log-message-bytes",
        type=int,
        default=defaults.log_message_bytes,
        help="log messages are cut beyond this",
    )
    serve.set_defaults(run=run_serve)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    db_help = "SQLite file (default: $BLUEPRINT_DB or data/blueprint.db)"
    create = key_commands.add_parser(
        "create", help="make a key and print it, once, alone on standard output"
    )
    create.add_argument("--name", required=True, help="a name for the key, unique among live keys")
    create.add_argument(
        "--scopes",
        required=True,
        help=f"comma-separated, from: {', '.join(sorted(SCOPES))} (admin implies every scope)",
    )
    create.add_argument("--db", default=env("BLUEPRINT_DB", defaults.db), help=db_help)
    create.set_defaults(run=run_keys_create)
    listing = key_commands.add_parser("list", help="names, scopes, dates; never the keys")
    listing.add_argument("--db", default=env("BLUEPRINT_DB", defaults.db), help=db_help)
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(run=run_keys_list)
    revoke = key_commands.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("name")
    revoke.add_argument("--db", default=env("BLUEPRINT_DB", defaults.db), help=db_help)
    revoke.set_defaults(run=run_keys_revoke)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """ValueError says which flag is wrong."""
    try:
        rate_limit = RateLimit.parse(args.rate_limit, args.rate_burst)
    except ValueError as exc:
        raise ValueError(f"--rate-limit: {exc}") from None
    for flag, value in (
        ("--workers", args.workers),
        ("--max-active-per-key", args.max_active_per_key),
        ("--max-log-message-bytes", args.max_log_message_bytes),
        ("--max-batch-size", args.max_batch_size),
        ("--max-depth", args.max_depth),
        ("--max-nodes", args.max_nodes),
        ("--node-concurrency", args.node_concurrency),
        ("--max-running-executions", args.max_running_executions),
    ):
        if value < 1:
            raise ValueError(f"{flag} must be 1 or more, not {value}")
    return Settings(
        rate_limit=rate_limit,
        max_active_per_key=args.max_active_per_key,
        log_message_bytes=args.max_log_message_bytes,
        host=args.host,
        port=args.port,
        workers=args.workers,
        db=args.db,
        prefix=args.prefix,
        transformer=Transformer(args.transformer),
        dev=args.dev,
        cors_origins=tuple(args.cors_origin),
        allow_method_override=args.allow_method_override,
        max_batch_size=args.max_batch_size,
        max_input_bytes=args.max_input_bytes,
        max_body_bytes=args.max_body_bytes,
        max_depth=args.max_depth,
        access_log=args.access_log,
        log_level=args.log_level,
        durability=Durability(args.durability),
        status_cache_bytes=args.status_cache_bytes,
        blueprints_dir=args.blueprints_dir,
        load_blueprints=args.load_blueprints,
        plugins=tuple(args.plugin),
        max_running_executions=args.max_running_executions,
        node_concurrency=args.node_concurrency,
        max_nodes=args.max_nodes,
        webhook_allow=tuple(args.webhook_allow) or Settings().webhook_allow,
    )


def uvicorn_config(settings: Settings, router: RouterTree | None = None) -> uvicorn.Config:
    if settings.workers > 1:
        if router is not None:
            raise ValueError("a custom router serves in one process only")
        # Each worker process builds its own app from the settings, passed through the
        # environment it inherits; the Config itself must pickle, so it holds no app.
        os.environ[WORKER_SETTINGS_VARIABLE] = msgspec.json.encode(settings).decode()
        app: Any = "rpc.app:app_from_environment"
    else:
        app = create_app(settings, router)
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        http=TRPCConnection,
        ws="none",  # no WebSocket procedures: an Upgrade is answered as plain HTTP
        loop="uvloop",
        lifespan="on",
        log_level=settings.log_level,
        access_log=settings.access_log,
        server_header=False,
        # Subscriptions stay open; do not let them hold a shutdown forever.
        timeout_graceful_shutdown=3,
    )
    config.trpc_edge = EdgeOptions(  # type: ignore[attr-defined]
        prefix=settings.prefix,
        cors_enabled=bool(settings.cors_origins),
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=settings.max_url_bytes,
    )
    return config


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"blueprint: {exc}", file=sys.stderr)
        return 2
    # Revoked keys count, as they do for the server: once keys exist, it never runs open.
    has_keys = bool(KeyAdmin(settings.db).list())
    why_not = refusal(settings.host, has_keys, settings.db)
    if why_not is not None:
        print(f"blueprint: {why_not}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: %(message)s")
    if not has_keys:
        log.warning(
            "no API keys: serving open, to callers on this machine only; "
            "create a key to require one (blueprint keys create --help)"
        )
    log.info(
        "blueprint serving tRPC on http://%s:%d%s (database %s)",
        settings.host,
        settings.port,
        settings.prefix,
        settings.db,
    )
    config = uvicorn_config(settings)
    prepare_for_serving()
    if settings.workers == 1:
        uvicorn.Server(config).run()
    else:
        # uvicorn's supervisor restarts a worker that dies; the others take over its executions.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


def run_keys_create(args: argparse.Namespace) -> int:
    scopes = {scope.strip() for scope in args.scopes.split(",") if scope.strip()}
    unknown = sorted(scopes - SCOPES)
    if unknown or not scopes:
        print(
            f"blueprint: unknown scope {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(sorted(SCOPES))}",
            file=sys.stderr,
        )
        return 2
    name = args.name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        print("blueprint: --name must be 1 to 100 printable characters", file=sys.stderr)
        return 2
    try:
        key = KeyAdmin(args.db).create(name, scopes)
    except KeyExists as exc:
        print(f"blueprint: {exc}", file=sys.stderr)
        return 1
    print(key)
    print(
        f"created key {name!r} with scopes {', '.join(sorted(scopes))} in {args.db}; "
        "it is shown this once",
        file=sys.stderr,
    )
    return 0


def run_keys_list(args: argparse.Namespace) -> int:
    found = KeyAdmin(args.db).list()
    if args.json:
        print(msgspec.json.encode(found).decode())
        return 0
    if not found:
        print(f"no API keys in {args.db}: the server runs open, on loopback only")
        return 0
    rows = [("NAME", "SCOPES", "CREATED", "LAST USED", "REVOKED")] + [
        (
            key.name,
            ",".join(key.scopes),
            key.created_at,
            key.last_used_at or "never",
            key.revoked_at or "-",
        )
        for key in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    if KeyAdmin(args.db).revoke(args.name):
        print(f"revoked key {args.name!r}: servers refuse it from now on", file=sys.stderr)
        return 0
    print(f"blueprint: no live key named {args.name!r} in {args.db}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A file from a newer server, or not a database at all: said in a line, not a traceback.
    try:
        return int(args.run(args))
    except StoreError as exc:
        print(f"blueprint: {exc}", file=sys.stderr)
    except sqlite3.DatabaseError as exc:
        print(f"blueprint: {getattr(args, 'db', None) or 'the database'}: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
