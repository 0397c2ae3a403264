"""Where the engine's metric updates go. The engine calls; a shell decides what to keep."""

from __future__ import annotations

from typing import Protocol

from auditor.engine.alerts import Alert
from auditor.engine.retention import RetentionValue


class MetricsSink(Protocol):
    def event(self, event_type: str, outcome: str) -> None: ...

    def alert(self, alert: Alert) -> None: ...

    def commission_paid(self, plan_id: str, team: str, time: float, amount: float) -> None:
        """A processed deal's commission; `time` is the deal's (for breakdowns by period)."""
        ...

    def commission_flagged(self, money_class: str, plan_id: str, team: str, time: float,
                           amount: float) -> None:
        """`amount` more of a class's total: a deal's largest in the class grew by it."""
        ...

    def retention(self, value: RetentionValue) -> None:
        """A commission-retention period was evaluated (settled, or at end of input)."""
        ...

    def excepted(self, alert: Alert, exception: str) -> None:
        """A finding an exception of its rule (named `exception`) kept from being an alert:
        not emitted, not counted by `alert` nor in any money."""
        ...


class NullSink:
    """For callers that want alerts only."""

    def event(self, event_type: str, outcome: str) -> None:
        pass

    def alert(self, alert: Alert) -> None:
        pass

    def commission_paid(self, plan_id: str, team: str, time: float, amount: float) -> None:
        pass

    def commission_flagged(self, money_class: str, plan_id: str, team: str, time: float,
                           amount: float) -> None:
        pass

    def retention(self, value: RetentionValue) -> None:
        pass

    def excepted(self, alert: Alert, exception: str) -> None:
        pass
