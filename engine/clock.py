"""Wall-clock time as the log records it: epoch milliseconds and ISO 8601 UTC text."""

from __future__ import annotations

import time
from datetime import datetime

_last: list[object] = [None, ""]  #: the last millisecond formatted, and its text
_second: list[object] = [None, ""]  #: the last second formatted, and its text


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int) -> str:
    """`2024-12-01T10:00:00.000Z`. Transitions stamp several fields in one millisecond, so the
    last answer (and the last second's text) is kept."""
    if _last[0] == epoch_ms:
        return _last[1]  # type: ignore[return-value]
    seconds, millis = divmod(epoch_ms, 1000)
    if _second[0] != seconds:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second[0] = seconds
    text = f"{_second[1]}.{millis:03d}Z"
    _last[0], _last[1] = epoch_ms, text
    return text


def now_iso() -> str:
    return iso_ms(now_ms())


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 UTC timestamp as iso_ms writes it."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
