"""Prometheus config and alert rules: promtool accepts them, and they keep their promises."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import (
    CONTRACT_LABELS,
    CONTRACT_METRICS,
    DEFAULT_RULE_IDS,
    MONEY_CLASSES,
    MONEY_COUNTERS,
    PROMETHEUS_DIR,
    SCRAPE_JOB,
    SEVERITIES,
    alert_rules,
    assert_promtool_ok,
    label_names,
    load_yaml,
    metric_names,
    rule_ids,
)

EXPECTED_GROUPS = {"comp-auditor-finance", "comp-auditor-operations"}


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    output = assert_promtool_ok("check", "rules", "alerts.yml")
    assert "SUCCESS" in output


@pytest.mark.prometheus
def test_promtool_test_rules() -> None:
    output = assert_promtool_ok("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output


@pytest.mark.prometheus
def test_promtool_check_config() -> None:
    output = assert_promtool_ok("check", "config", "prometheus.yml")
    assert "alerts.yml" in output, "prometheus.yml should load alerts.yml"


def test_scrape_config_uses_the_contract_job() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert SCRAPE_JOB in jobs
    job = jobs[SCRAPE_JOB]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert len(targets) >= 2, "both workers are scraped"
    assert config["rule_files"] == ["alerts.yml"]


def test_alert_groups() -> None:
    data = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    assert {group["name"] for group in data["groups"]} == EXPECTED_GROUPS
    for group in data["groups"]:
        assert group["rules"], group["name"]


def test_every_alert_has_severity_and_annotations() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: annotation {key} missing"
        # An absolute link: the runbook_base_url external label, or a fallback address
        # (test_deploy_alertmanager.py checks the form).
        assert re.search(r'"https://\S+/deploy/README\.md" \}\}#[a-z0-9-]+$',
                         annotations["runbook_url"]), (
            f"{name}: runbook_url must be an absolute link into deploy/README.md"
        )


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


def test_alert_expressions_use_only_contract_metrics() -> None:
    allowed = CONTRACT_METRICS | {"up"}
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        assert names <= allowed, f"{rule['alert']}: unknown metrics {names - allowed}"
        labels = label_names(rule["expr"])
        assert labels <= CONTRACT_LABELS, (
            f"{rule['alert']}: unknown labels {labels - CONTRACT_LABELS}"
        )
        assert rule_ids(rule["expr"]) <= DEFAULT_RULE_IDS, rule["alert"]


def test_required_alerts_use_the_prescribed_metrics() -> None:
    by_name = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    finance = {
        rule["alert"]
        for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
        if group["name"] == "comp-auditor-finance"
        for rule in group["rules"]
    }
    assert "auditor_last_alert_timestamp_seconds" in by_name["CompAuditorCriticalRetentionFinding"]
    assert "auditor_aggregate_breached" in by_name["CompAuditorAggregateThresholdBreached"]
    # Money totals use the de-duplicated counter (each deal once per class), not the per-rule
    # one, which counts a deal flagged by two rules twice.
    at_risk = by_name["CompAuditorCommissionAtRiskGrowing"]
    assert "auditor_commission_flagged_total" in at_risk
    assert "auditor_commission_at_risk_total" not in at_risk
    retention = by_name["CompAuditorCommissionRetentionBelowTarget"]
    assert 'auditor_commission_retention_ratio{status="settled"}' in retention
    assert "auditor_commission_retention_target" in retention
    assert f'up{{job="{SCRAPE_JOB}"}}' in by_name["CompAuditorWorkerDown"]
    assert "auditor_consumer_lag" in by_name["CompAuditorConsumerLagGrowing"]
    assert "auditor_deadletters_total" in by_name["CompAuditorDeadLetterRateHigh"]
    assert "auditor_rules_reload_success" in by_name["CompAuditorRulesReloadFailing"]
    assert "auditor_events_total" in by_name["CompAuditorNoEvents"]
    assert finance == {
        "CompAuditorCriticalRetentionFinding",
        "CompAuditorCommissionAtRiskGrowing",
        "CompAuditorAggregateThresholdBreached",
        "CompAuditorCommissionRetentionBelowTarget",
    }


def test_money_alerts_say_the_amount_and_the_class() -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    at_risk = by_name["CompAuditorCommissionAtRiskGrowing"]
    grouping = re.search(r"sum by \(([^)]*)\)", at_risk["expr"])
    assert grouping and {"class", "team", "currency"} <= {
        label.strip() for label in grouping.group(1).split(",")}
    text = at_risk["annotations"]["summary"] + at_risk["annotations"]["description"]
    for needed in ("$value", "$labels.currency", "$labels.class", "$labels.team"):
        assert needed in text, needed
    for money_class in MONEY_CLASSES:
        assert f'"{money_class}"' in at_risk["annotations"]["description"], money_class
    retention = by_name["CompAuditorCommissionRetentionBelowTarget"]
    text = retention["annotations"]["summary"] + retention["annotations"]["description"]
    for needed in ("$value", "$labels.period", "$labels.group", "retention_target"):
        assert needed in text, needed


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - silent == set(), "alerts without a not-firing case"
    assert (firing | silent) <= names, "tests for alerts that do not exist"


def test_tunables_are_marked() -> None:
    text = (PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8")
    # The thresholds people will want to change carry a "TUNE:" comment naming the number.
    for number in ("24", "10000", "1000", "0.05", "6h", "7d"):
        assert re.search(rf"#\s*TUNE:.*{re.escape(number)}", text), number


_SERIES = re.compile(r"^(\w+)\{(.*)\}$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def test_alert_tests_start_known_counters_at_zero() -> None:
    """The alert tests feed what the exporter really exports: the event, dead-letter and money
    counters exist at 0 from the worker's start, with label values the exporter knows (money
    by class)."""
    from auditor.events.deadletter import REASONS
    from auditor.metrics.counters import KNOWN_EVENTS

    known = {
        "auditor_events_total": {(t, o) for t, o in KNOWN_EVENTS},
        "auditor_deadletters_total": {(reason,) for reason in REASONS},
        # Money counters: every class is exported at 0 from the start.
        **{name: {(c,) for c in MONEY_CLASSES} for name in MONEY_COUNTERS
           if name != "auditor_commission_paid_total"},
        "auditor_commission_paid_total": {()},
    }
    label_order = {"auditor_events_total": ("event_type", "outcome"),
                   "auditor_deadletters_total": ("reason",),
                   "auditor_commission_flagged_total": ("class",),
                   "auditor_commission_at_risk_total": ("class",),
                   "auditor_commission_paid_total": ()}
    checked = 0
    for case in load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]:
        for item in case.get("input_series", []):
            match = _SERIES.match(item["series"])
            assert match, item["series"]
            name = match.group(1)
            if name not in known:
                continue
            labels = dict(_LABEL.findall(match.group(2)))
            key = tuple(labels[label] for label in label_order[name])
            assert key in known[name], f"{case['name']}: the exporter has no {name}{key}"
            first = next(v for v in item["values"].split() if not v.startswith("_"))
            value = re.match(r"-?[0-9.]+", first)
            assert value and float(value.group()) == 0, (
                f"{case['name']}: {item['series']} must start at 0, as exported")
            checked += 1
    assert checked
    assert any(
        "auditor_commission_flagged_total" in item["series"]
        for case in load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
        for item in case.get("input_series", [])
    )
