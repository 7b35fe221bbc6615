"""The tRPC HTTP semantics, on plain values: no server, no Starlette."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from rpc.codec import Transformer
from rpc.resolver import HTTPRequest, HTTPResponse, Resolver, WireOptions
from rpc.router import flatten
from tests import sample_router

PROCEDURES = flatten(sample_router.router)
NO_INPUT = '{"json":null,"meta":{"values":["undefined"],"v":1}}'


def make_resolver(**options: Any) -> Resolver:
    return Resolver(PROCEDURES, WireOptions(**options), lambda request, params: None)


async def get(path: str, input: str | None = None, *, batch: bool = False, **options: Any):
    query = "batch=1" if batch else ""
    if input is not None:
        query += ("&" if query else "") + "input=" + quote(input)
    request = HTTPRequest("GET", path, query.encode())
    return await make_resolver(**options).resolve(request)


async def post(path: str, body: str = "", *, batch: bool = False, **options: Any):
    headers = {"content-type": "application/json"}
    request = HTTPRequest("POST", path, b"batch=1" if batch else b"", headers, body.encode())
    return await make_resolver(**options).resolve(request)


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)


def error_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope["error"]["json"]


async def test_query_answers_in_a_superjson_envelope():
    response = await get("greet", '{"json":{"name":"bob"}}')
    assert response.status == 200
    assert body(response) == {"result": {"data": {"json": {"greeting": "hi bob", "at": None}}}}
    assert ("vary", "trpc-accept, accept") in response.headers


@pytest.mark.parametrize(
    "input",
    [None, "", NO_INPUT, '{"json":null,"meta":{"values":["undefined"]}}', "{}", '{"json":null}'],
)
async def test_absent_input_in_every_form_the_clients_send(input):
    response = await get("echo", input)
    assert response.status == 200
    assert body(response)["result"]["data"]["json"] == {
        "text": "default",
        "tags": [],
        "extra": None,
    }


async def test_a_date_in_meta_becomes_a_datetime():
    input = (
        '{"json":{"name":"b","at":"2024-05-06T01:02:03.004Z"},'
        '"meta":{"values":{"at":["Date"]},"v":1}}'
    )
    response = await get("greet", input)
    assert body(response)["result"]["data"]["json"]["at"] == "2024-05-06T01:02:03.004000+00:00"


async def test_undefined_fields_in_meta_are_absent():
    input = '{"json":{"text":"x","extra":null},"meta":{"values":{"extra":["undefined"]}}}'
    response = await get("echo", input)
    assert body(response)["result"]["data"]["json"]["extra"] is None
    assert response.status == 200


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ('{"json":{"name":5}}', "$.name"),
        ('{"json":{"name":"x","colour":"red"}}', "colour"),
        ('{"json":{}}', "name"),
    ],
)
async def test_invalid_input_is_bad_request_naming_the_field(input, fragment):
    response = await get("greet", input)
    error = error_of(body(response))
    assert response.status == 400
    assert error["data"]["code"] == "BAD_REQUEST"
    assert fragment in error["message"]


async def test_required_input_missing():
    response = await get("greet")
    assert error_of(body(response))["message"] == "Input is required"


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ('{"json":', "not valid JSON"),
        ('{"name":"x"}', "not a superjson envelope"),
        ("5", "not a superjson envelope"),
        ('{"json":{},"meta":3}', '"meta" must be an object'),
        ('{"meta":{"values":["undefined"]}}', 'needs "json"'),
        ('{"json":{"name":"x"},"meta":{"values":{"nope":["Date"]}}}', "Invalid superjson meta"),
    ],
)
async def test_malformed_envelopes_are_parse_errors(input, fragment):
    response = await get("greet", input)
    error = error_of(body(response))
    assert (response.status, error["code"], error["data"]["code"]) == (400, -32700, "PARSE_ERROR")
    assert fragment in error["message"]


async def test_mutation_by_post_and_empty_body_is_no_input():
    assert body(await post("math.add", '{"json":{"a":1,"b":2}}')) == {
        "result": {"data": {"json": 3}}
    }
    response = await post("conflict")
    assert error_of(body(response))["data"]["code"] == "CONFLICT"
    assert response.status == 409


async def test_query_by_post_and_mutation_by_get_are_method_not_supported():
    response = await post("noinput", NO_INPUT)
    error = error_of(body(response))
    assert (response.status, error["code"]) == (405, -32005)
    assert error["message"] == 'Unsupported POST-request to query procedure at path "noinput"'
    assert ("allow", "GET") in response.headers
    response = await get("math.add", '{"json":{"a":1,"b":2}}')
    assert response.status == 405
    assert ("allow", "POST") in response.headers


async def test_method_override_lets_queries_come_by_post_but_never_mutations_by_get():
    response = await post("greet", '{"json":{"name":"x"}}', allow_method_override=True)
    assert response.status == 200
    response = await get("math.add", '{"json":{"a":1,"b":2}}', allow_method_override=True)
    assert response.status == 405


async def test_unknown_path_is_not_found_and_nested_paths_resolve():
    response = await get("nope")
    error = error_of(body(response))
    assert (response.status, error["data"]["path"]) == (404, "nope")
    assert error["message"] == 'No procedure found on path "nope"'
    assert (await get("nested.deep.noinput")).status == 200


async def test_batch_answers_in_order_with_207_when_statuses_differ():
    input = '{"0":{"json":{"name":"a"}},"2":{"json":{"text":"t"}}}'
    response = await get("greet,noinput,echo,forbidden,nope", input, batch=True)
    items = body(response)
    assert response.status == 207
    assert items[0]["result"]["data"]["json"]["greeting"] == "hi a"
    assert items[1]["result"]["data"]["json"] == "ok"
    assert items[2]["result"]["data"]["json"]["text"] == "t"
    assert error_of(items[3])["data"] == {
        "code": "FORBIDDEN",
        "httpStatus": 403,
        "path": "forbidden",
    }
    assert error_of(items[4])["data"]["code"] == "NOT_FOUND"


async def test_batch_of_the_same_status_has_that_status():
    response = await get("forbidden,forbidden", "{}", batch=True)
    assert response.status == 403
    assert len(body(response)) == 2
    response = await get("noinput", "{}", batch=True)
    assert (response.status, len(body(response))) == (200, 1)


async def test_batch_of_mutations_by_post():
    payload = '{"0":{"json":{"a":1,"b":2}},"1":{"json":{"a":3,"b":4}}}'
    response = await post("math.add,math.add", payload, batch=True)
    assert [item["result"]["data"]["json"] for item in body(response)] == [3, 7]


async def test_batch_input_that_is_not_an_object_fails_every_call():
    response = await get("noinput,noinput", "[1,2]", batch=True)
    items = body(response)
    assert response.status == 400
    assert all("needs to be an object" in error_of(item)["message"] for item in items)


async def test_batch_over_the_limit_is_one_bad_request():
    response = await get(",".join(["noinput"] * 3), "{}", batch=True, max_batch_size=2)
    error = error_of(body(response))
    assert response.status == 400
    assert "exceeds maximum size" in error["message"]
    assert error["data"]["path"] is None


async def test_mixing_kinds_in_a_batch_is_refused():
    response = await get("noinput,math.add", "{}", batch=True)
    assert "Cannot mix procedure types" in error_of(body(response))["message"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"]
)
async def test_post_needs_json_content_type(content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    request = HTTPRequest("POST", "math.add", b"", headers, b'{"json":{"a":1,"b":2}}')
    response = await make_resolver().resolve(request)
    assert response.status == 415
    assert error_of(body(response))["data"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_get_input_over_the_limit_is_payload_too_large():
    text = "x" * 2000
    response = await get("echo", json.dumps({"json": {"text": text}}), max_input_bytes=1000)
    assert response.status == 413
    assert error_of(body(response))["data"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_nesting_deeper_than_the_limit_is_bad_request():
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    ok = await get("echo", '{"json":{"extra":{"a":' + nested(3) + "}}}", max_depth=5)
    assert ok.status == 200
    deep = await get("echo", '{"json":{"extra":{"a":' + nested(4) + "}}}", max_depth=5)
    assert deep.status == 400
    assert "deeper than the limit of 5" in error_of(body(deep))["message"]


@pytest.mark.parametrize(
    ("path", "input", "headers"),
    [
        ("greet", '{"json":{"name":"bob"}}', {}),
        ("echo", "", {}),
        ("echo", NO_INPUT, {}),
        ("greet", '{"json":{"name":3}}', {}),
        ("greet", '{"json":', {}),
        ("echo", '{"json":{"text":"' + "x" * 2000 + '"}}', {}),
        ("echo", '{"json":{"extra":' + "[" * 70 + "]" * 70 + "}}", {}),
        ("nope", '{"json":1}', {}),
        ("greet,echo", '{"json":1}', {}),
        ("add", '{"json":{"a":1,"b":2}}', {}),
        ("boom", "", {}),
        ("greet", '{"json":{"name":"bob"}}', {"trpc-accept": "application/jsonl"}),
    ],
)
async def test_a_lone_input_parameter_answers_as_the_general_parse_does(path, input, headers):
    """A GET whose only parameter is its input is taken without the general parse: any other
    parameter sends it the general way, and the two answers must be the same, bytes and all."""
    resolver = make_resolver(max_input_bytes=1000)
    alone = ("input=" + quote(input)).encode()
    answers = []
    for query in (alone, alone + b"&unused=1", alone):  # the third: once parsed, remembered
        response = await resolver.resolve(HTTPRequest("GET", path, query, headers))
        answers.append((response.status, response.headers, response.body))
    assert answers[0] == answers[1] == answers[2]


async def test_head_is_204_and_other_methods_are_refused():
    assert (await make_resolver().resolve(HTTPRequest("HEAD", "noinput"))).status == 204
    response = await make_resolver().resolve(HTTPRequest("PUT", "noinput"))
    assert response.status == 405
    assert error_of(body(response))["data"]["code"] == "METHOD_NOT_SUPPORTED"


async def test_transformer_none_sends_bare_values():
    response = await get("greet", '{"name":"b"}', transformer=Transformer.NONE)
    assert body(response) == {"result": {"data": {"greeting": "hi b", "at": None}}}
    response = await get("nope", transformer=Transformer.NONE)
    assert body(response)["error"]["data"]["code"] == "NOT_FOUND"
    response = await get(
        "greet,echo", '{"0":{"name":"c"}}', batch=True, transformer=Transformer.NONE
    )
    assert body(response)[0]["result"]["data"]["greeting"] == "hi c"


async def test_internal_errors_hide_details_unless_in_development():
    error = error_of(body(await get("boom")))
    assert error["message"] == "Internal server error"
    assert "stack" not in error["data"]
    error = error_of(body(await get("boom", dev=True)))
    assert "kaboom" in error["message"]
    assert "RuntimeError" in error["data"]["stack"]


async def read_stream(response: HTTPResponse) -> str:
    assert response.stream is not None
    return b"".join([chunk async for chunk in response.stream]).decode()


async def test_subscription_streams_server_sent_events():
    response = await get("ticks", '{"json":{"count":2}}')
    assert response.status == 200
    assert ("content-type", "text/event-stream") in response.headers
    assert await read_stream(response) == (
        "event: connected\ndata: {}\n\n\n"
        'data: {"json":{"n":1}}\nid: 1\n\n\n'
        'data: {"json":{"n":2}}\nid: 2\n\n\n'
        "event: return\ndata: \n\n\n"
    )


async def test_subscription_resumes_after_last_event_id_from_header_or_query():
    input = b"input=" + quote('{"json":{"count":3}}').encode()
    request = HTTPRequest("GET", "ticks", input, {"last-event-id": "2"})
    text = await read_stream(await make_resolver().resolve(request))
    assert "id: 2\n" not in text and "id: 3\n" in text
    request = HTTPRequest("GET", "ticks", b"lastEventId=2")
    text = await read_stream(await make_resolver().resolve(request))
    assert "id: 2\n" not in text and "id: 3\n" in text


async def test_subscription_errors_arrive_as_serialized_error_events():
    text = await read_stream(await get("ticks", '{"json":{"count":3,"failAfter":1}}'))
    assert "id: 1\n" in text
    error_line = text.split("event: serialized-error\ndata: ")[1].split("\n")[0]
    assert json.loads(error_line)["json"]["data"]["code"] == "CONFLICT"
    text = await read_stream(await get("ticks", '{"json":{"count":"many"}}'))
    assert "event: serialized-error" in text and "BAD_REQUEST" in text


async def test_subscriptions_cannot_be_batched():
    response = await get("ticks", "{}", batch=True)
    assert "Cannot batch subscription calls" in error_of(body(response))["message"]


async def test_stream_batch_sends_json_lines():
    headers = {"trpc-accept": "application/jsonl"}
    query = b"batch=1&input=" + quote('{"0":{"json":{"name":"a"}}}').encode()
    response = await make_resolver().resolve(HTTPRequest("GET", "greet,forbidden", query, headers))
    lines = [json.loads(line) for line in (await read_stream(response)).splitlines()]
    assert lines[0] == {"json": {"0": [[0], [None, 0, 0]], "1": [[0], [None, 0, 1]]}}
    chunks = {line["json"][0]: line["json"][2][0][0] for line in lines[1:]}
    assert chunks[0] == {"result": {"data": {"greeting": "hi a", "at": None}}}
    assert chunks[1]["error"]["data"]["code"] == "FORBIDDEN"


async def test_stream_requests_must_be_batched():
    request = HTTPRequest("GET", "noinput", b"", {"accept": "application/jsonl"})
    response = await make_resolver().resolve(request)
    assert "must be batched" in error_of(body(response))["message"]


async def test_connection_params_must_be_an_object_of_strings():
    query = b"connectionParams=" + quote('{"apiKey":5}').encode()
    response = await make_resolver().resolve(HTTPRequest("GET", "noinput", query))
    assert error_of(body(response))["data"]["code"] == "PARSE_ERROR"
