"""Starlette's own cost: the baseline's framework answering one fixed status, reading nothing.

The same uvicorn (httptools, uvloop) and Starlette route as bench/baseline_starlette.py, with
the database taken out: every request gets the status the ceiling sends. No endpoint written on
Starlette + aiosqlite can serve more than this on the machine it runs on, so a published
figure for one reads against it.
    BENCH_STARLETTE_DB=file.db uvicorn bench.starlette_fixed:app --http httptools --loop uvloop
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.ceiling_server import answer_body

BODY = answer_body(os.environ["BENCH_STARLETTE_DB"])


async def get_execution_status(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/api/trpc/execution.getExecutionStatus", get_execution_status),
        Route("/healthz", healthz),
    ]
)
