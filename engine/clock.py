"""Wall-clock time as the log records it: epoch milliseconds and ISO 8601 UTC text."""

from __future__ import annotations

import time
from datetime import datetime

_second_cache: list[object] = [None, ""]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int) -> str:
    """`2024-12-01T10:00:00.000Z`; the second's text is cached, as most calls share one."""
    seconds, millis = divmod(epoch_ms, 1000)
    if _second_cache[0] != seconds:
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache[0] = seconds
    return f"{_second_cache[1]}.{millis:03d}Z"


def now_iso() -> str:
    return iso_ms(now_ms())


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 UTC timestamp as iso_ms writes it."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
