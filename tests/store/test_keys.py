"""API keys in the database: made, listed and revoked by KeyAdmin, checked by a KeyRing."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store
from store.keys import KeyAdmin, KeyExists, KeyRing, split_key


def test_a_key_is_shown_once_and_only_its_hash_is_kept(path: str):
    key = KeyAdmin(path).create("ci", ["executions:read"])
    _, secret = split_key(key) or ("", "")
    assert key.startswith("bp_") and len(secret) >= 40
    for file in Path(path).parent.iterdir():
        assert secret.encode() not in file.read_bytes(), file


def test_list_shows_names_scopes_and_dates_never_keys(path: str):
    admin = KeyAdmin(path)
    admin.create("ci", ["executions:write", "executions:read"])
    admin.create("ops", ["admin"])
    assert admin.revoke("ci")
    listed = admin.list()
    assert [(k.name, k.scopes, k.revoked_at is not None) for k in listed] == [
        ("ci", ["executions:read", "executions:write"], True),
        ("ops", ["admin"], False),
    ]


def test_names_are_unique_among_live_keys(path: str):
    admin = KeyAdmin(path)
    admin.create("ci", ["admin"])
    with pytest.raises(KeyExists):
        admin.create("ci", ["admin"])
    admin.revoke("ci")
    admin.create("ci", ["admin"])  # the name is free again
    assert not admin.revoke("nobody")


def test_a_ring_verifies_keys_and_sees_revocations_at_once(path: str):
    admin = KeyAdmin(path)
    key = admin.create("ci", ["executions:read"])
    ring = KeyRing(path)
    ring.load()
    found = ring.verify(key)
    assert found is not None and found.name == "ci"
    assert found.scopes == frozenset({"executions:read"})

    admin.revoke("ci")
    ring.refresh()
    assert ring.verify(key) is None
    assert ring.has_keys  # once keys exist, auth stays on, even with every key revoked


@pytest.mark.parametrize("tamper", ["", "bp_", "bp__x", "xx_{id}_{secret}", "bp_{id}_{secret}x"])
def test_a_ring_refuses_anything_but_the_exact_key(path: str, tamper: str):
    key = KeyAdmin(path).create("ci", ["admin"])
    key_id, secret = split_key(key) or ("", "")
    ring = KeyRing(path)
    ring.load()
    assert ring.verify(tamper.format(id=key_id, secret=secret)) is None


def test_a_ring_learns_of_keys_made_after_it_loaded(path: str):
    ring = KeyRing(path)
    ring.load()
    assert not ring.has_keys
    key = KeyAdmin(path).create("late", ["admin"])
    ring.refresh()
    assert ring.has_keys and ring.verify(key) is not None


async def test_uses_are_written_in_batches(store: Store, path: str):
    admin = KeyAdmin(path)
    key = admin.create("ci", ["admin"])
    store.keys.refresh()
    assert store.keys.verify(key) is not None
    assert admin.list()[0].last_used_at is None
    await store.keys.write_uses()
    assert admin.list()[0].last_used_at is not None
