import pytest

from rpc.errors import HTTP_STATUSES, JSONRPC_CODES, ErrorCode, RPCError, shape_error, to_rpc_error
from tests.rpc._codes import CONTRACT


@pytest.mark.parametrize(("name", "numbers"), CONTRACT.items())
def test_every_code_of_the_contract_has_its_numbers(name, numbers):
    code = ErrorCode(name)
    assert (JSONRPC_CODES[code], HTTP_STATUSES[code]) == numbers
    shape = shape_error(RPCError(code, "m"), "p")
    assert (shape.code, shape.data.httpStatus, shape.data.code, shape.data.path) == (
        numbers[0],
        numbers[1],
        name,
        "p",
    )


def test_unknown_exceptions_become_internal_errors_without_their_message():
    err = to_rpc_error(KeyError("secret"), "x")
    assert (err.code, err.message) == (ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error")
    assert isinstance(err.__cause__, KeyError)


def test_development_mode_adds_the_stack_and_the_real_message():
    try:
        raise ValueError("detail")
    except ValueError as exc:
        err = to_rpc_error(exc)
    shape = shape_error(err, None, dev=True)
    assert "ValueError: detail" in shape.message
    assert "Traceback" in str(shape.data.stack)


def test_problems_travel_in_data():
    shape = shape_error(RPCError(ErrorCode.BAD_REQUEST, "bad", problems=[{"field": "x"}]), None)
    assert shape.data.problems == [{"field": "x"}]
