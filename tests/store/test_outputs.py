"""Outputs stored by reference: a noop chain costs O(n) bytes, and every reader (status, include
outputs, resume, retry) gets back exactly what the engine produced."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import msgspec
import pytest

from store import Store
from store.outputs import LINK_MIN_BYTES, CorruptOutputs, OutputSizes, StoredOutputs, encode_output

BIG = {"payload": "x" * LINK_MIN_BYTES, "n": 1}


def chain(n: int, *, then: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "noop"}]
    nodes += [{"id": f"n{i}", "type": "noop", "dependsOn": [f"n{i - 1}"]} for i in range(1, n)]
    return {"name": f"chain of {n}", "nodes": nodes + (then or [])}


def nested(n: int, value: Any) -> Any:
    """What n{n-1} of a chain outputs: each node wraps the one before it."""
    for i in range(n - 1):
        value = {f"n{i}": value}
    return value


def output_rows(store: Store, execution_id: str) -> list[tuple[int, bytes, bytes | None]]:
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute(
            "SELECT idx, output, links FROM steps WHERE execution_id = ? AND output IS NOT NULL"
            " ORDER BY idx",
            (execution_id,),
        ).fetchall()
    conn.close()
    return rows


async def status_of(store: Store, execution_id: str, include: tuple[str, ...] = ()) -> Any:
    return json.loads(await store.executions.status(execution_id, 10, include))


async def test_a_long_chain_is_stored_in_linear_space_and_read_back_whole(store, run_blueprint):
    n = 300
    execution_id = await run_blueprint(chain(n), input=BIG)

    rows = output_rows(store, execution_id)
    assert all(links is not None for _, _, links in rows[1:])
    # Whole, the outputs would take sum(k * 8 bytes) ~ 360 KB; by reference they take little.
    assert sum(len(output) for _, output, _ in rows) < 2 * len(json.dumps(BIG)) + 40 * n
    status = await status_of(store, execution_id, ("outputs",))
    assert status["finalOutputs"] == [
        {"nodeId": f"n{n - 1}", "output": nested(n, BIG), "artifacts": []}
    ]
    assert status["outputs"] == {f"n{k}": nested(k + 1, BIG) for k in range(n)}


async def test_small_outputs_stay_inline_so_a_status_read_needs_no_second_query(
    store, run_blueprint
):
    execution_id = await run_blueprint(chain(5), input={"small": True})
    assert [links for _, _, links in output_rows(store, execution_id)] == [None] * 5
    final = (await status_of(store, execution_id))["finalOutputs"][0]["output"]
    assert final == nested(5, {"small": True})


async def test_a_fan_in_links_each_branch_and_keeps_inline_entries(store, run_blueprint):
    document = {
        "name": "fan-in",
        "nodes": [
            {"id": "root", "type": "noop"},
            {"id": "left", "type": "noop", "dependsOn": ["root"]},
            {"id": "right", "type": "transform", "dependsOn": ["root"],
             "config": {"expression": "nodes.root.output.n"}},
            {"id": "join", "type": "noop", "dependsOn": ["left", "right", "root"]},
        ],
    }  # fmt: skip
    execution_id = await run_blueprint(document, input=BIG)
    (join_links,) = [links for idx, _, links in output_rows(store, execution_id) if idx == 3]
    assert {key for _, _, key in msgspec.json.decode(join_links)} == {"left", "root"}
    final = (await status_of(store, execution_id))["finalOutputs"][0]["output"]
    assert final == {"left": {"root": BIG}, "right": 1, "root": BIG}


async def test_a_restart_gets_linked_outputs_back_as_shared_objects(store, run_blueprint):
    asks = chain(
        50,
        then=[
            {"id": "ask", "type": "input", "dependsOn": ["n49"], "config": {"prompt": "Go?"}},
        ],
    )
    execution_id = await run_blueprint(asks, input=BIG)

    (item,) = await store.resume_source.load_unfinished()
    assert item.execution.id == execution_id
    assert set(item.outputs) == set(range(50))
    assert item.outputs[49] == nested(50, BIG)
    assert item.outputs[49]["n48"] is item.outputs[48]  # one object per step, as the engine had


async def test_a_retry_reuses_linked_outputs_and_links_them_again(store, engine, run_blueprint):
    failing = chain(30, then=[{"id": "check", "type": "assert", "dependsOn": ["n29"],
                               "config": {"expression": "input.n == `2`"}}])  # fmt: skip
    original = await run_blueprint(failing, input=BIG)
    source = await store.executions.retry_source(original)
    assert source is not None and len(source.succeeded) == 30
    assert source.succeeded["n29"][0] == nested(30, BIG)

    started = await engine.start(
        engine.compile(msgspec.to_builtins(source.blueprint)),
        blueprint_id=None,
        blueprint_version=None,
        input=source.input,
        retry_of=original,
        reuse=source.succeeded,
    )
    await engine.wait_settled(started.id, 10)
    await store.writer.flush()

    rows = output_rows(store, started.id)
    assert len(rows) == 30 and all(links is not None for _, _, links in rows[1:])
    retried = await status_of(store, started.id, ("outputs",))
    assert retried["outputs"] == (await status_of(store, original, ("outputs",)))["outputs"]


def test_an_entry_whose_size_is_unknown_is_linked_and_expands_back():
    sizes = OutputSizes()
    output = {"a": [1, 2], "b": "text", "c": {"deep": True}}
    encoded, links = encode_output("e", 5, output, {"a": 1, "c": 2}, sizes)
    assert links is not None
    stored = StoredOutputs([(5, encoded, links), (1, b"[1,2]", None), (2, b'{"deep":true}', None)])
    assert json.loads(stored.raw(5)) == output
    assert stored.decoded(5) == output
    assert sizes.get("e", 5) is not None
    sizes.forget("e")
    assert sizes.get("e", 5) is None


def test_a_link_to_a_missing_step_reads_as_null():
    encoded, links = encode_output("e", 1, {"gone": {"x": 1}}, {"gone": 0}, OutputSizes())
    assert json.loads(StoredOutputs([(1, encoded, links)]).raw(1)) == {"gone": None}


def test_links_that_loop_are_reported_not_followed_forever():
    a, a_links = encode_output("e", 0, {"b": {}}, {"b": 1}, OutputSizes())
    b, b_links = encode_output("e", 1, {"a": {}}, {"a": 0}, OutputSizes())
    stored = StoredOutputs([(0, a, a_links), (1, b, b_links)])
    with pytest.raises(CorruptOutputs):
        stored.raw(0)
    with pytest.raises(CorruptOutputs):
        stored.decoded(0)
