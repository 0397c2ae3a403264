"""The worker's own metrics beside the run counters: what could not be delivered or read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

OUTPUTS = ("alerts", "deadletters", "facts", "claims", "state")
OUTCOMES = ("retried", "diverted", "dropped")


class DeliveryCollector(Collector):
    """`auditor_output_failures_total{output, outcome}` (at 0 from the start) and
    `auditor_unreadable_records_total`, read when scraped."""

    def __init__(self, failures: Mapping[tuple[str, str], int],
                 unreadable: Callable[[], int]) -> None:
        self.failures = failures
        self.unreadable = unreadable

    def collect(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "auditor_output_failures",
            "Sends that failed, by output and what was done: retried (the batch waits, its "
            "offsets held), diverted (too large: replaced by a dead letter or a smaller one), "
            "dropped (too large state record: kept in memory only).",
            labels=("output", "outcome"))
        for output in OUTPUTS:
            for outcome in OUTCOMES:
                failures.add_metric((output, outcome), self.failures.get((output, outcome), 0))
        yield failures
        yield CounterMetricFamily(
            "auditor_unreadable_records",
            "Records of the worker's own (facts, claims, state, watermarks) it could not read.",
            value=self.unreadable())
