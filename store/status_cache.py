"""Encoded statuses of finished executions, so a poll of one costs no database round trip.

A finished execution rarely changes (a webhook delivery adds a log line), and every change
goes through the writer, which invalidates its entries after the commit. A read that started
before such an invalidation is not cached, so no stale status can be stored.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable

# A read that took longer than this is not cached: its invalidation window may have been pruned.
_MAX_READ_SECONDS = 5.0


class StatusCache:
    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, Hashable], bytes] = OrderedDict()
        self._keys: dict[str, set[tuple[str, Hashable]]] = {}
        self._size = 0
        self._invalidated: dict[str, float] = {}

    def get(self, execution_id: str, variant: Hashable) -> bytes | None:
        key = (execution_id, variant)
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, execution_id: str, variant: Hashable, body: bytes, read_started: float) -> None:
        now = time.monotonic()
        if now - read_started > _MAX_READ_SECONDS or len(body) > self._max_bytes // 8:
            return
        if self._invalidated.get(execution_id, -1.0) >= read_started:
            return
        key = (execution_id, variant)
        self._drop(key)
        self._entries[key] = body
        self._keys.setdefault(execution_id, set()).add(key)
        self._size += len(body)
        while self._size > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def invalidate(self, execution_ids: Iterable[str]) -> None:
        now = time.monotonic()
        for execution_id in execution_ids:
            self._invalidated[execution_id] = now
            for key in self._keys.pop(execution_id, ()):
                self._size -= len(self._entries.pop(key))
        if len(self._invalidated) > 10_000:
            horizon = now - 2 * _MAX_READ_SECONDS
            self._invalidated = {k: t for k, t in self._invalidated.items() if t >= horizon}

    def clear(self) -> None:
        self._invalidated.update(dict.fromkeys(self._keys, time.monotonic()))
        self._entries.clear()
        self._keys.clear()
        self._size = 0

    def _drop(self, key: tuple[str, Hashable]) -> None:
        body = self._entries.pop(key, None)
        if body is None:
            return
        self._size -= len(body)
        keys = self._keys.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[key[0]]

    def __len__(self) -> int:
        return len(self._entries)
