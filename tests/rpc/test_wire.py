"""The id forms of procedure inputs: `exec_...`, `bp_...`, `batch_...` and nothing else."""

from __future__ import annotations

import msgspec
import pytest

from rpc.procedures import batch, blueprint, execution
from rpc.procedures._wire import BlueprintId, ExecuteRequest, ExecutionId
from rpc.procedures.batch import BatchId

FORMS = [(ExecutionId, "exec"), (BlueprintId, "bp"), (BatchId, "batch")]


@pytest.mark.parametrize(("id_type", "prefix"), FORMS)
def test_an_id_of_the_form_is_accepted(id_type, prefix):
    assert msgspec.convert(f"{prefix}_1733050800000_a3b7z", id_type)


@pytest.mark.parametrize(("id_type", "prefix"), FORMS)
@pytest.mark.parametrize("tail", ["\n", " ", "\n\n", "x"])
def test_nothing_may_follow_an_id(id_type, prefix, tail):
    """Found by tests/rpc/test_fuzz_procedures.py: `$` in Python also matches before a final
    newline, so "exec_1_aaaaa\\n" passed as an id (not_found, or NOT_FOUND) where the
    contract says a malformed id is a BAD_REQUEST."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(f"{prefix}_1733050800000_a3b7z{tail}", id_type)


@pytest.mark.parametrize(
    ("input_type", "given", "name"),
    [
        (blueprint.ListInput, {}, "offset"),
        (batch.ListInput, {}, "offset"),
        (execution.ListInput, {}, "offset"),
        (execution.LogsInput, {"executionId": "exec_1_aaaaa"}, "afterSeq"),
        (blueprint.GetInput, {"blueprintId": "bp_1_aaaaa"}, "version"),
        (ExecuteRequest, {"blueprintId": "bp_1_aaaaa"}, "version"),
    ],
)
def test_a_number_sqlite_cannot_hold_is_refused_as_input(input_type, given, name):
    """Found by tests/rpc/test_fuzz_procedures.py: batch.list with offset 2**63 reached
    SQLite, whose OverflowError was a 500."""
    with pytest.raises(msgspec.ValidationError, match=name):
        msgspec.convert({**given, name: 2**63}, input_type)
    assert msgspec.convert({**given, name: 2**63 - 1}, input_type)
