"""What every handler receives: the services the lifespan built and who is calling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from rpc.auth import Caller

if TYPE_CHECKING:
    from engine.engine import Engine
    from rpc.router import Procedure
    from rpc.settings import Settings
    from store import Store


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    engine: Engine
    procedures: Mapping[str, Procedure]
    version: str
    started_at: float  #: time.monotonic() at startup


class Context(msgspec.Struct, frozen=True):
    """Built for every call, so a Struct: it is made in C, several times faster than a
    frozen dataclass."""

    services: Services
    caller: Caller
    client: str | None = None
    connection_params: Mapping[str, str] = {}
