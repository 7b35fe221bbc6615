"""Blueprints as immutable data, and the options an execution runs with."""

from __future__ import annotations

import math
from typing import Any, Literal

import msgspec


class Model(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class RetryPolicy(Model, frozen=True, kw_only=True):
    max_attempts: int = 1
    backoff_ms: int = 0
    backoff_multiplier: float = 2.0
    max_backoff_ms: int = 60_000
    jitter: bool = False

    def delay_ms(self, attempt_no: int, random_unit: float = 0.5) -> float:
        """Wait before attempt `attempt_no + 1`; `random_unit` in [0, 1) spreads it ±50%."""
        try:
            growth = self.backoff_multiplier ** (attempt_no - 1)
        except OverflowError:  # a huge multiplier: the cap is what applies
            growth = math.inf
        delay = min(self.backoff_ms * growth, self.max_backoff_ms) if self.backoff_ms else 0.0
        if self.jitter:
            delay *= 0.5 + random_unit
        return float(max(delay, 0.0))


class Node(Model, frozen=True, kw_only=True):
    id: str
    type: str
    name: str | None = None
    config: dict[str, Any] = {}
    depends_on: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    timeout_ms: int | None = None
    breakpoint: bool = False
    continue_on_error: bool = False

    @property
    def title(self) -> str:
        return self.name or self.id


class Blueprint(Model, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    nodes: tuple[Node, ...]


WebhookEvent = Literal["completed", "failed", "cancelled", "paused"]


class Webhook(Model, frozen=True, kw_only=True):
    """POST the execution's status to `url` on these events, signed with `secret` if given."""

    url: str
    events: tuple[WebhookEvent, ...] = ("completed", "failed", "cancelled", "paused")
    secret: str | None = None


class RunOptions(Model, frozen=True, kw_only=True):
    """How one execution runs: chosen when it starts and kept with it in the log."""

    debug: bool = False
    trace_logs: bool = False
    timeout_ms: int | None = None
    webhook: Webhook | None = None
    idempotency_key: str | None = None
    #: For an execution of a batch: how many of the batch's executions may run at once.
    batch_concurrency: int | None = None
