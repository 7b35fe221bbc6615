"""The delivery log: webhooks written with the change they report, kept until delivered or
given up, and log lines for executions no engine holds any more."""

from __future__ import annotations

import msgspec

from engine.clock import now_ms
from engine.events import WebhookDue
from engine.records import LogLevel
from tests.store._events import created, exec_id, execution, log, read


def due(execution_id: str, event: str = "completed", secret: str | None = "s") -> WebhookDue:
    return WebhookDue(
        execution_id=execution_id,
        event=event,
        url="http://127.0.0.1:9/hook",
        secret=secret,
        body=b'{"event":"%s"}' % event.encode(),
    )


async def test_a_webhook_is_due_once_written_with_its_execution(store):
    record = execution(exec_id(1), "completed")
    store.writer.emit(created(record))
    store.writer.emit(due(record.id))
    await store.writer.flush()
    (delivery,) = await store.deliveries.due()
    assert (delivery.execution_id, delivery.event, delivery.url) == (
        record.id,
        "completed",
        "http://127.0.0.1:9/hook",
    )
    assert (delivery.secret, delivery.body, delivery.attempts) == ("s", b'{"event":"completed"}', 0)
    rows = read(store.path, "SELECT status, attempts, finished_at FROM webhook_deliveries")
    assert rows == [("pending", 0, None)]


async def test_a_failed_attempt_waits_until_its_next_time(store):
    store.writer.emit(created(execution(exec_id(1), "failed")))
    store.writer.emit(due(exec_id(1), "failed"))
    await store.writer.flush()
    (delivery,) = await store.deliveries.due()
    await store.deliveries.attempted(
        delivery.id, 1, "pending", "answered HTTP 500", now_ms() + 60_000
    )
    assert await store.deliveries.due() == []
    await store.deliveries.attempted(delivery.id, 2, "pending", "answered HTTP 502", now_ms() - 1)
    (again,) = await store.deliveries.due()
    assert (again.id, again.attempts) == (delivery.id, 2)
    rows = read(store.path, "SELECT status, last_error, finished_at FROM webhook_deliveries")
    assert rows == [("pending", "answered HTTP 502", None)]


async def test_a_delivered_or_abandoned_webhook_is_never_due_again(store):
    store.writer.emit(created(execution(exec_id(1), "completed")))
    store.writer.emit(due(exec_id(1)))
    store.writer.emit(due(exec_id(1), "paused"))
    await store.writer.flush()
    first, second = await store.deliveries.due()
    await store.deliveries.attempted(first.id, 1, "delivered", None, now_ms())
    await store.deliveries.attempted(second.id, 6, "failed", "answered HTTP 503", now_ms())
    assert await store.deliveries.due() == []
    rows = read(
        store.path,
        "SELECT status, attempts, last_error, finished_at IS NOT NULL FROM webhook_deliveries"
        " ORDER BY id",
    )
    assert rows == [("delivered", 1, None, 1), ("failed", 6, "answered HTTP 503", 1)]


async def test_due_gives_the_earliest_next_attempt_first_up_to_the_limit(store):
    for n in range(3):
        store.writer.emit(created(execution(exec_id(n), "completed")))
        store.writer.emit(due(exec_id(n)))
    await store.writer.flush()
    ids = [d.id for d in await store.deliveries.due()]
    now = now_ms()
    await store.deliveries.attempted(ids[2], 1, "pending", "HTTP 500", now - 10_000)
    await store.deliveries.attempted(ids[0], 1, "pending", "HTTP 500", now - 5_000)
    await store.deliveries.attempted(ids[1], 1, "pending", "HTTP 500", now + 60_000)
    assert [d.id for d in await store.deliveries.due(limit=2)] == [ids[2], ids[0]]


async def test_due_of_an_owner_gives_only_its_executions(store):
    for n, owner in [(1, "engine-a"), (2, "engine-b"), (3, None)]:
        event = msgspec.structs.replace(created(execution(exec_id(n), "completed")), owner=owner)
        store.writer.emit(event)
        store.writer.emit(due(exec_id(n)))
    await store.writer.flush()
    assert [d.execution_id for d in await store.deliveries.due("engine-a")] == [exec_id(1)]
    assert len(await store.deliveries.due()) == 3


async def test_a_log_line_for_a_finished_execution_follows_its_last_one(store):
    record = execution(exec_id(1), "completed")
    store.writer.emit(created(record))
    for seq in (1, 2):
        store.writer.emit(log(record.id, seq))
    await store.writer.flush()
    before = await store.executions.status(record.id, 100)  # cached: it has finished
    assert before is not None and b"delivered" not in before

    await store.deliveries.append_log(record.id, LogLevel.INFO, "Webhook delivered", {"n": 1})
    status = msgspec.json.decode(await store.executions.status(record.id, 100))
    last = status["logs"][-1]
    assert (last["seq"], last["level"], last["message"], last["data"]) == (
        3,
        "info",
        "Webhook delivered",
        {"n": 1},
    )
    gids = [row[0] for row in read(store.path, "SELECT gid FROM logs ORDER BY seq")]
    assert gids == sorted(set(gids))
