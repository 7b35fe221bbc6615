"""Input decoding: the one-pass reading of a plain envelope agrees with the general path."""

from __future__ import annotations

import copy

import pytest

from rpc import codec
from rpc.errors import RPCError
from rpc.procedures import root_router
from rpc.router import flatten

PROCEDURES = flatten(root_router())
ENVELOPES = [
    b'{"json":{"executionId":"exec_1795406121365_m2poj"}}',
    b'{"json":{"executionId":"exec_1795406121365_m2poj","logsLimit":5,"include":["metrics"]}}',
    b'{"json":{"executionId":"exec_1795406121365_m2poj"},"meta":{"values":{}}}',
    b'{"json":{"executionId":"exec_1795406121365_m2poj"},"extra":1}',
    b'{"json":{"batchId":"batch_1795406121365_m2poj"}}',
    b'{"json":{"blueprintId":"bp_1795406121365_m2poj","input":{"a":[1,2]}}}',
    b'{"json":{"name":"n","nodes":[]}}',
    b'{"json":{"limit":3}}',
    b'{"json":{"limit":3},"meta":{"values":{"limit":["undefined"]}}}',
    b'{"json":{"limit":0}}',
    b'{"json":{"unknown":true}}',
    b'{"json":{}}',
    b'{"json":null}',
    b'{"json":[]}',
    b'{"json":"x"}',
    b'{"meta":{}}',
    b"{}",
    b'{"json":{"at":"2024-12-01T10:00:00.000Z"},"meta":{"values":{"at":["Date"]}}}',
    b'{"json":',
]


def general_path(raw: bytes, input_codec: codec.InputCodec) -> object:
    plain = copy.copy(input_codec)
    plain.enveloped = None
    return decode(raw, plain)


def decode(raw: bytes, input_codec: codec.InputCodec) -> object:
    try:
        return codec.decode_input(raw, input_codec, codec.Transformer.SUPERJSON)
    except RPCError as err:
        return (err.code, err.message)


@pytest.mark.parametrize("path", sorted(PROCEDURES))
@pytest.mark.parametrize("raw", ENVELOPES)
def test_the_one_pass_decode_gives_what_the_general_path_gives(path, raw):
    input_codec = PROCEDURES[path].codec
    assert decode(raw, input_codec) == general_path(raw, input_codec)


def test_struct_inputs_take_the_one_pass_decode():
    assert PROCEDURES["execution.getExecutionStatus"].codec.enveloped is not None
    assert PROCEDURES["blueprint.validate"].codec.enveloped is None  # Any: null means absent
