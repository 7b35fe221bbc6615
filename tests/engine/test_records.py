"""Records and events: what the collector sees of them."""

from __future__ import annotations

import gc

from engine.events import LogAppended, StepUpdated
from engine.records import LogEntry, LogLevel, Step


def test_records_and_events_are_not_tracked_by_the_collector() -> None:
    """They hold JSON-like values made before them, so they cannot be part of a cycle; left
    untracked, the thousands a run makes trigger no collections."""
    entry = LogEntry(seq=1, timestamp="t", level=LogLevel.INFO, node_id=None, message="m")
    step = Step(step_id="s", node_id="n", name="n", type="noop")
    events = [
        LogAppended(execution_id="e", entry=entry),
        StepUpdated(execution_id="e", index=0, step=step, leaf=True, output={"a": [1]}),
    ]
    assert not any(gc.is_tracked(value) for value in (entry, step, *events))
