"""Idempotency keys: the first request with a key creates, a repeat gets the same execution,
the same key with another request is a conflict; claims race through the writer's transaction."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from engine.clock import now_ms
from engine.ids import new_id
from engine.model import RunOptions
from store.idempotency import IN_FLIGHT_MS, WINDOW_MS
from tests.store._events import read

FIRST = hashlib.sha256(b"the first request").digest()
OTHER = hashlib.sha256(b"another request").digest()
DOCUMENT = {"name": "once", "nodes": [{"id": "a", "type": "noop"}]}


@pytest.fixture
def clock(monkeypatch):
    """The claims' clock, moved by hand."""
    now = [now_ms()]
    monkeypatch.setattr("store.idempotency.now_ms", lambda: now[0])
    return now


async def execute(store, engine, key: str, fingerprint: bytes = FIRST) -> tuple[str, bool]:
    """What an execute call with an idempotency key does: claim, then create if new."""
    claim = await store.idempotency.claim(key, fingerprint, new_id("exec"))
    assert not claim.conflict
    if claim.new:
        await engine.start(
            engine.validate(DOCUMENT),
            blueprint_id=None,
            blueprint_version=None,
            options=RunOptions(idempotency_key=key),
            execution_id=claim.execution_id,
        )
    return claim.execution_id, claim.new


async def test_the_first_claim_creates_and_a_repeat_names_the_same_execution(store, engine):
    first, created = await execute(store, engine, "key-1")
    assert created
    again, created_again = await execute(store, engine, "key-1")
    assert (again, created_again) == (first, False)
    assert read(store.path, "SELECT id, idempotency_key FROM executions") == [(first, "key-1")]


async def test_a_repeat_while_the_first_is_still_being_created_names_it_too(store):
    first = await store.idempotency.claim("key-1", FIRST, "exec_1_aaaaa")
    assert (first.execution_id, first.new, first.conflict) == ("exec_1_aaaaa", True, False)
    repeat = await store.idempotency.claim("key-1", FIRST, "exec_2_bbbbb")
    assert (repeat.execution_id, repeat.new, repeat.conflict) == ("exec_1_aaaaa", False, False)


async def test_concurrent_claims_of_one_key_make_one_execution(store, engine):
    results = await asyncio.gather(*(execute(store, engine, "shared") for _ in range(20)))
    assert [new for _, new in results].count(True) == 1
    assert len({execution_id for execution_id, _ in results}) == 1
    await store.writer.flush()
    assert read(store.path, "SELECT count(*) FROM executions") == [(1,)]
    assert read(store.path, "SELECT count(*) FROM idempotency_keys") == [(1,)]


async def test_the_same_key_with_another_request_is_a_conflict(store, engine):
    first, _ = await execute(store, engine, "key-1")
    claim = await store.idempotency.claim("key-1", OTHER, "exec_2_bbbbb")
    assert (claim.conflict, claim.new, claim.execution_id) == (True, False, first)
    # The key still belongs to the first request.
    assert read(store.path, "SELECT fingerprint, execution_id FROM idempotency_keys") == [
        (FIRST, first)
    ]
    assert (await store.idempotency.claim("key-1", FIRST, "exec_3_ccccc")).execution_id == first


async def test_concurrent_claims_with_different_requests_one_wins_the_rest_conflict(store):
    prints = [hashlib.sha256(str(n).encode()).digest() for n in range(10)]
    claims = await asyncio.gather(
        *(store.idempotency.claim("key", p, f"exec_{n}_aaaaa") for n, p in enumerate(prints))
    )
    assert [c.new for c in claims].count(True) == 1
    winner = next(c for c in claims if c.new)
    assert all(c.conflict and c.execution_id == winner.execution_id for c in claims if not c.new)


async def test_keys_are_independent(store):
    one = await store.idempotency.claim("one", FIRST, "exec_1_aaaaa")
    two = await store.idempotency.claim("two", FIRST, "exec_2_bbbbb")
    assert (one.new, two.new) == (True, True)


async def test_a_key_older_than_the_window_starts_afresh(store, engine, clock):
    await execute(store, engine, "key-1")
    clock[0] += WINDOW_MS + 1
    again = await store.idempotency.claim("key-1", OTHER, "exec_2_bbbbb")
    assert (again.new, again.conflict, again.execution_id) == (True, False, "exec_2_bbbbb")
    assert read(store.path, "SELECT execution_id FROM idempotency_keys") == [("exec_2_bbbbb",)]


async def test_within_the_window_an_execution_in_the_log_is_named_however_old_the_claim(
    store, engine, clock
):
    first, _ = await execute(store, engine, "key-1")
    await store.writer.flush()
    clock[0] += WINDOW_MS - 1
    repeat = await store.idempotency.claim("key-1", FIRST, "exec_2_bbbbb")
    assert (repeat.new, repeat.execution_id) == (False, first)


async def test_a_claim_whose_execution_never_appeared_is_taken_over(store, clock):
    """The request that claimed it died before creating it: a repeat creates it instead."""
    await store.idempotency.claim("key-1", FIRST, "exec_1_aaaaa")
    clock[0] += IN_FLIGHT_MS - 1
    assert not (await store.idempotency.claim("key-1", FIRST, "exec_2_bbbbb")).new
    clock[0] += 2
    taken = await store.idempotency.claim("key-1", FIRST, "exec_3_ccccc")
    assert (taken.new, taken.execution_id) == (True, "exec_3_ccccc")
