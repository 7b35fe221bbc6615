"""The execution log: an SQLite file through aiosqlite, the only code that speaks SQL."""

from store.database import Durability, Store
from store.errors import (
    BlueprintNotFound,
    SchemaTooNew,
    SQLiteTooOld,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "BlueprintNotFound",
    "Durability",
    "SQLiteTooOld",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoreUnavailable",
]
