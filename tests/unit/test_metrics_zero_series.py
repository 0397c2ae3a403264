"""Counters whose label values are known in advance are exported at 0 from the start.

Read through a fresh registry, as Prometheus scrapes it: `increase()` only sees the first
increment of a series that was already there at 0.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from unit_helpers import Run, churn_dict, deal_dict

from auditor.engine.alerts import Alert
from auditor.engine.engine import AuditEngine
from auditor.events.deadletter import REASONS
from auditor.events.decode import EventDecoder
from auditor.events.models import EVENT_TYPES
from auditor.metrics.collector import build_registry
from auditor.metrics.counters import OUTCOMES, RunCounters, declared_rules
from auditor.rules.pack import RulePack

EVENTS = "auditor_events_total"
DEAD = "auditor_deadletters_total"
ALERTS = "auditor_alerts_total"
LAST = "auditor_last_alert_timestamp_seconds"
AT_RISK = "auditor_commission_at_risk_total"


def _declared(rules: RulePack) -> RunCounters:
    counters = RunCounters()
    counters.rules_reloaded(rules)
    return counters


def _run(rules: RulePack, items: list[dict[str, object] | bytes]) -> Run:
    counters = _declared(rules)
    result = Run(AuditEngine(rules, counters, lateness_days=30.0), counters)
    result.feed(EventDecoder(rules.currency), items)
    return result


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    """Every sample of `name`, by its label values in label order."""
    return {tuple(s.labels.values()): s.value
            for family in registry.collect() for s in family.samples if s.name == name}


def _alert(rule: str, severity: str, team: str | None, at_risk: float = 0.0) -> Alert:
    return Alert(alert_id=f"{rule}-{team}", rule=rule, kind="deal", severity=severity,
                 event_time=None, summary="", at_risk=at_risk,
                 money_class="unrecovered" if at_risk else None, currency="USD", team=team)


# --- dead letters and events ------------------------------------------------------------------


def test_every_dead_letter_reason_is_at_zero_before_any_event() -> None:
    registry = build_registry(RunCounters())
    for reason in REASONS:
        assert registry.get_sample_value(DEAD, {"reason": reason}) == 0.0, reason
    assert set(_samples(registry, DEAD)) == {(reason,) for reason in REASONS}


def test_one_dead_letter_is_exactly_one(rules: RulePack) -> None:
    result = _run(rules, [b"{"])
    registry = build_registry(result.counters)
    assert registry.get_sample_value(DEAD, {"reason": "bad_json"}) == 1.0
    for reason in REASONS:
        if reason != "bad_json":
            assert registry.get_sample_value(DEAD, {"reason": reason}) == 0.0, reason
    assert registry.get_sample_value(EVENTS, {"event_type": "unknown",
                                              "outcome": "invalid"}) == 1.0
    # The counts themselves hold only what happened (the replay summary lists them).
    assert dict(result.counters.deadletters) == {"bad_json": 1}


def test_an_unexpected_reason_is_still_exported() -> None:
    counters = RunCounters()
    counters.deadletters["something_new"] += 1
    registry = build_registry(counters)
    assert registry.get_sample_value(DEAD, {"reason": "something_new"}) == 1.0
    assert registry.get_sample_value(DEAD, {"reason": "schema"}) == 0.0


def test_events_are_at_zero_for_every_type_and_outcome() -> None:
    registry = build_registry(RunCounters())
    expected = {(t, o) for t in EVENT_TYPES for o in OUTCOMES} | {("unknown", "invalid")}
    assert set(_samples(registry, EVENTS)) == expected
    assert set(OUTCOMES) == {"processed", "late", "duplicate", "invalid"}
    for event_type, outcome in expected:
        labels = {"event_type": event_type, "outcome": outcome}
        assert registry.get_sample_value(EVENTS, labels) == 0.0, labels


def test_events_count_from_zero(rules: RulePack) -> None:
    deal = deal_dict()
    result = _run(rules, [deal, deal, deal_dict(acv=-1)])
    registry = build_registry(result.counters)
    assert _samples(registry, EVENTS) == {
        ("account_churned", "duplicate"): 0.0, ("account_churned", "invalid"): 0.0,
        ("account_churned", "late"): 0.0, ("account_churned", "processed"): 0.0,
        ("deal_closed", "duplicate"): 1.0, ("deal_closed", "invalid"): 1.0,
        ("deal_closed", "late"): 0.0, ("deal_closed", "processed"): 1.0,
        ("unknown", "invalid"): 0.0,
    }


# --- findings of the rules in force -----------------------------------------------------------


def test_severities_of_each_rule(rules: RulePack) -> None:
    declared = {d.rule: d for d in declared_rules(rules)}
    assert set(declared) == set(rules.by_id()) | {"plan-contradiction"}
    # A join rule with tiers can count under each of its severities.
    assert declared["early-churn-unrecovered"].severities == ("critical", "warning")
    assert declared["churn-and-resell"].severities == ("critical",)
    assert declared["rep-early-churn-rate"].severities == ("critical",)
    # Only the aggregates by plan or by rep count findings without a team.
    assert {d.rule for d in declared.values() if not d.by_team} == {
        "renewal-rate-gap", "rep-early-churn-rate", "commission-retention-plan"}


def test_rules_in_force_are_at_zero_before_any_finding(rules: RulePack) -> None:
    registry = build_registry(_declared(rules))
    # The rules whose findings have no team: their series are known in full.
    assert _samples(registry, ALERTS) == {
        ("renewal-rate-gap", "warning", ""): 0.0,
        ("rep-early-churn-rate", "critical", ""): 0.0,
        ("commission-retention-plan", "warning", ""): 0.0,
    }
    # Each class a rule can put money in (rep-early-churn-rate: by the deal's clawback).
    assert _samples(registry, AT_RISK) == {
        ("rep-early-churn-rate", "", "USD", "recoverable"): 0.0,
        ("rep-early-churn-rate", "", "USD", "unrecovered"): 0.0}
    # No phantom "no team" series for rules whose findings always have one.
    assert registry.get_sample_value(
        ALERTS, {"rule": "tcv-paid-upfront", "severity": "warning", "team": ""}) is None
    # A timestamp has no first increment to miss: only series with a finding have one.
    assert _samples(registry, LAST) == {}


def test_a_team_seen_in_a_finding_counts_from_zero_for_every_rule(rules: RulePack) -> None:
    deal = deal_dict(team="emea", term_months=24,
                     commission={"basis": "tcv", "amount": 1000.0, "paid_upfront": 1000.0})
    result = _run(rules, [deal])
    assert [a.rule for a in result.alerts] == ["tcv-paid-upfront"]
    registry = build_registry(result.counters)

    def count(rule: str, severity: str) -> float | None:
        return registry.get_sample_value(ALERTS, {"rule": rule, "severity": severity,
                                                 "team": "emea"})

    assert count("tcv-paid-upfront", "warning") == 1.0
    assert count("early-churn-unrecovered", "critical") == 0.0
    assert count("early-churn-unrecovered", "warning") == 0.0
    assert count("discount-then-churn", "warning") == 0.0
    assert count("churn-and-resell", "critical") == 0.0
    assert count("new-logo-payout-share", "warning") == 0.0
    assert count("plan-contradiction", "warning") == 0.0
    assert count("renewal-rate-gap", "warning") is None  # its findings never have a team
    assert registry.get_sample_value(
        AT_RISK, {"rule": "early-churn-unrecovered", "team": "emea", "currency": "USD",
                  "class": "unrecovered"}) == 0.0
    assert registry.get_sample_value(
        AT_RISK, {"rule": "tcv-paid-upfront", "team": "emea", "currency": "USD",
                  "class": "exposure"}) == 500.0
    assert set(_samples(registry, LAST)) == {("tcv-paid-upfront", "warning", "emea")}

    # The next finding of another rule for that team is seen from 0.
    result.feed(EventDecoder(rules.currency),
                [churn_dict(account_id=deal["account_id"], days=30.0)])
    registry = build_registry(result.counters)
    assert count("early-churn-unrecovered", "critical") == 1.0
    assert count("early-churn-unrecovered", "warning") == 0.0


def test_counted_findings_are_kept_as_counted(rules: RulePack) -> None:
    counters = _declared(rules)
    counters.alert(_alert("rep-early-churn-rate", "critical", None, at_risk=12.5))
    registry = build_registry(counters)
    assert registry.get_sample_value(
        ALERTS, {"rule": "rep-early-churn-rate", "severity": "critical", "team": ""}) == 1.0
    assert registry.get_sample_value(
        AT_RISK, {"rule": "rep-early-churn-rate", "team": "", "currency": "USD",
                  "class": "unrecovered"}) == 12.5
    assert dict(counters.alerts) == {("rep-early-churn-rate", "critical", ""): 1}


# --- reloads ----------------------------------------------------------------------------------


def _without(rules: RulePack, *ids: str) -> RulePack:
    return replace(
        rules,
        rules=tuple(r for r in rules.rules if r.meta.id not in ids),
    )


def test_a_reload_drops_the_zero_series_of_removed_rules(rules: RulePack) -> None:
    counters = _declared(rules)
    counters.alert(_alert("tcv-paid-upfront", "warning", "emea", at_risk=100.0))
    counters.alert(_alert("renewal-rate-gap", "warning", None))
    before = _samples(build_registry(counters), ALERTS)
    assert before[("discount-then-churn", "warning", "emea")] == 0.0
    assert before[("rep-early-churn-rate", "critical", "")] == 0.0

    smaller = _without(rules, "tcv-paid-upfront", "renewal-rate-gap", "discount-then-churn",
                       "rep-early-churn-rate")
    counters.rules_reloaded(smaller)
    registry = build_registry(counters)
    after = _samples(registry, ALERTS)
    # Counted values stay: a counter never goes backwards, even for a rule that is gone.
    assert after[("tcv-paid-upfront", "warning", "emea")] == 1.0
    assert after[("renewal-rate-gap", "warning", "")] == 1.0
    assert registry.get_sample_value(
        AT_RISK, {"rule": "tcv-paid-upfront", "team": "emea", "currency": "USD",
                  "class": "unrecovered"}) == 100.0
    # The zero series of removed rules are gone.
    assert ("discount-then-churn", "warning", "emea") not in after
    assert ("rep-early-churn-rate", "critical", "") not in after
    assert registry.get_sample_value(
        AT_RISK, {"rule": "rep-early-churn-rate", "team": "", "currency": "USD",
                  "class": "unrecovered"}) is None
    # The rules still in force keep theirs.
    assert after[("churn-and-resell", "critical", "emea")] == 0.0
    assert registry.get_sample_value("auditor_rules_loaded") == smaller.rule_count

    # Added back, a rule's series start at 0 again.
    counters.rules_reloaded(rules)
    assert _samples(build_registry(counters), ALERTS) == before


def test_a_reload_follows_a_changed_severity(rules: RulePack) -> None:
    counters = _declared(rules)
    [rate] = [r for r in rules.aggregate_rules if r.meta.id == "renewal-rate-gap"]
    stricter = replace(rules, rules=tuple(
        replace(r, severity="critical") if r is rate else r for r in rules.rules))
    counters.rules_reloaded(stricter)
    series = _samples(build_registry(counters), ALERTS)
    assert ("renewal-rate-gap", "critical", "") in series
    assert ("renewal-rate-gap", "warning", "") not in series


@pytest.mark.parametrize("reload", [None, 3])
def test_a_refused_or_counted_reload_keeps_the_declared_rules(rules: RulePack,
                                                              reload: int | None) -> None:
    counters = _declared(rules)
    before = _samples(build_registry(counters), ALERTS)
    counters.rules_reloaded(reload)
    registry = build_registry(counters)
    assert _samples(registry, ALERTS) == before
    assert registry.get_sample_value("auditor_rules_reload_success") == (
        0.0 if reload is None else 1.0)
    assert registry.get_sample_value("auditor_rules_loaded") == (
        rules.rule_count if reload is None else 3)


def test_declare_rules_alone_sets_no_reload(rules: RulePack) -> None:
    counters = RunCounters()
    counters.declare_rules(rules)
    registry = build_registry(counters)
    assert registry.get_sample_value("auditor_rules_last_reload_timestamp_seconds") == 0.0
    assert _samples(registry, ALERTS)


def test_no_plans_no_plan_contradiction(rules: RulePack) -> None:
    assert "plan-contradiction" not in {d.rule for d in declared_rules(replace(rules,
                                                                               plans=None))}
