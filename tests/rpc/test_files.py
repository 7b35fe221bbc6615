"""Blueprint files for batch sources: read only from inside the folder, and never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rpc.errors import ErrorCode, RPCError
from rpc.files import blueprint_files, read_blueprint

DOCUMENT = {"name": "ok", "nodes": [{"id": "a", "type": "noop"}]}


@pytest.fixture
def folder(tmp_path: Path) -> str:
    root = tmp_path / "blueprints"
    (root / "sub").mkdir(parents=True)
    (root / "ok.json").write_text(json.dumps(DOCUMENT))
    (root / "sub" / "nested.json").write_text(json.dumps(DOCUMENT))
    (tmp_path / "secret.json").write_text(json.dumps(DOCUMENT))
    (root / "out.json").symlink_to(tmp_path / "secret.json")
    (root / "loop.json").symlink_to(root / "loop.json")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    template = "[" * 30_000 + '"{{ input }}"' + "]" * 30_000
    node = '{"id": "t", "type": "transform", "config": {"template": ' + template + "}}"
    (root / "deep-template.json").write_text('{"name": "deep", "nodes": [' + node + "]}")
    return str(root)


def code_of(call: Callable[[], object]) -> ErrorCode:
    with pytest.raises(RPCError) as caught:
        call()
    return caught.value.code


def test_a_file_inside_is_read(folder):
    assert read_blueprint(folder, "sub/nested.json", 64) == ("sub/nested.json", DOCUMENT)
    assert blueprint_files(folder, "sub") == ["sub/nested.json"]


@pytest.mark.parametrize("given", ["../secret.json", "out.json", "/etc/passwd", "sub/../.."])
def test_a_path_that_leads_out_is_forbidden(folder, given):
    assert code_of(lambda: read_blueprint(folder, given, 64)) is ErrorCode.FORBIDDEN


@pytest.mark.parametrize(
    "given", ["a" * 300, "a/" * 3000, "loop.json", "deep.json", "deep-template.json"]
)
def test_a_file_that_cannot_be_read_or_nests_too_deep_is_a_bad_request(folder, given):
    """Found by tests/rpc/test_fuzz_procedures.py: a name too long raised OSError (ENAMETOOLONG)
    out of is_file(), a loop of links RuntimeError out of resolve(), a file 100,000 levels
    deep RecursionError out of the decoder, and a template 30,000 levels deep RecursionError
    out of validation: each a 500 for batch.start."""
    assert code_of(lambda: read_blueprint(folder, given, 64)) is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("given", ["a" * 300, "loop.json"])
def test_a_folder_that_cannot_be_read_is_a_bad_request(folder, given):
    assert code_of(lambda: blueprint_files(folder, given)) is ErrorCode.BAD_REQUEST
