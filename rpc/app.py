"""create_app(): the one place that wires the store, the procedures and the HTTP edge."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.engine import Engine
from engine.nodes import register_builtins
from engine.registry import NodeRegistry
from rpc.auth import Gate, is_loopback, refusal
from rpc.catalogue import import_folder
from rpc.context import Context, Services
from rpc.endpoint import TRPCEndpoint
from rpc.heap import prepare_for_serving
from rpc.procedures import root_router
from rpc.resolver import HTTPRequest, Resolver
from rpc.router import RouterTree, flatten
from rpc.settings import Settings
from store import Store

log = logging.getLogger("blueprint")
CORS_HEADERS = ["content-type", "trpc-accept", "authorization", "x-api-key", "last-event-id"]


def package_version() -> str:
    try:
        return version("blueprint")
    except PackageNotFoundError:
        return "0+unknown"


class ProcedurePathConvertor(Convertor[str]):
    """Any text, newlines included: Starlette's `path` stops at one, so `a%0Ab` would miss the
    endpoint and `noinput%0A` would match `noinput`."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def build_registry(plugins: tuple[str, ...]) -> NodeRegistry:
    registry = NodeRegistry()
    register_builtins(registry)
    for plugin in plugins:
        registry.load_plugin(plugin)
    return registry


class StartupRefused(Exception):
    """The server must not start as configured; the message says why and what to do."""


WORKER_SETTINGS_VARIABLE = "BLUEPRINT_WORKER_SETTINGS"


def app_from_environment() -> Starlette:
    """The app of one worker process, from the settings its parent put in the environment."""
    settings = msgspec.json.decode(os.environ[WORKER_SETTINGS_VARIABLE], type=Settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: %(message)s")
    app = create_app(settings)
    prepare_for_serving()  # a spawned worker inherits none of its parent's collector settings
    return app


def create_app(settings: Settings, router: RouterTree | None = None) -> Starlette:
    """The ASGI app; `router` replaces the built-in procedures (tests use small ones)."""
    procedures = flatten(root_router() if router is None else router)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        registry = build_registry(settings.plugins)
        store = await Store.open(settings.db, settings.durability, settings.status_cache_bytes)
        engine = Engine(
            registry,
            store.writer,
            settings.engine_limits,
            controls=store.controls,
            deliveries=store.deliveries,
            webhooks=settings.webhooks,
            owners=store.owners,
        )
        try:
            why_not = refusal(settings.host, store.keys.has_keys, settings.db)
            if why_not is not None:
                raise StartupRefused(why_not)
            if settings.load_blueprints:
                with store.owners.one_at_a_time("import-blueprints"):
                    count = await import_folder(
                        settings.blueprints_dir, store, engine, settings.max_depth
                    )
                log.info("blueprints from %s: %d added or updated", settings.blueprints_dir, count)
            resumed = await engine.resume(store.resume_source)
            if resumed:
                log.info("resumed %d unfinished executions from the log", resumed)
            engine.start_background()
            services = Services(
                settings=settings,
                store=store,
                engine=engine,
                procedures=procedures,
                version=package_version(),
                started_at=time.monotonic(),
            )

            gate = Gate(
                store.keys,
                open_allowed=is_loopback(settings.host),
                rate_limit=settings.rate_limit,
            )
            identify = gate.identify

            def make_context(request: HTTPRequest, connection_params: Mapping[str, str]) -> Context:
                caller = identify(request.headers, connection_params, request.client)
                return Context(services, caller, request.client, connection_params)

            resolver = Resolver(procedures, settings.wire, make_context, gate.check)
            yield {"resolver": resolver, "services": services}
        finally:
            # Runs stop unrecorded (the next start resumes them); what they wrote is flushed.
            await engine.close()
            await store.close()

    register_url_convertor("procedures", ProcedurePathConvertor())
    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route(
            settings.prefix.rstrip("/") + "/{path:procedures}",
            TRPCEndpoint(settings.max_body_bytes),
        ),
    ]
    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=CORS_HEADERS,
                allow_credentials="*" not in settings.cors_origins,
                max_age=600,
            )
        )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def healthz(request: Request) -> JSONResponse:
    """For load balancers: no auth, no rate limit, no database round trip."""
    return JSONResponse({"status": "ok"})
