"""What servers and engines running inside the test process log at ERROR, for suites that
prove nothing went wrong behind a well-formed answer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def error_records(*logger_names: str) -> Iterator[ErrorRecords]:
    """Collect ERROR records of these loggers (and those below them) while open."""
    handler = ErrorRecords()
    loggers = [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
