"""`auditor_plan_finding{plan, finding}`: 1 when a registered plan has the finding, else 0."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auditor.plans.audit import FINDINGS, audit
from auditor.rules.plans import PlanRegistry


class PlanFindingsCollector(Collector):
    def __init__(self, registry: Callable[[], PlanRegistry | None]) -> None:
        self.registry = registry  # read at each scrape: follows a rules reload

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("auditor_plan_finding",
                                  "1 when a registered plan has the finding (plans audit).",
                                  labels=["plan", "finding"])
        registry = self.registry()
        if registry is not None:
            found = {(f.plan_id, f.rule) for f in audit(registry)}
            for plan_id in sorted(registry.plans):
                for finding in FINDINGS:
                    gauge.add_metric([plan_id, finding], 1.0 if (plan_id, finding) in found
                                     else 0.0)
        yield gauge
