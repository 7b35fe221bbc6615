"""noop, delay, transform, condition, assert, input and pause."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from engine.context import NodeContext
from engine.errors import NodeError
from engine.expressions import ExpressionError, check_template, compile_expression, is_truthy
from engine.records import PauseReason
from engine.registry import NodeRegistry, NodeType
from engine.schemas import schema_problems


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class DelayConfig(Config, frozen=True):
    ms: int = msgspec.field(default=0)

    def __post_init__(self) -> None:
        if not 0 <= self.ms <= 24 * 3600 * 1000:
            raise ValueError("ms must be between 0 and 86400000")


class TransformConfig(Config, frozen=True):
    expression: str | None = None
    template: Any = msgspec.UNSET

    def __post_init__(self) -> None:
        if (self.expression is None) == (self.template is msgspec.UNSET):
            raise ValueError("give exactly one of 'expression' or 'template'")
        _check(self.expression, self.template)


class ConditionConfig(Config, frozen=True):
    expression: str
    then: tuple[str, ...] = ()
    else_: tuple[str, ...] = msgspec.field(default=(), name="else")

    def __post_init__(self) -> None:
        _check(self.expression)


class AssertConfig(Config, frozen=True):
    expression: str
    message: str = "assertion failed"

    def __post_init__(self) -> None:
        _check(self.expression)


class InputConfig(Config, frozen=True):
    prompt: str
    schema: dict[str, Any] = {}


class PauseConfig(Config, frozen=True):
    message: str | None = None


def _check(expression: str | None, template: Any = msgspec.UNSET) -> None:
    # msgspec turns a ValueError here into a ValidationError naming the config.
    try:
        if expression is not None:
            compile_expression(expression)
        if template is not msgspec.UNSET:
            check_template(template)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None


def noop(ctx: NodeContext, config: Config) -> Any:
    """Passes its dependencies' outputs on, keyed by id; with none, the execution's input."""
    if not ctx.dependencies:
        return ctx.input
    return {dep: ctx.output_of(dep) for dep in ctx.dependencies}


async def delay(ctx: NodeContext, config: DelayConfig) -> dict[str, int]:
    """Waits `ms` milliseconds."""
    await asyncio.sleep(config.ms / 1000)
    return {"sleptMs": config.ms}


def transform(ctx: NodeContext, config: TransformConfig) -> Any:
    """The value of a JMESPath `expression`, or a JSON `template` with `{{ }}` filled in."""
    try:
        if config.expression is not None:
            return ctx.evaluate(config.expression)
        return ctx.render(config.template)
    except ExpressionError as exc:
        raise NodeError("EXPRESSION_ERROR", str(exc), retryable=False) from None


def condition(ctx: NodeContext, config: ConditionConfig) -> dict[str, Any]:
    """Chooses `then` or `else` by a JMESPath expression; the other branch is skipped."""
    try:
        result = is_truthy(ctx.evaluate(config.expression))
    except ExpressionError as exc:
        raise NodeError("EXPRESSION_ERROR", str(exc), retryable=False) from None
    return {"result": result, "branch": "then" if result else "else"}


def assert_(ctx: NodeContext, config: AssertConfig) -> bool:
    """Fails with ASSERTION_FAILED unless the expression is true."""
    try:
        holds = is_truthy(ctx.evaluate(config.expression))
    except ExpressionError as exc:
        raise NodeError("EXPRESSION_ERROR", str(exc), retryable=False) from None
    if not holds:
        raise NodeError("ASSERTION_FAILED", config.message, retryable=False)
    return True


def register(registry: NodeRegistry) -> None:
    registry.node_type("noop", plain_output=True, inline=True)(noop)
    registry.node_type("delay", config=DelayConfig, plain_output=True)(delay)
    registry.node_type("transform", config=TransformConfig, plain_output=True, inline=True)(
        transform
    )
    registry.node_type("condition", config=ConditionConfig, plain_output=True, inline=True)(
        condition
    )
    registry.node_type("assert", config=AssertConfig, plain_output=True, inline=True)(assert_)
    registry.add(
        NodeType(
            "input",
            "Pauses until a client provides data matching `schema`; outputs that data.",
            InputConfig,
            None,
            PauseReason.INPUT,
            check=lambda config: schema_problems(config.schema, "schema"),
        )
    )
    registry.add(
        NodeType(
            "pause",
            "Pauses until a client continues the execution; outputs null.",
            PauseConfig,
            None,
            PauseReason.WAIT_PAUSE,
        )
    )
