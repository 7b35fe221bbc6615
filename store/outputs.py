"""Step outputs stored by reference, and expanded back.

A noop passes its dependencies' outputs on, keyed by id, so along a chain of n nodes each output
holds the one before it: written out whole, the chain costs O(n^2) bytes and the writer spends
its time on them. When the engine says an entry of an output *is* another step's output
(`StepUpdated.shared`) and that output is large, the row stores `null` in its place and a link:
`[byte offset of that null, step index, key]`. Expanding splices the bytes back, in one pass
over the result, with no JSON parsing; decoding shares one object per step, as the engine did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

#: Entries smaller than this are stored inline: a link would cost a status read a second query.
LINK_MIN_BYTES = 256

_encode = msgspec.json.Encoder().encode
_links = msgspec.json.Decoder(list[tuple[int, int, str]])
_any = msgspec.json.Decoder()


class CorruptOutputs(Exception):
    """Links that loop: the file was changed by something other than this store."""


class OutputSizes:
    """The expanded size of each output written for executions still running, so the writer
    can tell whether an entry is worth a link. Used only on the writer's thread."""

    def __init__(self) -> None:
        self._sizes: dict[str, dict[int, int]] = {}

    def get(self, execution_id: str, index: int) -> int | None:
        return self._sizes.get(execution_id, {}).get(index)

    def put(self, execution_id: str, index: int, size: int) -> None:
        self._sizes.setdefault(execution_id, {})[index] = size

    def forget(self, execution_id: str) -> None:
        self._sizes.pop(execution_id, None)


def encode_output(
    execution_id: str,
    index: int,
    output: Any,
    shared: dict[str, int] | None,
    sizes: OutputSizes,
) -> tuple[bytes, bytes | None]:
    """The row's `output` and `links` columns. An entry whose step's size is unknown (written
    before a restart, or by another process) is linked: that is always correct."""
    linked: dict[str, int] = {}
    if shared:
        for key, step in shared.items():
            size = sizes.get(execution_id, step)
            if size is None or size >= LINK_MIN_BYTES:
                linked[key] = step
    if not linked:
        encoded = _encode(output)
        sizes.put(execution_id, index, len(encoded))
        return encoded, None
    parts = [b"{"]
    position = 1
    links: list[tuple[int, int, str]] = []
    expanded = 2
    for number, (key, value) in enumerate(output.items()):
        head = (b"," if number else b"") + _encode(key) + b":"
        parts.append(head)
        position += len(head)
        target = linked.get(key)
        if target is None:
            body = _encode(value)
            expanded += len(head) + len(body)
        else:
            body = b"null"
            links.append((position, target, key))
            known = sizes.get(execution_id, target)
            expanded += len(head) + (LINK_MIN_BYTES if known is None else known)
        parts.append(body)
        position += len(body)
    parts.append(b"}")
    sizes.put(execution_id, index, expanded)
    return b"".join(parts), _encode(links)


class StoredOutputs:
    """One execution's output rows, as `(index, output, links)`, ready to expand."""

    def __init__(self, rows: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        self._rows = {
            index: (output, _links.decode(links) if links else []) for index, output, links in rows
        }
        self._decoded: dict[int, Any] = {}

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows)

    def raw(self, index: int) -> bytes:
        """The output's JSON, whole."""
        out: list[bytes] = []
        # (row, its next link, where the bytes after the last link began)
        stack: list[tuple[int, int, int]] = [(index, 0, 0)]
        while stack:
            if len(stack) > len(self._rows) + 1:
                raise CorruptOutputs(f"the outputs of step {index} link to themselves")
            row, link, start = stack.pop()
            found = self._rows.get(row)
            if found is None:
                out.append(b"null")  # a step removed since: nothing better to give
                continue
            output, links = found
            if link < len(links):
                offset, target, _ = links[link]
                out.append(output[start:offset])
                stack.append((row, link + 1, offset + 4))
                stack.append((target, 0, 0))
            else:
                out.append(output[start:])
        return b"".join(out)

    def decoded(self, index: int) -> Any:
        """The output as Python values; a linked step's output is one shared object."""
        done = self._decoded
        stack = [index]
        visiting: set[int] = set()
        while stack:
            row = stack[-1]
            if row in done:
                stack.pop()
                continue
            found = self._rows.get(row)
            if found is None:
                done[row] = None
                stack.pop()
                continue
            output, links = found
            waiting = [target for _, target, _ in links if target not in done]
            if waiting:
                if row in visiting:
                    raise CorruptOutputs(f"the outputs of step {index} link to themselves")
                visiting.add(row)
                stack.extend(waiting)
                continue
            value = _any.decode(output)
            for _, target, key in links:
                value[key] = done[target]
            done[row] = value
            stack.pop()
        return done[index]
