"""The endpoint over a real server: what only a socket shows (sizes, headers, CORS, streams)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests import sample_router

TRPC = "/api/trpc"


def echo_input(text: str) -> str:
    return json.dumps({"json": {"text": text}})


def raw_get(base: str, target: str) -> tuple[int, dict]:
    """GET with http.client: httpx refuses URLs over 64 KiB, and these tests need longer ones."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_responses_carry_content_length(sample_server):
    response = httpx.get(f"{sample_server}{TRPC}/noinput")
    assert response.headers["content-length"] == str(len(response.content))


def test_a_long_get_input_within_the_limit_is_served(sample_server):
    # 60 KiB of input, percent-encoded to about 180 KiB of URL: past httptools' 64 KiB URL limit.
    text = "&?x" * 20_000
    target = f"{TRPC}/echo?input={quote(echo_input(text))}"
    assert len(target) > 65_536
    status, body = raw_get(sample_server, target)
    assert status == 200
    assert body["result"]["data"]["json"]["text"] == text


def test_a_get_input_over_the_limit_is_a_trpc_413(sample_server):
    status, body = raw_get(sample_server, f"{TRPC}/echo?input={quote(echo_input('x' * 70_000))}")
    assert status == 413
    assert body["error"]["json"]["data"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_url_far_over_the_limit_is_still_a_trpc_413(sample_server):
    status, body = raw_get(sample_server, f"{TRPC}/echo?input={'x' * 2_000_000}")
    assert status == 413
    assert body["error"]["json"]["data"]["code"] == "PAYLOAD_TOO_LARGE"
    assert httpx.get(f"{sample_server}/healthz").status_code == 200


def test_a_body_over_the_limit_is_413_stated_or_streamed(sample_server):
    big = b'{"json":{"a":1,"b":2,"pad":"' + b"x" * (1024 * 1024) + b'"}}'
    headers = {"content-type": "application/json"}
    response = httpx.post(f"{sample_server}{TRPC}/math.add", content=big, headers=headers)
    assert response.status_code == 413
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    response = httpx.post(f"{sample_server}{TRPC}/math.add", content=chunks, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["json"]["data"]["code"] == "PAYLOAD_TOO_LARGE"


def test_oversized_headers_are_refused_without_harm(sample_server):
    response = httpx.get(f"{sample_server}{TRPC}/noinput", headers={"x-big": "y" * 100_000})
    assert response.status_code == 400
    assert httpx.get(f"{sample_server}{TRPC}/noinput").status_code == 200


def test_healthz_and_head(sample_server):
    assert httpx.get(f"{sample_server}/healthz").json() == {"status": "ok"}
    assert httpx.head(f"{sample_server}{TRPC}/noinput").status_code == 204


def test_same_origin_only_by_default(sample_server):
    response = httpx.get(f"{sample_server}{TRPC}/noinput", headers={"origin": "http://evil.test"})
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(
        f"{sample_server}{TRPC}/math.add",
        headers={"origin": "http://evil.test", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_origins_get_cors(make_server):
    url = make_server(sample_router.router, cors_origins=("http://app.test",))
    preflight = httpx.options(
        f"{url}{TRPC}/math.add",
        headers={
            "origin": "http://app.test",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.test"
    response = httpx.get(f"{url}{TRPC}/noinput", headers={"origin": "http://app.test"})
    assert response.headers["access-control-allow-origin"] == "http://app.test"
    other = httpx.get(f"{url}{TRPC}/noinput", headers={"origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


def test_a_subscription_client_that_leaves_frees_the_server(sample_server):
    for _ in range(3):
        with httpx.stream("GET", f"{sample_server}{TRPC}/forever") as response:
            lines = response.iter_lines()
            assert next(lines) == "event: connected"
            assert any(
                line.startswith("data: {") for line, _ in zip(lines, range(10), strict=False)
            )
    assert httpx.get(f"{sample_server}{TRPC}/noinput").status_code == 200


@pytest.mark.parametrize("prefix", ["/rpc", "/v1/trpc/"])
def test_the_prefix_is_configurable(make_server, prefix):
    url = make_server(sample_router.router, prefix=prefix)
    response = httpx.get(f"{url}{prefix.rstrip('/')}/noinput")
    assert response.json() == {"result": {"data": {"json": "ok"}}}
    assert httpx.get(f"{url}{TRPC}/noinput").status_code == 404


def test_non_utf8_in_the_query_is_a_clear_error(sample_server):
    status, body = raw_get(sample_server, f"{TRPC}/echo?input=%FF%FE")
    assert status == 400
    assert body["error"]["json"]["data"]["code"] == "PARSE_ERROR"
