"""Identifiers: `exec_<ms since epoch>_<5 base-36 characters>`, and the like for others."""

from __future__ import annotations

import re
import secrets

from engine.clock import now_ms

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_SUFFIX_LENGTH = 5
_SUFFIXES = len(_ALPHABET) ** _SUFFIX_LENGTH
EXECUTION_ID = re.compile(r"^exec_[0-9]{1,16}_[0-9a-z]{5}$")


def new_id(prefix: str, epoch_ms: int | None = None) -> str:
    # One draw from the system's randomness for the whole suffix: one per character cost a
    # system call each, 16 us an id.
    number = secrets.randbelow(_SUFFIXES)
    characters = []
    for _ in range(_SUFFIX_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        characters.append(_ALPHABET[digit])
    return f"{prefix}_{now_ms() if epoch_ms is None else epoch_ms}_{''.join(characters)}"


def step_id(index: int) -> str:
    return f"step_{index + 1:03d}"


def is_execution_id(value: str) -> bool:
    return EXECUTION_ID.match(value) is not None
