"""Where the engine's metric updates go. The engine calls; a shell decides what to keep."""

from __future__ import annotations

from typing import Protocol

from auditor.engine.alerts import Alert


class MetricsSink(Protocol):
    def event(self, event_type: str, outcome: str) -> None: ...

    def alert(self, alert: Alert) -> None: ...


class NullSink:
    """For callers that want alerts only."""

    def event(self, event_type: str, outcome: str) -> None:
        pass

    def alert(self, alert: Alert) -> None:
        pass
