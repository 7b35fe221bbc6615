"""Ceiling: what one Python process on this machine can answer at all, doing no work.

A bare uvloop protocol that answers every request on a connection with the same 200 and the
same status body (a finished execution's, from the seeded file), parsing nothing but the end of
each request head. No server that reads anything can beat it; the HTTP benchmark runs it so the
other figures can be read against what this machine allows, not against numbers measured
elsewhere.
    BENCH_CEILING_DB=file.db python -m bench.ceiling_server PORT
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys

import uvloop


def answer_body(db: str) -> bytes:
    """The tRPC answer for the first finished status stored in `db`."""
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute("SELECT body FROM finished_statuses LIMIT 1").fetchone()
    conn.close()
    return b'{"result":{"data":{"json":%s}}}' % status


def response(db: str) -> bytes:
    body = answer_body(db)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


class Answer(asyncio.Protocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count:
            self.transport.write(self.answer * count)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    answer = response(os.environ["BENCH_CEILING_DB"])
    server = await asyncio.get_running_loop().create_server(
        lambda: Answer(answer), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
