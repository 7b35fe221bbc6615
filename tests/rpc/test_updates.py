"""Event ids of the subscriptions: `G.k`, parsed from what a client sends back."""

from __future__ import annotations

import pytest

from rpc.errors import ErrorCode, RPCError
from rpc.procedures._updates import event_id, parse_event_id


@pytest.mark.parametrize(
    ("text", "position"), [(None, None), ("", None), ("7", (7, 9)), ("7.", (7, 9)), ("7.3", (7, 3))]
)
def test_an_event_id_is_a_row_and_a_slot(text, position):
    assert parse_event_id(text) == position


def test_an_event_id_survives_its_round_trip():
    assert parse_event_id(event_id((123, 4))) == (123, 4)


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "-1",
        "1.2.3",
        ".1",
        "1.x",
        "99999999999999999999.4",
        "1." + "9" * 19,
        "\u00b2",
        "\u0661",
    ],
)
def test_an_id_this_server_never_sent_is_a_bad_request(text):
    """Found by tests/rpc/test_fuzz_procedures.py: "99999999999999999999.4" reached SQLite
    as an integer it cannot hold (OverflowError, a 500 in the stream), and "²" passed
    str.isdigit() but not int()."""
    with pytest.raises(RPCError) as caught:
        parse_event_id(text)
    assert caught.value.code is ErrorCode.BAD_REQUEST
