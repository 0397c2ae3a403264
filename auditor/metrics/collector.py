"""Exposes RunCounters as Prometheus metric families, read at scrape time.

A custom Collector on a registry the caller owns: no global registry, so two engines (or two
tests) in one process never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from auditor.engine.aggregate_stage import LiveValue
from auditor.metrics.counters import Histogram, RunCounters

LiveSource = Callable[[], Iterable[LiveValue]]


class AuditorCollector(Collector):
    def __init__(self, counters: RunCounters, live: LiveSource | None = None) -> None:
        self.counters = counters
        self.live = live or (lambda: ())

    def collect(self) -> Iterable[Metric]:
        c = self.counters
        events = CounterMetricFamily(
            "auditor_events", "Events read, by outcome; each event counted once.",
            labels=("event_type", "outcome"))
        for (event_type, outcome), n in c.events_series():
            events.add_metric((event_type, outcome), n)
        yield events

        dead = CounterMetricFamily("auditor_deadletters", "Dead-lettered inputs by reason.",
                                   labels=("reason",))
        for reason, n in c.deadletter_series():
            dead.add_metric((reason,), n)
        yield dead

        alerts = CounterMetricFamily("auditor_alerts", "Findings emitted.",
                                     labels=("rule", "severity", "team"))
        last = GaugeMetricFamily("auditor_last_alert_timestamp_seconds",
                                 "Wall-clock time of the last finding of the series.",
                                 labels=("rule", "severity", "team"))
        for key, n in c.alert_series():
            alerts.add_metric(key, n)
        # Only for series with a finding: a timestamp has no first increment to miss.
        for key, when in sorted(c.last_alert.items()):
            last.add_metric(key, when)
        yield alerts
        yield last

        at_risk = CounterMetricFamily(
            "auditor_commission_at_risk",
            "Commission put at risk by findings, in the reporting currency, per rule and money "
            "class (a deal flagged by two rules is in both: for totals use "
            "auditor_commission_flagged_total).", labels=("rule", "team", "currency", "class"))
        for risk_key, amount in c.at_risk_series():
            at_risk.add_metric(risk_key, round(amount, 2))
        yield at_risk
        trial = CounterMetricFamily(
            "auditor_experimental_alerts",
            "Findings of experimental rules (status: experimental): on trial, not in "
            "auditor_alerts_total nor in any money metric.", labels=("rule", "severity", "team"))
        for key, n in c.alert_series(experimental=True):
            trial.add_metric(key, n)
        yield trial
        trial_risk = CounterMetricFamily(
            "auditor_experimental_commission_at_risk",
            "Commission experimental rules' findings would put at risk, per rule and class.",
            labels=("rule", "team", "currency", "class"))
        for risk_key, amount in c.at_risk_series(experimental=True):
            trial_risk.add_metric(risk_key, round(amount, 2))
        yield trial_risk
        excepted = CounterMetricFamily(
            "auditor_excepted_findings",
            "Findings an exception of their rule kept from being alerts (rule files' "
            "exceptions:): not in auditor_alerts_total nor in any money metric.",
            labels=("rule", "exception"))
        for excepted_key, n in c.excepted_series():
            excepted.add_metric(excepted_key, n)
        yield excepted
        paid = CounterMetricFamily(
            "auditor_commission_paid",
            "Commission paid on processed deals (duplicates excluded), in the reporting currency.",
            labels=("plan_id", "team", "currency"))
        for paid_key, amount in sorted(c.paid.items()):
            paid.add_metric(paid_key, round(amount, 2))
        yield paid
        flagged = CounterMetricFamily(
            "auditor_commission_flagged",
            "Commission flagged by findings, by money class: each (account, deal) counted once "
            "per class, at the largest amount any finding gives it. The total to divide by "
            "auditor_commission_paid_total for shares.",
            labels=("class", "plan_id", "team", "currency"))
        for flagged_key, amount in c.flagged_series():
            flagged.add_metric(flagged_key, round(amount, 2))
        yield flagged

        value = GaugeMetricFamily("auditor_aggregate_value",
                                  "Live value of an aggregate rule for the current quarter.",
                                  labels=("rule", "group_by", "group"))
        breached = GaugeMetricFamily("auditor_aggregate_breached",
                                     "1 when the live value crosses the rule's threshold.",
                                     labels=("rule", "group_by", "group"))
        for live in sorted(self.live()):
            key = (live.rule, live.group_by, live.group)
            value.add_metric(key, live.value)
            breached.add_metric(key, 1.0 if live.breached else 0.0)
        yield value
        yield breached

        yield GaugeMetricFamily("auditor_rules_loaded", "Rules in force.", value=c.rules_loaded)
        yield GaugeMetricFamily("auditor_rules_reload_success",
                                "1 if the last rules (re)load succeeded.", value=c.reload_success)
        yield GaugeMetricFamily("auditor_rules_last_reload_timestamp_seconds",
                                "When the rules were last (re)loaded.", value=c.last_reload)
        yield GaugeMetricFamily("auditor_watermark_timestamp_seconds",
                                "Largest event time seen.", value=c.watermark)
        yield _histogram("auditor_event_processing_seconds",
                         "Time to validate and audit one event.", c.processing)
        yield _histogram("auditor_event_lag_seconds",
                         "Wall-clock time minus event time, at processing.", c.lag)


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, n in zip((*h.bounds, float("inf")), h.counts, strict=True):
        running += n
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)


def build_registry(counters: RunCounters, live: LiveSource | None = None,
                   extra: Iterable[Collector] = ()) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuditorCollector(counters, live))
    for collector in extra:
        registry.register(collector)
    return registry

