"""Baseline: the status endpoint as a competent developer would write it quickly.

Starlette + aiosqlite, one connection, plain queries; the stored JSON blobs are decoded and the
answer re-encoded (msgspec). No caching, no byte splicing, no custom HTTP protocol. The seeded
outputs are small enough that the store keeps them inline (store/outputs.py), so reading the
steps' output column directly gives them whole.
    BENCH_BASELINE_DB=file.db uvicorn bench.baseline_starlette:app --http httptools --loop uvloop
"""

import contextlib
import os

import aiosqlite
import msgspec
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

decode, encode = msgspec.json.decode, msgspec.json.encode


def json_response(data, status=200):
    return Response(encode(data), status_code=status, media_type="application/json")


async def get_execution_status(request):
    db = request.app.state.db
    try:
        execution_id = decode(request.query_params["input"])["json"]["executionId"]
    except (KeyError, TypeError, msgspec.DecodeError):
        return json_response({"error": {"json": {"message": "bad input", "code": -32600}}}, 400)
    async with db.execute("SELECT record FROM executions WHERE id = ?", (execution_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return json_response({"error": {"json": {"message": "not found", "code": -32004}}}, 404)
    status = decode(row[0])
    async with db.execute(
        "SELECT record FROM steps WHERE execution_id = ? ORDER BY idx", (execution_id,)
    ) as cur:
        status["steps"] = [decode(r[0]) for r in await cur.fetchall()]
    async with db.execute(
        "SELECT seq, entry FROM logs WHERE execution_id = ? ORDER BY seq DESC LIMIT 100",
        (execution_id,),
    ) as cur:
        logs = await cur.fetchall()
    status["logs"] = [decode(entry) for _, entry in reversed(logs)]
    status["logsTruncated"] = bool(logs) and logs[0][0] > len(logs)  # seq counts from 1
    async with db.execute(
        "SELECT node_id, output, artifacts FROM steps"
        " WHERE execution_id = ? AND is_leaf = 1 AND output IS NOT NULL ORDER BY idx",
        (execution_id,),
    ) as cur:
        status["finalOutputs"] = [
            {"nodeId": n, "output": decode(o), "artifacts": decode(a)}
            for n, o, a in await cur.fetchall()
        ]
    return json_response({"result": {"data": {"json": status}}})


async def healthz(request):
    return json_response({"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app):
    async with aiosqlite.connect(os.environ["BENCH_BASELINE_DB"]) as db:
        app.state.db = db
        yield


app = Starlette(
    routes=[
        Route("/api/trpc/execution.getExecutionStatus", get_execution_status),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
)
