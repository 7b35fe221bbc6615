"""Webhook delivery: POST the execution's status when it pauses or ends, signed, retried.

Deliveries are rows of the log (written with the change they report), so a crash loses none:
the next start finds them due. Only hosts the operator allows are ever contacted, checked when
the execution starts and again before each attempt; redirects are not followed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlsplit

import httpx
import msgspec

from engine.clock import now_ms
from engine.ports import Delivery, DeliveryLog
from engine.records import LogLevel

log = logging.getLogger("blueprint.engine")
LOOPBACK = ("127.0.0.1", "localhost", "::1")

Note = Callable[[str, LogLevel, str], Awaitable[None]]


class WebhookPolicy(msgspec.Struct, frozen=True, kw_only=True):
    allowed_hosts: tuple[str, ...] = LOOPBACK
    attempts: int = 6
    first_delay_ms: int = 500
    max_delay_ms: int = 30_000
    timeout_ms: int = 10_000
    poll_ms: int = 500

    def delay_ms(self, attempt: int) -> int:
        """Before attempt `attempt + 1`: doubling from first_delay_ms, capped, ±25% jitter."""
        delay = min(self.first_delay_ms * 2 ** (attempt - 1), self.max_delay_ms)
        return int(delay * random.uniform(0.75, 1.25))


def refusal(url: str, allowed_hosts: Collection[str]) -> str | None:
    """Why a webhook may not go to `url`, or None if it may."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is not a number below 65536)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        return f"webhook url {url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook url {url!r} must be http:// or https:// with a host"
    if parts.hostname.lower() not in {host.lower() for host in allowed_hosts}:
        allowed = ", ".join(allowed_hosts)
        return (
            f"webhook host {parts.hostname!r} is not allowed; this server allows {allowed} "
            "(its operator can add hosts with --webhook-allow)"
        )
    return None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDeliverer:
    def __init__(
        self,
        deliveries: DeliveryLog,
        http: Callable[[], httpx.AsyncClient],
        note: Note,
        policy: WebhookPolicy,
        owner: str | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._owner = owner  #: deliver only for this engine's executions, when several share a log
        self._http = http
        self._note = note
        self._policy = policy
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        #: Deliveries whose attempt ended while `due()` was being read: the rows it returns for
        #: them may predate that attempt's write, so they wait for the next poll.
        self._ended_during_read: set[int] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._policy.poll_ms / 1000):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._ended_during_read = set()
            try:
                due = await self._deliveries.due(self._owner)
                stale, self._ended_during_read = self._ended_during_read, None
                for delivery in due:
                    if delivery.id not in self._in_flight and delivery.id not in stale:
                        task = asyncio.ensure_future(self._attempt(delivery))
                        self._in_flight[delivery.id] = task
                        task.add_done_callback(functools.partial(self._forget, delivery.id))
            except Exception:
                self._ended_during_read = None
                log.exception("looking for due webhooks failed; trying again")

    def _forget(self, delivery_id: int, _: object) -> None:
        self._in_flight.pop(delivery_id, None)
        if self._ended_during_read is not None:
            self._ended_during_read.add(delivery_id)

    async def close(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _attempt(self, delivery: Delivery) -> None:
        attempt = delivery.attempts + 1
        target = f"Webhook {delivery.event} to {delivery.url}"
        why_not = refusal(delivery.url, self._policy.allowed_hosts)
        if why_not is not None:
            await self._deliveries.attempted(delivery.id, attempt, "failed", why_not, now_ms())
            await self._note(delivery.execution_id, LogLevel.ERROR, f"{target} not sent: {why_not}")
            return
        error = await self._post(delivery)
        if error is None:
            await self._deliveries.attempted(delivery.id, attempt, "delivered", None, now_ms())
            await self._note(
                delivery.execution_id, LogLevel.INFO, f"{target} delivered (attempt {attempt})"
            )
        elif attempt >= self._policy.attempts:
            await self._deliveries.attempted(delivery.id, attempt, "failed", error, now_ms())
            message = f"{target} failed: {error}; gave up after {attempt} attempts"
            await self._note(delivery.execution_id, LogLevel.ERROR, message)
        else:
            delay = self._policy.delay_ms(attempt)
            await self._deliveries.attempted(
                delivery.id, attempt, "pending", error, now_ms() + delay
            )
            message = f"{target} failed (attempt {attempt}): {error}; retrying in {delay} ms"
            await self._note(delivery.execution_id, LogLevel.WARN, message)

    async def _post(self, delivery: Delivery) -> str | None:
        """None when delivered, else what went wrong."""
        headers = {
            "content-type": "application/json",
            "user-agent": "blueprint-webhook",
            "x-blueprint-event": delivery.event,
            "x-blueprint-delivery": str(delivery.id),
        }
        if delivery.secret:
            headers["x-blueprint-signature"] = signature(delivery.secret, delivery.body)
        try:
            response = await self._http().post(
                delivery.url,
                content=delivery.body,
                headers=headers,
                timeout=self._policy.timeout_ms / 1000,
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"answered HTTP {response.status_code}"
