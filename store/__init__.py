"""The execution log: an SQLite file through aiosqlite, the only code that speaks SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.errors import (
    BlueprintNotFound,
    SchemaTooNew,
    SQLiteTooOld,
    StoreError,
    StoreUnavailable,
)
from store.pragmas import Durability

if TYPE_CHECKING:
    from store.database import Store

__all__ = [
    "BlueprintNotFound",
    "Durability",
    "SQLiteTooOld",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoreUnavailable",
]


def __getattr__(name: str) -> Any:
    # The writer process imports store's modules, but needs neither aiosqlite nor the rest
    # of what opening a Store brings: it starts faster without them.
    if name == "Store":
        from store.database import Store

        return Store
    raise AttributeError(f"module 'store' has no attribute {name!r}")
