"""A plugin as an operator would write one, loaded by test_registry.py."""

from __future__ import annotations

import msgspec


class ShoutConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: str


class Shouted(msgspec.Struct, frozen=True):
    text: str
    attempt: int


def register(registry) -> None:
    @registry.node_type("shout", config=ShoutConfig)
    async def shout(ctx, config: ShoutConfig) -> Shouted:
        """Upper-cases its text."""
        ctx.log(f"shouting {config.text}")
        return Shouted(text=config.text.upper(), attempt=ctx.attempt_no)

    @registry.function("add_one")
    def add_one(context):
        return context["input"] + 1
