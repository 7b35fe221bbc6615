"""The connection's outbox: answers of one loop turn written together, each in order."""

from __future__ import annotations

import asyncio

from rpc._http_connection import _outbox_of


class RecordingTransport:
    def __init__(self, name: str, log: list[tuple[str, object]]) -> None:
        self.name = name
        self.log = log
        self.closing = False

    def write(self, data: bytes) -> None:
        self.log.append((self.name, data))

    def close(self) -> None:
        self.closing = True
        self.log.append((self.name, "closed"))

    def is_closing(self) -> bool:
        return self.closing


async def test_answers_of_one_turn_go_out_together_in_order_at_its_end():
    log: list[tuple[str, object]] = []
    a, b = RecordingTransport("a", log), RecordingTransport("b", log)
    outbox = _outbox_of(asyncio.get_running_loop())
    outbox.send(a, b"1", b"", close=False)
    outbox.send(b, b"2", b"!", close=True)
    outbox.send(a, b"3", b"", close=False)
    assert log == []  # nothing is written during the turn
    await asyncio.sleep(0)
    assert log == [("a", b"1"), ("b", b"2!"), ("b", "closed"), ("a", b"3")]


async def test_an_answer_to_a_connection_gone_meanwhile_is_dropped():
    log: list[tuple[str, object]] = []
    gone = RecordingTransport("gone", log)
    outbox = _outbox_of(asyncio.get_running_loop())
    outbox.send(gone, b"late", b"", close=False)
    gone.closing = True
    outbox.flush()
    assert log == []


def test_each_event_loop_has_its_own_outbox():
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert _outbox_of(first) is _outbox_of(first)
        assert _outbox_of(first) is not _outbox_of(second)
    finally:
        first.close()
        second.close()
