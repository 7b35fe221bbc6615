"""Token buckets: each caller may make `rate` calls a second on average, `burst` at once.

One bucket per caller, kept in memory by each server process. A bucket is two floats, updated
in place per call; buckets that have filled up again are forgotten when there are many.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import msgspec

_ONE = 1.0 - 1e-9  #: a whole token, allowing for float rounding in the refill
_FORGET_ABOVE = 100_000  #: buckets kept before full ones are dropped
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    rate: float  #: calls a second, on average
    burst: int  #: calls at once, from a full bucket

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> RateLimit | None:
        """`100/s`, `6000/min` or `off` (None). ValueError names what is wrong. The burst is
        twice the per-second rate unless given."""
        if text.strip().lower() == "off":
            return None
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", text.lower())
        if match is None or match.group(2) not in _PER:
            raise ValueError(f"rate limit {text!r} is not like 100/s, 6000/min or off")
        rate = float(match.group(1)) / _PER[match.group(2)]
        if rate <= 0:
            raise ValueError(f"rate limit {text!r} must be above zero (or off)")
        burst = burst if burst is not None else max(1, math.ceil(2 * rate))
        if burst < 1:
            raise ValueError("the rate limit's burst must be 1 or more")
        return cls(rate=rate, burst=burst)

    def __str__(self) -> str:
        return f"{self.rate:g}/s, bursts of {self.burst}"


class TokenBuckets:
    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = limit.rate
        self._burst = float(limit.burst)
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  #: caller -> [tokens, when counted]

    def take(self, caller: str) -> float:
        """Spend one token of `caller`'s; 0.0 if there was one, else the seconds until
        there will be (and nothing is spent)."""
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= _FORGET_ABOVE:
                self._forget_full(now)
            self._buckets[caller] = [self._burst - 1.0, now]
            return 0.0
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= _ONE:
            bucket[0] = max(0.0, tokens - 1.0)
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        """A full bucket is the same as no bucket, so dropping it changes nothing."""
        full_after = self._burst / self._rate
        self._buckets = {
            caller: bucket
            for caller, bucket in self._buckets.items()
            if now - bucket[1] < full_after
        }
