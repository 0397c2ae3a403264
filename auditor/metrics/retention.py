"""`auditor_commission_retention_ratio{group_by, group, period, status}` and its target.

Evaluated periods come from the run counters (the engine reports each as it settles, or at end
of input); periods not evaluated yet from the shell's aggregate stages, read when scraped, as
live estimates. An evaluated figure wins over a live one for the same period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auditor.engine.retention import RetentionValue
from auditor.metrics.counters import RunCounters

RetentionSource = Callable[[], Iterable[RetentionValue]]


def retention_figures(counters: RunCounters, live: RetentionSource) -> list[RetentionValue]:
    """Every period's figure: evaluated ones, then the live ones not evaluated yet."""
    figures = {v.key: v for v in live()}
    figures.update(counters.retained)
    return sorted(figures.values())


class RetentionCollector(Collector):
    def __init__(self, counters: RunCounters, live: RetentionSource) -> None:
        self.counters = counters
        self.live = live

    def collect(self) -> Iterable[Metric]:
        ratio = GaugeMetricFamily(
            "auditor_commission_retention_ratio",
            "Of the commission paid on deals closed in `period` (by plan or team), the share "
            "whose account had no full churn within the rule's months; status settled once "
            "that time (and the allowed lateness) has passed, else live (an estimate).",
            labels=("group_by", "group", "period", "status"))
        bounded = self.counters.bounded
        for figure in retention_figures(self.counters, self.live):
            # Groups by an unbounded field (rep_id, say) stay in the alerts and the summary.
            if figure.share is not None and figure.group_by in bounded:
                ratio.add_metric((figure.group_by, figure.group, figure.period, figure.status),
                                 figure.share)
        yield ratio
        target = GaugeMetricFamily(
            "auditor_commission_retention_target",
            "The share below which a commission-retention rule finds a plan or team.",
            labels=("group_by",))
        for group_by, threshold in sorted(self.counters.retention_targets.items()):
            if group_by in bounded:
                target.add_metric((group_by,), threshold)
        yield target
