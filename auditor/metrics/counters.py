"""The metric updates of a run, kept as plain numbers: cheap enough to update per event.

A prometheus-client Counter call costs about a microsecond with labels; these are dict
increments. The exporter (collector.py) turns them into metric families at scrape time.

Labelled counters whose label values are known in advance are exported at 0 from the start, so
`increase()` sees their first increment: the event outcomes, the dead-letter reasons, and the
findings of the rules in force and of their exceptions (`declare_rules`). The dicts below hold
only what was counted; the zeros are added at export (`*_series`), so a rule removed by a reload
loses its zero series but keeps the values it counted: a counter never goes backwards.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass

from auditor.engine.alerts import Alert
from auditor.engine.periods import quarter_of
from auditor.engine.retention import RetentionValue
from auditor.events.deadletter import REASONS, DeadLetter
from auditor.events.models import EVENT_TYPES
from auditor.rules.pack import DEFAULT_BOUNDED, RulePack

MAX_RETENTION_FIGURES = 4000  # periods x groups kept for the retention gauge
PAID = "paid"  # commission paid, beside the money classes in RunCounters.money_by_quarter

# Every outcome of an event (DESIGN.md, Metrics): each event is counted once, under one of them.
OUTCOMES = ("processed", "late", "duplicate", "invalid")
# The event type of a dead letter whose input did not say a known one.
UNKNOWN_EVENT_TYPE = "unknown"
KNOWN_EVENTS: tuple[tuple[str, str], ...] = (
    *((event_type, outcome) for event_type in EVENT_TYPES for outcome in OUTCOMES),
    (UNKNOWN_EVENT_TYPE, "invalid"),
)


@dataclass(frozen=True, slots=True)
class DeclaredRule:
    """What a rule in force can count, known before its first finding."""

    rule: str
    severities: tuple[str, ...]
    # The `team` label of its findings: the sales team of a deal or of a by-team aggregate
    # (True: not known in advance), or always "" (aggregates by plan or rep).
    by_team: bool
    classes: tuple[str, ...]  # the money classes of what its findings put at risk, if any
    experimental: bool = False  # counted apart, out of finance's figures


def declared_rules(rules: RulePack) -> tuple[DeclaredRule, ...]:
    """The findings each rule of `rules` can count: its id, severities (every tier of a join
    rule), whether they carry a team, the money classes they can put at risk."""
    return tuple(DeclaredRule(r.meta.id, r.severities(), r.team_known(), r.money_classes(),
                              r.meta.status == "experimental")
                 for r in rules.account_rules)


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
        # Findings of experimental rules, by the same keys: kept apart from the two above.
        self.trial_alerts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.trial_at_risk: defaultdict[tuple[str, str, str, str], float] = defaultdict(float)
        self.last_alert: dict[tuple[str, str, str], float] = {}
        # Findings an exception kept from being alerts, by (rule, exception).
        self.excepted_findings: defaultdict[tuple[str, str], int] = defaultdict(int)
        # (rule, team, currency, class): per rule, so a deal flagged by two rules is in both.
        self.at_risk: defaultdict[tuple[str, str, str, str], float] = defaultdict(float)
        # Commission paid on processed deals, by (plan_id, team, currency).
        self.paid: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        # Commission flagged by findings, each (account, deal) once per class at the largest
        # amount any finding gives it: by (class, plan_id, team, currency).
        self.flagged: defaultdict[tuple[str, str, str, str], float] = defaultdict(float)
        # For summaries and reports, not metrics: (PAID or class, plan_id, team, quarter of
        # the deal's close) -> amount.
        self.money_by_quarter: defaultdict[tuple[str, str, str, str], float] = (
            defaultdict(float))
        # Commission retention of the periods evaluated so far, by (group_by, group, period);
        # the targets are the thresholds of the rules in force, by group_by.
        self.retained: dict[tuple[str, str, str], RetentionValue] = {}
        self.retention_targets: dict[str, float] = {}
        self.processing = Histogram(PROCESSING_BUCKETS)
        self.lag = Histogram(LAG_BUCKETS)
        self.rules_loaded = 0
        self.reload_success = 1
        self.last_reload = 0.0
        self.watermark = 0.0
        # Replaced, never mutated, so a scrape on another thread reads a consistent set.
        self.declared: tuple[DeclaredRule, ...] = ()
        self.declared_exceptions: tuple[tuple[str, str], ...] = ()  # (rule, exception)
        self.bounded: frozenset[str] = frozenset(DEFAULT_BOUNDED)
        self.currency = "USD"  # the reporting currency of the rules in force
        # Teams seen in findings so far: teams are not known in advance, but once one is seen,
        # the other rules' first findings for it are counted from 0.
        self.teams: tuple[str, ...] = ()
        self._team_set: set[str] = set()

    # MetricsSink
    def event(self, event_type: str, outcome: str) -> None:
        self.events[event_type, outcome] += 1

    def alert(self, alert: Alert) -> None:
        key = (alert.rule, alert.severity, alert.metric_team)
        if key[2] and key[2] not in self._team_set:  # a team seen for the first time
            self._team_set.add(key[2])
            self.teams = (*self.teams, key[2])
        counts = alert.counts
        if counts:
            self.alerts[key] += 1
            self.last_alert[key] = self._now()
        else:
            self.trial_alerts[key] += 1
        if alert.at_risk:
            at_risk = self.at_risk if counts else self.trial_at_risk
            by_class = alert.evidence.get("money") or {alert.money_class or "unclassified":
                                                       alert.at_risk}
            for money_class, amount in by_class.items():
                at_risk[alert.rule, key[2], alert.currency, money_class] += amount

    def excepted(self, alert: Alert, exception: str) -> None:
        self.excepted_findings[alert.rule, exception] += 1

    def commission_paid(self, plan_id: str, team: str, time: float, amount: float) -> None:
        self.paid[plan_id, team, self.currency] += amount
        self.money_by_quarter[PAID, plan_id, team, quarter_of(time)[0]] += amount

    def retention(self, value: RetentionValue) -> None:
        self.retained[value.key] = value
        if len(self.retained) > MAX_RETENTION_FIGURES:  # bounded: the oldest periods go
            for key in sorted(self.retained, key=lambda k: k[2])[:len(self.retained) // 4]:
                del self.retained[key]

    def commission_flagged(self, money_class: str, plan_id: str, team: str, time: float,
                           amount: float) -> None:
        self.flagged[money_class, plan_id, team, self.currency] += amount
        self.money_by_quarter[money_class, plan_id, team, quarter_of(time)[0]] += amount

    # Shell observations
    def dead_letter(self, letter: DeadLetter, event: bool = True) -> None:
        """`event`: the dead letter is an input event's (counted invalid), not a record of the
        worker's own that it could not read or send."""
        if event:
            self.events[letter.event_type, "invalid"] += 1
        self.deadletters[letter.reason] += 1

    def declare_rules(self, rules: RulePack) -> None:
        """The rules now in force: their findings are exported at 0 until counted. Call at
        load and at every reload (`rules_reloaded(pack)` does both)."""
        self.currency = rules.currency.reporting
        self.declared = declared_rules(rules)
        self.declared_exceptions = tuple((r.meta.id, e.name) for r in rules.rules
                                         for e in r.meta.exceptions)
        # Group-by fields whose values may be metric labels.
        self.bounded = frozenset(rules.bounded_dimensions)
        self.retention_targets = {r.group_by: r.threshold for r in rules.aggregate_rules
                                  if r.measure.kpi}

    def rules_reloaded(self, loaded: RulePack | int | None) -> None:
        """The rules now in force (or just their number), or None when a reload was refused.

        Given the pack, its rules are also declared (`declare_rules`); given a number, the
        declared rules stay as they were.
        """
        self.last_reload = self._now()
        if loaded is None:
            self.reload_success = 0
            return
        self.reload_success = 1
        if isinstance(loaded, RulePack):
            self.declare_rules(loaded)
            loaded = loaded.rule_count
        self.rules_loaded = loaded

    def events_by_outcome(self) -> dict[str, int]:
        result: dict[str, int] = defaultdict(int)
        for (_, outcome), n in self.events.items():
            result[outcome] += n
        return dict(result)

    # What the exporter shows: the counts, plus 0 for every series known in advance.
    def events_series(self) -> list[tuple[tuple[str, str], int]]:
        series = dict.fromkeys(KNOWN_EVENTS, 0)
        series.update(self.events)
        return sorted(series.items())

    def deadletter_series(self) -> list[tuple[str, int]]:
        series = dict.fromkeys(REASONS, 0)
        series.update(self.deadletters)
        return sorted(series.items())

    def alert_series(self, experimental: bool = False
                     ) -> list[tuple[tuple[str, str, str], int]]:
        """Findings by (rule, severity, team), at 0 for what the rules in force can find; of
        the experimental rules alone with `experimental`."""
        teams = self.teams
        series: dict[tuple[str, str, str], int] = {}
        for declared in self.declared:
            if declared.experimental != experimental:
                continue
            for severity in declared.severities:
                for team in teams if declared.by_team else ("",):
                    series[declared.rule, severity, team] = 0
        series.update(self.trial_alerts if experimental else self.alerts)
        return sorted(series.items())

    def excepted_series(self) -> list[tuple[tuple[str, str], int]]:
        """Excepted findings by (rule, exception), at 0 for every exception in force."""
        series = dict.fromkeys(self.declared_exceptions, 0)
        series.update(self.excepted_findings)
        return sorted(series.items())

    def flagged_series(self) -> list[tuple[tuple[str, str, str, str], float]]:
        """Every class any rule in force can flag, at 0 for each plan and team paid so far
        (a deal is paid before any finding flags it)."""
        classes = sorted({c for d in self.declared if not d.experimental for c in d.classes})
        series: dict[tuple[str, str, str, str], float] = {
            (money_class, plan_id, team, currency): 0.0
            for plan_id, team, currency in self.paid for money_class in classes}
        series.update(self.flagged)
        return sorted(series.items())

    def at_risk_series(self, experimental: bool = False
                       ) -> list[tuple[tuple[str, str, str, str], float]]:
        teams, currency = self.teams, self.currency
        series: dict[tuple[str, str, str, str], float] = {}
        for declared in self.declared:
            if declared.experimental != experimental:
                continue
            for money_class in declared.classes:
                for team in teams if declared.by_team else ("",):
                    series[declared.rule, team, currency, money_class] = 0.0
        series.update(self.trial_at_risk if experimental else self.at_risk)
        return sorted(series.items())
