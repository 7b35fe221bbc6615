"""Who is calling and whether they may: API keys, scopes and rate limits.

`identify` runs once per request, when its context is made; `check` runs before every call,
batched or not, so each call is held to its own procedure's scope and spends its own token.
Both work from memory: keys are in the KeyRing, buckets in TokenBuckets.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from rpc.errors import ErrorCode, RPCError
from rpc.ratelimit import RateLimit, TokenBuckets
from rpc.router import Procedure, Scope
from store.keys import KeyRing

SCOPES = frozenset(scope.value for scope in Scope if scope is not Scope.ANY_KEY)
_HOW_TO_SEND = (
    "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
    '(subscriptions may pass connectionParams {"apiKey": "<key>"})'
)


class Caller(msgspec.Struct, frozen=True):
    """Made per request: small and built in C."""

    name: str | None  #: the API key's name; None while the server runs open
    scopes: frozenset[str]
    bucket: str  #: whose tokens its calls spend: the key's, or the client address's when open


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(host: str, has_keys: bool, db: str) -> str | None:
    """Why the server must not start open on `host`, or None."""
    if has_keys or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who reaches it could run "
        f"anything. Create a key first (blueprint keys create --name admin --scopes admin "
        f"--db {db}), or serve on 127.0.0.1"
    )


def allows(scopes: frozenset[str], needed: Scope) -> bool:
    return needed is Scope.ANY_KEY or needed.value in scopes or Scope.ADMIN.value in scopes


class Gate:
    def __init__(self, keys: KeyRing, *, open_allowed: bool, rate_limit: RateLimit | None) -> None:
        """`open_allowed`: whether the server may run without keys (it listens on loopback
        only); once a key exists, keys are required either way."""
        self._keys = keys
        self._open_allowed = open_allowed
        self._rate_limit = rate_limit
        self._buckets = TokenBuckets(rate_limit) if rate_limit is not None else None

    def identify(
        self,
        headers: Mapping[str, str],
        connection_params: Mapping[str, str],
        client: str | None,
    ) -> Caller:
        """The caller, or UNAUTHORIZED."""
        keys = self._keys
        keys.refresh()  # one read of a mapped stamp: a key revoked a moment ago is refused now
        if self._open_allowed and not keys.has_keys:
            return Caller(None, SCOPES, f"address {client}")
        presented = _presented_key(headers, connection_params)
        key = keys.verify(presented)
        if key is None:
            raise RPCError(ErrorCode.UNAUTHORIZED, "The API key is unknown or revoked")
        return Caller(key.name, key.scopes, f"key {key.name}")

    def check(self, ctx: Any, proc: Procedure, path: str) -> None:
        """The resolver's guard: FORBIDDEN without the scope, TOO_MANY_REQUESTS over the rate."""
        caller: Caller = ctx.caller
        if not allows(caller.scopes, proc.scope):
            raise RPCError(
                ErrorCode.FORBIDDEN,
                f'This API key lacks the scope "{proc.scope.value}", which {path} needs',
            )
        if self._buckets is not None:
            wait = self._buckets.take(caller.bucket)
            if wait:
                seconds = max(1, math.ceil(wait))
                raise RPCError(
                    ErrorCode.TOO_MANY_REQUESTS,
                    f"Too many calls: the limit is {self._rate_limit} per "
                    f"{'key' if caller.name else 'client'}; try again in {seconds} s",
                    headers={"retry-after": str(seconds)},
                )


def _presented_key(headers: Mapping[str, str], connection_params: Mapping[str, str]) -> str:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise RPCError(
                ErrorCode.UNAUTHORIZED,
                "The Authorization header must read 'Bearer <key>'",
            )
        return key.strip()
    presented = headers.get("x-api-key") or connection_params.get("apiKey")
    if not presented:
        raise RPCError(ErrorCode.UNAUTHORIZED, f"This server needs an API key: {_HOW_TO_SEND}")
    return presented.strip()
