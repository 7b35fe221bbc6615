"""Every built-in procedure describes itself: system.procedures cannot fail on any of them."""

import msgspec
import pytest

from rpc.procedures import root_router
from rpc.procedures.system import describe
from rpc.router import Scope, flatten

PROCEDURES = flatten(root_router())


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_each_procedure_has_json_schemas(path):
    info = describe(path, PROCEDURES[path])
    assert info.outputSchema
    assert msgspec.json.encode(info)


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_each_procedure_declares_a_scope_matching_its_namespace(path):
    proc = PROCEDURES[path]
    namespace = path.split(".")[0]
    if namespace == "system":
        assert proc.scope is Scope.ANY_KEY
    else:
        assert proc.scope is not Scope.ANY_KEY
