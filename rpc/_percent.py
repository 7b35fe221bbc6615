"""Percent-decoding of query values, several times faster than urllib for tRPC inputs.

A tRPC input in a URL is JSON with most punctuation percent-encoded. urllib's decoder works in
Python, piece by piece; quoted-printable decoding (`=XX`) is the same job done in C by binascii.
The two differ only where `=` or a `%` without two hex digits appears, or around line breaks;
those values take urllib's path, so the result is always exactly urllib's
(tests/rpc/test_percent.py checks this property).
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote_to_bytes

_NEEDS_URLLIB = re.compile(rb"[=\r\n]|%(?![0-9A-Fa-f]{2})")


def percent_decode(value: bytes) -> bytes:
    """`unquote_to_bytes(value)`, with `+` as a space first, as form decoding has it."""
    if b"+" in value:
        value = value.replace(b"+", b" ")
    if b"%" not in value:
        return value
    if _NEEDS_URLLIB.search(value):
        return unquote_to_bytes(value)
    return binascii.a2b_qp(value.replace(b"%", b"="))
