"""Dependencies point inward: engine imports neither store nor rpc; store does not import rpc."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "engine": {"store", "rpc", "starlette", "uvicorn", "aiosqlite"},
    "store": {"rpc", "starlette"},
}


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_inner_layers_do_not_import_outer_ones(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        crossing = imported_packages(path) & FORBIDDEN[package]
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"


def test_the_resolver_and_codec_know_nothing_of_starlette():
    for name in ("resolver.py", "codec.py", "router.py", "errors.py", "streams.py"):
        assert not imported_packages(ROOT / "rpc" / name) & {"starlette", "uvicorn"}, name
