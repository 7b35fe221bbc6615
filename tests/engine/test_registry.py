"""Node types by name, and plugins that add them (API.md §3)."""

from __future__ import annotations

import msgspec
import pytest

from engine.errors import BlueprintInvalid
from tests.engine.conftest import blueprint, run


async def test_a_registered_node_type_runs_with_its_config(registry, engine, sink):
    class Greeting(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        name: str
        times: int = 1

    @registry.node_type("greet", config=Greeting)
    async def greet(ctx, config: Greeting):
        """Greets someone."""
        return {"text": " ".join([f"hi {config.name}"] * config.times), "node": ctx.node_id}

    seen = await run(
        engine,
        sink,
        blueprint({"id": "g", "type": "greet", "config": {"name": "ada", "times": 2}}),
    )
    assert seen.outputs["g"] == {"text": "hi ada hi ada", "node": "g"}
    assert registry.get("greet").description == "Greets someone."


def test_a_registered_node_types_config_is_validated(registry, engine):
    class Greeting(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        name: str

    registry.node_type("greet", config=Greeting, inline=True)(lambda ctx, config: None)
    with pytest.raises(BlueprintInvalid) as caught:
        engine.validate(blueprint({"id": "g", "type": "greet", "config": {"name": 3}}))
    assert [(p.node_id, p.field) for p in caught.value.problems] == [("g", "config.name")]


def test_a_node_type_name_is_registered_once(registry):
    with pytest.raises(ValueError, match="already registered"):
        registry.node_type("noop", inline=True)(lambda ctx, config: None)


@pytest.mark.parametrize("inline", [True, False])
def test_a_handler_must_fit_how_it_runs(registry, inline):
    async def asynchronous(ctx, config):
        return None

    def plain(ctx, config):
        return None

    with pytest.raises(TypeError, match="the handler must be"):
        registry.node_type(f"odd_{inline}", inline=inline)(asynchronous if inline else plain)


def test_the_builtins_are_all_registered(registry):
    names = {t.name for t in registry.types()}
    assert {
        "noop",
        "delay",
        "transform",
        "condition",
        "assert",
        "http",
        "input",
        "pause",
        "python",
    } <= names
    assert all(isinstance(t.config_schema(), dict) for t in registry.types())


async def test_load_plugin_calls_the_modules_register(registry, engine, sink):
    registry.load_plugin("tests.engine.sample_plugin")
    seen = await run(
        engine,
        sink,
        blueprint(
            {"id": "s", "type": "shout", "config": {"text": "hey"}},
            {"id": "p", "type": "python", "config": {"function": "add_one"}},
        ),
        input=41,
    )
    assert seen.outputs["s"] == {"text": "HEY", "attempt": 1}
    assert seen.outputs["p"] == 42
    assert any(e.message == "shouting hey" and e.node_id == "s" for e in seen.logs)


def test_load_plugin_without_register_is_an_error(registry):
    with pytest.raises(ValueError, match="register"):
        registry.load_plugin("engine.clock")


def test_load_plugin_of_a_missing_module_is_an_error(registry):
    with pytest.raises(ImportError):
        registry.load_plugin("tests.engine.no_such_plugin")
