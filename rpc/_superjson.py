"""Revive a superjson-serialised input: apply `meta.values` annotations to the decoded `json`.

superjson writes values JSON cannot hold as plain JSON plus a tree of annotations keyed by
dotted paths. Python has no `undefined`, so an undefined object field is removed, an undefined
array item becomes None and an undefined root means "no input". `Date`s stay ISO strings, which
msgspec parses wherever the input type asks for a datetime. `referentialEqualities` only says
which copies were one object; each copy is written out in full, so it is ignored.
"""

from __future__ import annotations

from typing import Any

UNDEFINED: Any = type("Undefined", (), {"__repr__": lambda self: "UNDEFINED"})()


class SuperjsonError(ValueError):
    """The envelope's meta is not superjson's."""


_NUMBERS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"), "-0": -0.0}


def revive(value: Any, meta: dict[str, Any]) -> Any:
    """Apply meta's annotations to value; returns UNDEFINED when the whole input is undefined."""
    values = meta.get("values")
    if values is None:
        return value
    legacy_paths = meta.get("v", 0) == 0
    if isinstance(values, list):
        return _apply_node(value, values, legacy_paths)
    if not isinstance(values, dict):
        raise SuperjsonError("meta.values must be an object or an array")
    for path, node in values.items():
        value = _apply_at(value, parse_path(path, legacy_paths), node, legacy_paths)
    return value


def parse_path(path: str, legacy: bool = False) -> list[str]:
    """Split a superjson path; v1 escapes `\\` and `.` with a backslash, v0 only `.`."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path) and (path[i + 1] == "." or not legacy):
            current.append(path[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _apply_at(root: Any, parts: list[str], node: Any, legacy: bool) -> Any:
    if parts == [""] and not (isinstance(root, dict) and "" in root):
        return _apply_node(root, node, legacy)
    parent = root
    for part in parts[:-1]:
        parent = _child(parent, part)
    last = parts[-1]
    if isinstance(parent, list):
        key: Any = _index(parent, last)
    elif isinstance(parent, dict) and last in parent:
        key = last
    else:
        raise SuperjsonError(f"meta path {'.'.join(parts)!r} is not in the input")
    revived = _apply_node(parent[key], node, legacy)
    if revived is UNDEFINED:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = None
    else:
        parent[key] = revived
    return root


def _child(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        if part not in container:
            raise SuperjsonError(f"meta path part {part!r} is not in the input")
        return container[part]
    if isinstance(container, list):
        return container[_index(container, part)]
    raise SuperjsonError(f"meta path part {part!r} points into a scalar")


def _index(container: list[Any], part: str) -> int:
    if not (part.isascii() and part.isdigit()) or int(part) >= len(container):
        raise SuperjsonError(f"meta path part {part!r} is not an index of the array")
    return int(part)


def _apply_node(value: Any, node: Any, legacy: bool) -> Any:
    if not isinstance(node, list) or not 1 <= len(node) <= 2:
        raise SuperjsonError("a meta.values node must be [annotation] or [annotation, children]")
    if len(node) == 2:
        children = node[1]
        if not isinstance(children, dict):
            raise SuperjsonError("a meta.values node's children must be an object")
        for path, child in children.items():
            value = _apply_at(value, parse_path(path, legacy), child, legacy)
    return _transform(value, node[0])


def _transform(value: Any, annotation: Any) -> Any:
    if isinstance(annotation, list):
        if annotation and annotation[0] == "typed-array":
            return value
        raise SuperjsonError(f"unsupported superjson type {annotation!r}")
    if annotation == "undefined":
        return UNDEFINED
    if annotation in ("Date", "regexp", "URL", "Error"):
        return value
    if annotation == "bigint":
        return _bigint(value)
    if annotation == "number":
        if not isinstance(value, str) or value not in _NUMBERS:
            raise SuperjsonError(f"unknown special number {value!r}")
        return _NUMBERS[value]
    if annotation == "set":
        return _require_list(value, "set")
    if annotation == "map":
        return _map(value)
    raise SuperjsonError(f"unsupported superjson type {annotation!r}")


def _bigint(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SuperjsonError(f"bigint {value!r} is not an integer") from None


def _require_list(value: Any, kind: str) -> list[Any]:
    if not isinstance(value, list):
        raise SuperjsonError(f"a superjson {kind} must be an array")
    return value


def _map(value: Any) -> dict[Any, Any]:
    pairs = _require_list(value, "map")
    result: dict[Any, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise SuperjsonError("a superjson map entry must be a [key, value] pair")
        key, item = pair
        if isinstance(key, (dict, list)):
            raise SuperjsonError("a superjson map key must be a string or a number")
        result[key] = item
    return result
