from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rpc.settings import Settings
from tests import sample_router
from tests.servers import running_server


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "blueprint.db")


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server with the sample router, shared by a module's tests."""
    db = tmp_path_factory.mktemp("sample") / "blueprint.db"
    # No rate limit: these tests probe the wire with far more than 100 calls a second.
    settings = Settings(db=str(db), sse_ping_seconds=0.2, rate_limit=None)
    with running_server(settings, sample_router.router) as url:
        yield url


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start servers with custom settings; all are stopped at the end of the test."""
    stack: list[Any] = []

    def start(router: Any = None, **overrides: Any) -> str:
        settings = Settings(db=str(tmp_path / "blueprint.db"), **overrides)
        context = running_server(settings, router)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
