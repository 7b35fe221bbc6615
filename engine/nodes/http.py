"""http: one request; config strings may hold `{{ }}` templates."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from engine.context import NodeContext
from engine.errors import NodeError
from engine.expressions import ExpressionError, check_template
from engine.registry import NodeRegistry

_json = msgspec.json.Encoder()
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    method: str = "GET"
    headers: dict[str, str] = {}
    body: Any = msgspec.UNSET
    expectStatus: tuple[int, ...] = ()  #: empty: any 2xx
    timeoutMs: int = 30_000

    def __post_init__(self) -> None:
        if self.method.upper() not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(_METHODS))}")
        if not 1 <= self.timeoutMs <= 3_600_000:
            raise ValueError("timeoutMs must be between 1 and 3600000")
        try:
            check_template(
                [self.url, self.headers, self.body if self.body is not msgspec.UNSET else None]
            )
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        if "{{" not in self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")


async def http(ctx: NodeContext, config: HttpConfig) -> dict[str, Any]:
    """Sends one HTTP request; 5xx, 429 and connection errors are retryable, other 4xx not."""
    try:
        url = ctx.render(config.url)
        headers = {name: _text(value) for name, value in ctx.render(dict(config.headers)).items()}
        body = ctx.render(config.body) if config.body is not msgspec.UNSET else None
    except ExpressionError as exc:
        raise NodeError("EXPRESSION_ERROR", str(exc), retryable=False) from None
    options: dict[str, Any] = {"headers": headers, "timeout": config.timeoutMs / 1000}
    if isinstance(body, (dict, list)):
        options["json"] = body
    elif body is not None:
        options["content"] = str(body)
    try:
        request = ctx.http.build_request(config.method.upper(), str(url), **options)
    except (httpx.InvalidURL, ValueError) as exc:
        # Such as a header that is not ASCII, or a URL a template broke: no retry can help.
        message = f"{config.method} {url} cannot be sent: {exc}"
        raise NodeError("HTTP_INVALID_REQUEST", message, retryable=False) from None
    try:
        response = await ctx.http.send(request)
    except httpx.TimeoutException:
        raise NodeError("HTTP_TIMEOUT", f"{config.method} {url} timed out") from None
    except httpx.HTTPError as exc:
        raise NodeError("HTTP_ERROR", f"{config.method} {url} failed: {exc}") from None
    result = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _body(response),
    }
    if not _expected(response.status_code, config.expectStatus):
        status = response.status_code
        retryable = status >= 500 or status == 429 or status < 400
        raise NodeError(
            "HTTP_STATUS", f"{config.method} {url} answered {status}", retryable=retryable
        )
    return result


def _text(value: Any) -> str:
    """A header as it must travel: text. A `{{ expr }}` that is the whole value may give a
    number, null or an object; those go as JSON, as templates inside text do."""
    return value if isinstance(value, str) else _json.encode(value).decode()


def _expected(status: int, expected: tuple[int, ...]) -> bool:
    return status in expected if expected else 200 <= status <= 299


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


def register(registry: NodeRegistry) -> None:
    registry.node_type("http", config=HttpConfig, plain_output=True)(http)
