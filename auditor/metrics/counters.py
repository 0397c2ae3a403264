"""The metric updates of a run, kept as plain numbers: cheap enough to update per event.

A prometheus-client Counter call costs about a microsecond with labels; these are dict
increments. The exporter (collector.py) turns them into metric families at scrape time.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict

from auditor.engine.alerts import Alert
from auditor.events.deadletter import DeadLetter


class Histogram:
    """Cumulative-on-read histogram with fixed buckets (upper bounds, seconds)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe_many(self, value: float, count: int) -> None:
        self.counts[bisect_left(self.bounds, value)] += count
        self.total += value * count


PROCESSING_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1.0)
LAG_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0,
               30 * 86400.0, 365 * 86400.0)


class RunCounters:
    """Implements the engine's MetricsSink, plus what the shells observe around it."""

    def __init__(self) -> None:
        self._now = time.time
        self.events: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.deadletters: defaultdict[str, int] = defaultdict(int)
        self.alerts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.last_alert: dict[tuple[str, str, str], float] = {}
        self.at_risk: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        self.processing = Histogram(PROCESSING_BUCKETS)
        self.lag = Histogram(LAG_BUCKETS)
        self.rules_loaded = 0
        self.reload_success = 1
        self.last_reload = 0.0
        self.watermark = 0.0

    # MetricsSink
    def event(self, event_type: str, outcome: str) -> None:
        self.events[event_type, outcome] += 1

    def alert(self, alert: Alert) -> None:
        key = (alert.rule, alert.severity, alert.metric_team)
        self.alerts[key] += 1
        self.last_alert[key] = self._now()
        if alert.at_risk:
            self.at_risk[alert.rule, key[2], alert.currency] += alert.at_risk

    # Shell observations
    def dead_letter(self, letter: DeadLetter) -> None:
        self.events[letter.event_type, "invalid"] += 1
        self.deadletters[letter.reason] += 1

    def rules_reloaded(self, loaded: int | None) -> None:
        """`loaded` rules now in force, or None when a reload was refused."""
        self.last_reload = self._now()
        if loaded is None:
            self.reload_success = 0
        else:
            self.reload_success = 1
            self.rules_loaded = loaded

    def events_by_outcome(self) -> dict[str, int]:
        result: dict[str, int] = defaultdict(int)
        for (_, outcome), n in self.events.items():
            result[outcome] += n
        return dict(result)
