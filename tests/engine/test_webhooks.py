"""Webhooks against a real HTTP receiver on loopback: the body and headers, the signature, retries
with backoff, hosts not allowed, giving up, and deliveries that outlive a restart; each attempt
recorded in the log (the execution's log lines and the webhook_deliveries rows)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import msgspec
import pytest

from engine.clock import now_ms
from engine.control import Continue
from engine.model import Webhook
from engine.ports import Delivery
from engine.records import Execution
from engine.webhooks import LOOPBACK, WebhookDeliverer, WebhookPolicy, refusal, signature
from tests.engine.conftest import blueprint, logged, poll, start, wait_logged
from tests.store._events import read

FAST = WebhookPolicy(attempts=4, first_delay_ms=40, max_delay_ms=200, poll_ms=20)
SECRET = "shh, a secret"


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float  #: time.monotonic() when it arrived


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server: records each request, answers the statuses queued in `answers`,
    then `default`."""

    answers: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            if not request_line:
                return
            method, target, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, value = line.decode("latin-1").split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, target, headers, body, time.monotonic()))
            status = self.answers.pop(0) if self.answers else self.default
            head = f"HTTP/1.1 {status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            writer.write(head.encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    yield receiver
    server.close()
    await server.wait_closed()


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliveries(path: str, execution_id: str) -> list[tuple]:
    return read(
        path,
        "SELECT id, event, status, attempts, last_error, finished_at IS NOT NULL"
        " FROM webhook_deliveries WHERE execution_id = ? ORDER BY id",
        execution_id,
    )


async def ended_deliveries(path: str, execution_id: str, count: int) -> list[tuple]:
    """The delivery rows once `count` of them have been delivered or given up."""

    async def ended():
        rows = deliveries(path, execution_id)
        return rows if sum(row[2] != "pending" for row in rows) == count else None

    return await poll(f"{count} webhook deliveries to end", ended)


async def logged_line(store, execution_id: str, pattern: str) -> str:
    async def found():
        seen = await logged(store, execution_id)
        return next((m for m in seen.messages() if re.fullmatch(pattern, m)), None)

    return await poll(f"a log line like {pattern!r}", found)


async def run_with_webhook(engine, document=None, **webhook) -> str:
    hook = Webhook(**webhook)
    return await start(
        engine, document or blueprint({"id": "a", "type": "noop"}), webhook=hook, input={"n": 1}
    )


async def test_a_completed_execution_is_posted_signed(durable, receiver):
    engine = await durable.boot(webhooks=FAST)
    store = durable.store
    execution_id = await run_with_webhook(engine, url=receiver.url, secret=SECRET)
    ((delivery_id, *row),) = await ended_deliveries(store.path, execution_id, 1)
    assert row == ["completed", "delivered", 1, None, 1]

    (request,) = receiver.requests
    assert (request.method, request.target) == ("POST", "/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "blueprint-webhook"
    assert request.headers["x-blueprint-event"] == "completed"
    assert request.headers["x-blueprint-delivery"] == str(delivery_id)
    assert hmac.compare_digest(request.headers["x-blueprint-signature"], signed(request.body))
    assert request.headers["x-blueprint-signature"] != signed(request.body, "another secret")

    body = msgspec.json.decode(request.body)
    assert set(body) == {"event", "executionId", "execution"}
    assert (body["event"], body["executionId"]) == ("completed", execution_id)
    reported = msgspec.json.decode(msgspec.json.encode(body["execution"]), type=Execution)
    seen = await logged(store, execution_id)
    assert reported == msgspec.convert(msgspec.to_builtins(seen.execution), Execution)
    assert reported.status == "completed"

    line = await logged_line(
        store, execution_id, r"Webhook completed to .* delivered \(attempt 1\)"
    )
    assert receiver.url in line


async def test_without_a_secret_nothing_is_signed(durable, receiver):
    engine = await durable.boot(webhooks=FAST)
    execution_id = await run_with_webhook(engine, url=receiver.url)
    await ended_deliveries(durable.store.path, execution_id, 1)
    (request,) = receiver.requests
    assert "x-blueprint-signature" not in request.headers


async def test_each_chosen_event_is_posted_in_order(durable, receiver):
    engine = await durable.boot(webhooks=FAST)
    store = durable.store
    document = blueprint(
        {"id": "hold", "type": "pause"}, {"id": "after", "type": "noop", "dependsOn": ["hold"]}
    )
    execution_id = await run_with_webhook(engine, document, url=receiver.url, secret=SECRET)
    await ended_deliveries(store.path, execution_id, 1)
    assert (await engine.control(execution_id, Continue())).applied
    rows = await ended_deliveries(store.path, execution_id, 2)
    assert [(event, status) for _, event, status, *_ in rows] == [
        ("paused", "delivered"),
        ("completed", "delivered"),
    ]
    assert [r.headers["x-blueprint-event"] for r in receiver.requests] == ["paused", "completed"]
    paused = msgspec.json.decode(receiver.requests[0].body)["execution"]
    assert (paused["status"], paused["pauseReason"], paused["pausedNodeId"]) == (
        "paused",
        "wait-pause",
        "hold",
    )
    for request in receiver.requests:
        assert request.headers["x-blueprint-signature"] == signed(request.body)


async def test_only_the_chosen_events_are_posted(durable, receiver):
    engine = await durable.boot(webhooks=FAST)
    store = durable.store
    document = blueprint({"id": "hold", "type": "pause"})
    execution_id = await run_with_webhook(engine, document, url=receiver.url, events=("completed",))
    await wait_logged(store, execution_id, "paused")
    assert (await engine.control(execution_id, Continue())).applied
    await wait_logged(store, execution_id, "completed")
    rows = await ended_deliveries(store.path, execution_id, 1)
    assert [row[1] for row in rows] == ["completed"]
    assert [r.headers["x-blueprint-event"] for r in receiver.requests] == ["completed"]


async def test_a_receiver_that_fails_at_first_is_retried_with_backoff(durable, receiver):
    receiver.answers = [500, 503]
    engine = await durable.boot(webhooks=FAST)
    store = durable.store
    execution_id = await run_with_webhook(engine, url=receiver.url, secret=SECRET)
    ((delivery_id, *row),) = await ended_deliveries(store.path, execution_id, 1)
    assert row == ["completed", "delivered", 3, None, 1]

    assert len(receiver.requests) == 3
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}
    assert {r.headers["x-blueprint-delivery"] for r in receiver.requests} == {str(delivery_id)}
    for request in receiver.requests:
        assert request.headers["x-blueprint-signature"] == signed(request.body)

    await logged_line(store, execution_id, r"Webhook completed to .* delivered \(attempt 3\)")
    seen = await logged(store, execution_id)
    retries = [
        re.fullmatch(
            r"Webhook completed to .* failed \(attempt (\d)\): (.*); retrying in (\d+) ms", m
        )
        for m in seen.messages("warn")
    ]
    assert [(int(m[1]), m[2]) for m in retries if m] == [
        (1, "answered HTTP 500"),
        (2, "answered HTTP 503"),
    ]
    delays = [int(m[3]) for m in retries if m]
    # Doubling from first_delay_ms, with up to ±25% jitter.
    assert 0.75 * 40 <= delays[0] <= 1.25 * 40
    assert 0.75 * 80 <= delays[1] <= 1.25 * 80
    # Each retry came no sooner than the delay the log announced.
    times = [request.at for request in receiver.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= (delay - 5) / 1000


async def test_a_receiver_that_never_succeeds_is_given_up_after_the_attempts(durable, receiver):
    receiver.default = 503
    engine = await durable.boot(webhooks=msgspec.structs.replace(FAST, attempts=3))
    store = durable.store
    execution_id = await run_with_webhook(engine, url=receiver.url)
    ((_, *row),) = await ended_deliveries(store.path, execution_id, 1)
    assert row == ["completed", "failed", 3, "answered HTTP 503", 1]
    assert len(receiver.requests) == 3
    await logged_line(
        store,
        execution_id,
        r"Webhook completed to .* failed: answered HTTP 503; gave up after 3 attempts",
    )
    assert await store.deliveries.due() == []  # nothing left to try


async def test_an_unreachable_receiver_is_given_up_with_the_error(durable):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = await durable.boot(webhooks=msgspec.structs.replace(FAST, attempts=2))
    execution_id = await run_with_webhook(engine, url=f"http://127.0.0.1:{port}/hook")
    ((_, *row),) = await ended_deliveries(durable.store.path, execution_id, 1)
    assert row[:3] == ["completed", "failed", 2]
    assert row[3].startswith("ConnectError")


async def test_a_host_not_allowed_is_refused_and_never_contacted(durable, receiver):
    policy = msgspec.structs.replace(FAST, allowed_hosts=("localhost",))
    engine = await durable.boot(webhooks=policy)
    store = durable.store
    execution_id = await run_with_webhook(engine, url=receiver.url, secret=SECRET)
    ((_, *row),) = await ended_deliveries(store.path, execution_id, 1)
    why = (
        "webhook host '127.0.0.1' is not allowed; this server allows localhost "
        "(its operator can add hosts with --webhook-allow)"
    )
    assert row == ["completed", "failed", 1, why, 1]
    line = await logged_line(store, execution_id, r"Webhook completed to .* not sent: .*")
    assert line.endswith(why)
    seen = await logged(store, execution_id)
    assert line in seen.messages("error")
    assert receiver.requests == []


async def test_a_remote_host_is_refused_by_default(durable):
    engine = await durable.boot(webhooks=FAST)
    execution_id = await run_with_webhook(engine, url="http://example.com/hook")
    ((_, *row),) = await ended_deliveries(durable.store.path, execution_id, 1)
    assert row[:3] == ["completed", "failed", 1]
    assert row[3].startswith("webhook host 'example.com' is not allowed")


async def test_a_delivery_due_before_a_restart_is_sent_after_it(durable, receiver):
    engine = await durable.boot(webhooks=FAST, background=False)
    store = durable.store
    execution_id = await run_with_webhook(engine, url=receiver.url, secret=SECRET)
    await wait_logged(store, execution_id, "completed")
    assert [row[2] for row in deliveries(store.path, execution_id)] == ["pending"]
    await durable.crash()

    await durable.boot(webhooks=FAST)
    rows = await ended_deliveries(durable.store.path, execution_id, 1)
    assert [(row[2], row[3]) for row in rows] == [("delivered", 1)]
    (request,) = receiver.requests
    assert msgspec.json.decode(request.body)["executionId"] == execution_id
    assert request.headers["x-blueprint-signature"] == signed(request.body)


# The policy's pure parts


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("https://LOCALHOST/hook", True),
        ("http://[::1]:9/hook", True),
        ("http://example.com/hook", False),
        ("http://127.0.0.1.example.com/hook", False),
        ("ftp://127.0.0.1/hook", False),
        ("http:///no-host", False),
        ("127.0.0.1/hook", False),
    ],
)
def test_only_http_urls_to_allowed_hosts_may_be_targets(url, allowed):
    why_not = refusal(url, LOOPBACK)
    assert (why_not is None) == allowed, why_not


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://[",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:x/",
        "http://127.0.0.1:1/\n",
    ],
)
def test_a_url_that_cannot_be_sent_to_is_refused_with_a_reason(url):
    """Found by tests/rpc/test_fuzz_procedures.py: "http://[::1" raised ValueError out of
    refusal (a 500 for blueprint.execute), and "http://127.0.0.1:1/\n" or port 99999 passed
    it, then raised out of every delivery attempt (a task exception logged, the delivery due
    again at every poll, for ever)."""
    why_not = refusal(url, LOOPBACK)
    assert why_not is not None and "not a valid URL" in why_not


def test_the_signature_is_the_hmac_sha256_of_the_body():
    body = b'{"event":"completed"}'
    assert signature(SECRET, body) == signed(body)
    assert signature(SECRET, body + b" ") != signed(body)


def test_backoff_doubles_from_the_first_delay_up_to_the_cap_with_jitter():
    policy = WebhookPolicy(first_delay_ms=100, max_delay_ms=1000)
    for attempt, base in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)]:
        delays = {policy.delay_ms(attempt) for _ in range(50)}
        assert all(0.75 * base <= d <= 1.25 * base for d in delays), (attempt, delays)


class LaggingLog:
    """A DeliveryLog whose `due()` answers with the rows as they were when it was called, some
    time later: a reader that lags the writer, as the real one can under load."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.status = "pending"
        self.next_at = 0

    async def due(self, owner: str | None = None, limit: int = 100) -> list[Delivery]:
        snapshot = [self.delivery] if self.status == "pending" and self.next_at <= now_ms() else []
        await asyncio.sleep(0.05)
        return snapshot

    async def attempted(
        self, delivery_id: int, attempts: int, status: str, error: str | None, next_at: int
    ) -> None:
        await asyncio.sleep(0.01)  # the write takes a while, so a poll reads in between
        self.delivery = msgspec.structs.replace(self.delivery, attempts=attempts)
        self.status, self.next_at = status, next_at

    async def append_log(self, *args: object, **kwargs: object) -> None:
        pass


async def test_a_stale_row_read_while_an_attempt_ends_does_not_start_another(receiver):
    receiver.default = 503
    log = LaggingLog(
        Delivery(
            id=1,
            execution_id="e",
            event="completed",
            url=receiver.url,
            secret=None,
            body=b"{}",
            attempts=0,
        )
    )

    async def note(*args: object) -> None:
        pass

    async with httpx.AsyncClient() as client:
        policy = WebhookPolicy(attempts=3, first_delay_ms=1, max_delay_ms=1, poll_ms=1)
        deliverer = WebhookDeliverer(log, lambda: client, note, policy)
        task = asyncio.ensure_future(deliverer.run_forever())
        try:

            async def given_up() -> bool:
                return log.status == "failed"

            await poll("the delivery to be given up", given_up, timeout=10)
            await asyncio.sleep(0.3)  # a duplicate attempt would have come by now
        finally:
            task.cancel()
            await deliverer.close()
    assert (log.delivery.attempts, len(receiver.requests)) == (3, 3)
