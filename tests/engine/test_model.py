"""The retry policy's arithmetic (API.md §3, §4)."""

from __future__ import annotations

import random

import pytest

from engine.model import RetryPolicy


def test_the_defaults_are_the_contracts():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.backoff_ms, policy.backoff_multiplier) == (1, 0, 2)
    assert (policy.max_backoff_ms, policy.jitter) == (60_000, False)


@pytest.mark.parametrize(("attempt", "wait"), [(1, 100), (2, 300), (3, 900), (4, 2000)])
def test_backoff_grows_by_the_multiplier_up_to_the_cap(attempt, wait):
    policy = RetryPolicy(backoff_ms=100, backoff_multiplier=3, max_backoff_ms=2000)
    assert policy.delay_ms(attempt) == wait


def test_without_jitter_the_random_draw_does_not_matter():
    policy = RetryPolicy(backoff_ms=100)
    assert policy.delay_ms(1, 0.0) == policy.delay_ms(1, 0.99) == 100


@pytest.mark.parametrize(("unit", "wait"), [(0.0, 50), (0.5, 100), (0.999, 149.9)])
def test_jitter_spreads_the_wait_by_up_to_half(unit, wait):
    policy = RetryPolicy(backoff_ms=100, jitter=True)
    assert policy.delay_ms(1, unit) == pytest.approx(wait)


def test_jitter_draws_stay_within_half_either_way():
    policy = RetryPolicy(backoff_ms=1000, backoff_multiplier=1, jitter=True)
    draws = [policy.delay_ms(1, random.random()) for _ in range(500)]
    assert all(500 <= d < 1500 for d in draws)
    assert min(draws) < 800 and max(draws) > 1200


@pytest.mark.parametrize("multiplier", [1e200, 1e308, -1e200])
@pytest.mark.parametrize("backoff_ms", [0, 1])
def test_a_huge_multiplier_waits_the_cap_rather_than_overflow(multiplier, backoff_ms):
    """Found by tests/engine/test_fuzz_blueprints.py: backoffMultiplier 1e200 made the third
    retry's wait `1e200 ** 2` raise OverflowError in the engine (the step failed INTERNAL)."""
    policy = RetryPolicy(
        max_attempts=9, backoff_ms=backoff_ms, backoff_multiplier=multiplier, max_backoff_ms=20
    )
    assert [policy.delay_ms(n) for n in (3, 9)] == [20.0 * backoff_ms] * 2
