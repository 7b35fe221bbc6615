"""JMESPath expressions and `{{ }}` templates over an execution's context: data in, data out.

The context is `{input, metadata, nodes: {<id>: {output, status}}}`. JMESPath has no way to
call code, so an expression can only read and reshape that data.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import jmespath
import jmespath.exceptions
import msgspec

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class ExpressionError(ValueError):
    """An expression that does not parse, or fails on the data it is given."""


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    if not source.strip():
        raise ExpressionError("expression is empty")
    try:
        with warnings.catch_warnings():
            # Old-style literals (`foo` for "foo") still parse; the warning says nothing useful.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return jmespath.compile(source)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(f"invalid expression {source!r}: {_first_line(exc)}") from None


def evaluate(source: str, context: dict[str, Any]) -> Any:
    """The expression's value, sharing nothing with `context`.

    JMESPath hands back parts of its data as they are, and the context changes as nodes
    finish: an output of `nodes` kept as it is would come to hold itself (a cycle no log can
    write) and change after it was recorded. So an object or array comes back as a copy."""
    try:
        value = compile_expression(source).search(context)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(f"expression {source!r} failed: {_first_line(exc)}") from None
    except ExpressionError:
        raise
    except (TypeError, ValueError) as exc:
        # jmespath's own slips on odd data: a slice step of 0, `>` between text and a number.
        message = f"expression {source!r} failed: {type(exc).__name__}: {exc}"
        raise ExpressionError(message) from None
    return _decoder.decode(_encoder.encode(value)) if isinstance(value, (dict, list)) else value


def is_truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, arrays and objects are false; 0 is true."""
    return not (value is None or value is False or value in ("", [], {}))


def check_template(value: Any) -> None:
    """Raise ExpressionError if any `{{ }}` in `value` does not compile."""
    for source in _template_sources(value):
        compile_expression(source)


def render(value: Any, context: dict[str, Any]) -> Any:
    """`value` with its templates filled in. A string that is one whole `{{ expr }}` becomes the
    expression's value; elsewhere each `{{ expr }}` becomes text (JSON for non-strings)."""
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


def _render_string(text: str, context: dict[str, Any]) -> Any:
    if "{{" not in text:
        return text
    whole = _TEMPLATE.fullmatch(text.strip())
    # `{{ a }}-{{ b }}` also fullmatches, with "a }}-{{ b" inside: that is two templates.
    if whole and "}}" not in whole.group(1):
        return evaluate(whole.group(1).strip(), context)
    return _TEMPLATE.sub(lambda m: _as_text(evaluate(m.group(1).strip(), context)), text)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else _encoder.encode(value).decode()


def _template_sources(value: Any) -> list[str]:
    if isinstance(value, str):
        return [match.group(1).strip() for match in _TEMPLATE.finditer(value)]
    if isinstance(value, list):
        return [source for item in value for source in _template_sources(item)]
    if isinstance(value, dict):
        return [source for item in value.values() for source in _template_sources(item)]
    return []


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
