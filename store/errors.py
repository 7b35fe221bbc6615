"""Errors of the execution log.

StoreError
├── SchemaTooNew        the file was written by a newer server
├── SQLiteTooOld        the SQLite library lacks what the migrations use
├── BlueprintNotFound
└── StoreUnavailable    the database cannot be written
"""


class StoreError(Exception):
    pass


class SchemaTooNew(StoreError):
    pass


class SQLiteTooOld(StoreError):
    pass


class BlueprintNotFound(StoreError):
    def __init__(self, blueprint_id: str, version: int | None = None) -> None:
        which = f"{blueprint_id} version {version}" if version is not None else blueprint_id
        super().__init__(f"No blueprint {which}")
        self.blueprint_id = blueprint_id
        self.version = version

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        # Raised in the writer process, and pickled back (store/_wire.py).
        return type(self), (self.blueprint_id, self.version)


class StoreUnavailable(StoreError):
    pass
