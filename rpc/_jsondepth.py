"""How deeply a JSON text nests, found before decoding it so deep input cannot exhaust the stack."""

from __future__ import annotations

import re

# Strings go first so that brackets inside them do not count.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def exceeds_depth(raw: bytes, limit: int) -> bool:
    """True when the arrays and objects of `raw` nest deeper than `limit` levels."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", raw).translate(_SQUARE, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    # Each pass removes the innermost pairs, one level everywhere, all in C.
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return b"[" in brackets
