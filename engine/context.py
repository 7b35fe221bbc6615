"""What a node handler sees: its execution's data, and ways to log, measure and attach."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import expressions
from engine.records import LogLevel

if TYPE_CHECKING:
    import httpx


class NodeContext:
    """Built by the engine for each attempt. `context` is the expression context, read-only."""

    __slots__ = (
        "_artifacts",
        "_http",
        "_log",
        "_metrics",
        "attempt_no",
        "context",
        "dependencies",
        "execution_id",
        "node_id",
    )

    def __init__(
        self,
        *,
        execution_id: str,
        node_id: str,
        attempt_no: int,
        dependencies: tuple[str, ...],
        context: dict[str, Any],
        log: Callable[[LogLevel, str, Any], None],
        http: Callable[[], httpx.AsyncClient],
    ) -> None:
        self.execution_id = execution_id
        self.node_id = node_id
        self.attempt_no = attempt_no
        self.dependencies = dependencies
        self.context = context
        self._log = log
        self._http = http
        self._metrics: dict[str, float] = {}
        self._artifacts: list[dict[str, Any]] = []

    @property
    def input(self) -> Any:
        return self.context["input"]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.context["metadata"]  # type: ignore[no-any-return]

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http()

    def output_of(self, node_id: str) -> Any:
        return self.context["nodes"].get(node_id, {}).get("output")

    def evaluate(self, expression: str) -> Any:
        return expressions.evaluate(expression, self.context)

    def render(self, value: Any) -> Any:
        return expressions.render(value, self.context)

    def log(self, message: str, level: LogLevel | str = LogLevel.INFO, data: Any = None) -> None:
        self._log(LogLevel(level), message, data)

    def metric(self, name: str, value: float) -> None:
        self._metrics[name] = float(value)

    def artifact(self, artifact: dict[str, Any]) -> None:
        """Attach an artifact, e.g. `{type, outputId, url, mimeType, ...}`."""
        if not isinstance(artifact, dict) or "type" not in artifact:
            raise ValueError("an artifact is an object with at least a 'type'")
        self._artifacts.append(dict(artifact))

    @property
    def metrics(self) -> dict[str, float]:
        return self._metrics

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        return self._artifacts
