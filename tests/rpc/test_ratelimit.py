"""Token buckets, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from rpc.ratelimit import RateLimit, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_then_one_call_per_interval():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(rate=10, burst=3), clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.1)
    clock.now += 0.05
    assert buckets.take("k") == pytest.approx(0.05)  # a refused call spends nothing
    clock.now += 0.05
    assert buckets.take("k") == 0.0
    assert buckets.take("k") > 0


def test_a_bucket_refills_only_up_to_its_burst():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(rate=1, burst=2), clock)
    buckets.take("k")
    clock.now += 3600
    assert [buckets.take("k") == 0.0 for _ in range(3)] == [True, True, False]


def test_callers_have_their_own_buckets():
    buckets = TokenBuckets(RateLimit(rate=1, burst=1), Clock())
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


@pytest.mark.parametrize(
    ("text", "rate", "burst"),
    [("100/s", 100, 200), ("6000/min", 100, 200), (" 5 / second ", 5, 10), ("1/m", 1 / 60, 1)],
)
def test_parse(text: str, rate: float, burst: int):
    assert RateLimit.parse(text) == RateLimit(rate=pytest.approx(rate), burst=burst)


def test_parse_off_and_an_explicit_burst():
    assert RateLimit.parse("off") is None
    assert RateLimit.parse("10/s", burst=50) == RateLimit(rate=10, burst=50)


@pytest.mark.parametrize("text", ["", "100", "100/h", "fast", "-1/s", "0/s", "1e9/s"])
def test_parse_refuses_what_it_cannot_read(text: str):
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)
