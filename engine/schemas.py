"""The JSON Schema subset input nodes use: type, properties, required, enum, items, minimum,
maximum, minLength, maxLength. `title` and `description` are allowed and ignored.

`schema_problems` checks a schema itself (when a blueprint is saved); `data_problems` checks
data against one and names every violation by its path.
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import InputInvalid, Problem

KEYWORDS = {
    "type",
    "properties",
    "required",
    "enum",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "title",
    "description",
}
TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def schema_problems(schema: Any, path: str = "schema") -> list[tuple[str, str]]:
    """(field, message) for each way `schema` falls outside the subset."""
    if not isinstance(schema, dict):
        return [(path, "a schema must be an object")]
    problems = [
        (f"{path}.{key}", f"unsupported keyword (supported: {', '.join(sorted(KEYWORDS))})")
        for key in schema
        if key not in KEYWORDS
    ]
    types = schema.get("type")
    names = types if isinstance(types, list) else [types] if types is not None else []
    if any(not isinstance(name, str) or name not in TYPES for name in names):
        problems.append((f"{path}.type", f"must be one of {', '.join(sorted(TYPES))}"))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        problems.append((f"{path}.properties", "must be an object of schemas"))
    else:
        for name, sub in properties.items():
            problems += schema_problems(sub, f"{path}.properties.{name}")
    required = schema.get("required", [])
    if not (isinstance(required, list) and all(isinstance(name, str) for name in required)):
        problems.append((f"{path}.required", "must be an array of property names"))
    if "enum" in schema and not isinstance(schema["enum"], list):
        problems.append((f"{path}.enum", "must be an array"))
    if "items" in schema:
        problems += schema_problems(schema["items"], f"{path}.items")
    for key in ("minimum", "maximum"):
        # JSON has no NaN or infinity (1e400 decodes to one): the log could not keep it.
        if key in schema and not (_is_number(schema[key]) and math.isfinite(schema[key])):
            problems.append((f"{path}.{key}", "must be a finite number"))
    for key in ("minLength", "maxLength"):
        if key in schema and not (isinstance(schema[key], int) and schema[key] >= 0):
            problems.append((f"{path}.{key}", "must be a whole number, 0 or more"))
    return problems


def require_fit(node_id: str, data: Any, schema: dict[str, Any]) -> None:
    """InputInvalid naming every way `data`, the answer to input node `node_id`, breaks
    `schema`; nothing when it fits."""
    problems = data_problems(data, schema)
    if problems:
        raise InputInvalid(
            node_id, [Problem(node_id=node_id, field=path, message=m) for path, m in problems]
        )


def data_problems(data: Any, schema: dict[str, Any], path: str = "data") -> list[tuple[str, str]]:
    """(path, message) for every way `data` breaks `schema`; empty when it fits."""
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_has_type(data, name) for name in names):
            return [(path, f"expected {' or '.join(names)}, got {_type_of(data)}")]
    problems = []
    if "enum" in schema and data not in schema["enum"]:
        allowed = ", ".join(_show(value) for value in schema["enum"])
        problems.append((path, f"must be one of {allowed}"))
    if _is_number(data):
        if "minimum" in schema and data < schema["minimum"]:
            problems.append((path, f"must be at least {schema['minimum']}"))
        if "maximum" in schema and data > schema["maximum"]:
            problems.append((path, f"must be at most {schema['maximum']}"))
    if isinstance(data, str):
        if "minLength" in schema and len(data) < schema["minLength"]:
            problems.append((path, f"must be at least {schema['minLength']} characters"))
        if "maxLength" in schema and len(data) > schema["maxLength"]:
            problems.append((path, f"must be at most {schema['maxLength']} characters"))
    if isinstance(data, dict):
        for name in schema.get("required", []):
            if name not in data:
                problems.append((f"{path}.{name}", "is required"))
        for name, sub in schema.get("properties", {}).items():
            if name in data:
                problems += data_problems(data[name], sub, f"{path}.{name}")
    if isinstance(data, list) and "items" in schema:
        for index, item in enumerate(data):
            problems += data_problems(item, schema["items"], f"{path}[{index}]")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return _is_number(value)
    return _type_of(value) == name


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number" if _is_number(value) else type(value).__name__


def _show(value: Any) -> str:
    return (
        f'"{value}"'
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )
