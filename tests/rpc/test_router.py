from __future__ import annotations

from typing import Any

import msgspec
import pytest

from rpc.errors import RPCError
from rpc.router import Caller, Kind, Scope, flatten, mutation, query, subscription
from tests import sample_router


def test_flatten_gives_dotted_paths():
    paths = set(flatten(sample_router.router))
    assert {"greet", "math.add", "nested.deep.noinput", "ticks"} <= paths


@pytest.mark.parametrize("name", ["", "a-b", "1x", "a.b", "a b"])
def test_malformed_names_fail_at_startup(name):
    with pytest.raises(ValueError, match="Invalid procedure name"):
        flatten({name: query(sample_router.noinput, Scope.ANY_KEY)})


def test_types_come_from_the_handler_annotations():
    proc = mutation(sample_router.add, Scope.EXECUTIONS_WRITE)
    assert (proc.kind, proc.input_type, proc.output_type) == (
        Kind.MUTATION,
        sample_router.AddInput,
        int,
    )
    assert query(sample_router.noinput, Scope.ANY_KEY).input_type is None
    assert subscription(sample_router.ticks, Scope.ANY_KEY).output_type is sample_router.Tick
    assert "Tracked ticks" in subscription(sample_router.ticks, Scope.ANY_KEY).description


def test_a_handler_must_take_context_and_input():
    async def bad(ctx: Any) -> None:
        return None

    with pytest.raises(TypeError, match="must take"):
        query(bad, Scope.ANY_KEY)


async def test_caller_runs_procedures_without_http():
    call = Caller(flatten(sample_router.router), ctx=None)
    assert await call("math.add", {"a": 2, "b": 3}) == 5
    assert await call("echo") == sample_router.EchoInput()
    assert await call("echo", sample_router.EchoInput(text="x")) == sample_router.EchoInput(
        text="x"
    )
    with pytest.raises(RPCError, match="Invalid input"):
        await call("math.add", {"a": "two", "b": 3})
    with pytest.raises(RPCError, match="No procedure found"):
        await call("nope")
    ticks = [tick async for tick in call.subscribe("ticks", {"count": 2})]
    assert [tick.id for tick in ticks] == ["1", "2"]
    assert isinstance(ticks[0].data, msgspec.Struct)
