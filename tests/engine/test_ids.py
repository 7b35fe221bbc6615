"""Identifiers: their shape, and suffixes drawn from the whole alphabet."""

from __future__ import annotations

from engine.ids import is_execution_id, new_id


def test_new_ids_have_the_documented_shape_and_use_every_suffix_character() -> None:
    ids = [new_id("exec", epoch_ms=1733050800000) for _ in range(2000)]
    assert all(is_execution_id(i) and i.startswith("exec_1733050800000_") for i in ids)
    assert set("".join(i[-5:] for i in ids)) == set("0123456789abcdefghijklmnopqrstuvwxyz")
    assert len(set(ids)) > 1990  # 36**5 suffixes: repeats are rare
