"""Rule exceptions as a user runs them, on `auditor simulate`: an exception added to a copy of
the default rules takes its findings out of the alerts, the money and the metrics, and is
counted by `auditor rules exceptions --events`; `auditor rules check` refuses it once expired,
while `auditor replay` runs with a warning."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import ROOT, auditor
from prometheus_client.parser import text_string_to_metric_families

from auditor.rules.loader import default_rules_dir

SIM_ARGS = ("--accounts", "600", "--months", "12", "--seed", "11")


def _today() -> datetime:
    return datetime.now(UTC)


def _ok(*args: str) -> str:
    done = auditor(*args)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _replay(events: Path, rules: Path, out: Path) -> tuple[list[dict[str, Any]], dict[str, Any],
                                                         str]:
    out.mkdir()
    done = auditor("replay", str(events), "--rules", str(rules), "--quiet",
                   "--alerts-out", str(out / "alerts.jsonl"),
                   "--summary-out", str(out / "summary.json"),
                   "--metrics-out", str(out / "metrics.txt"))
    assert done.returncode == 0, done.stderr.decode()
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    return (alerts, json.loads((out / "summary.json").read_text()),
            (out / "metrics.txt").read_text())


def _with_exceptions(rules: Path, rule_id: str, block: str) -> None:
    """Add `exceptions:` (YAML, indented for a rule's keys) to rule `rule_id`."""
    for path in rules.glob("*.yaml"):
        text = path.read_text()
        start = text.find(f"  - id: {rule_id}\n")
        if start < 0:
            continue
        end = text.find("\n  - id: ", start + 1)
        end = len(text) if end < 0 else end + 1
        path.write_text(text[:end].rstrip("\n") + "\n    exceptions:\n" + block + "\n"
                        + text[end:])
        return
    raise AssertionError(f"no rule {rule_id}")


def _exception(name: str, expires: str, match: str) -> str:
    return (f"      - name: {name}\n        reason: Accepted by the comp committee.\n"
            f"        owner: sales-ops\n        expires: {expires}\n        {match}\n")


def _excepted_metric(metrics: str) -> dict[tuple[str, str], float]:
    return {(s.labels["rule"], s.labels["exception"]): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples if s.name == "auditor_excepted_findings_total"}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]],
                                                               dict[str, Any]]:
    out = tmp_path_factory.mktemp("exceptions")
    events = out / "events.jsonl"
    _ok("simulate", *SIM_ARGS, "--out", str(events))
    alerts, summary, _ = _replay(events, default_rules_dir(), out / "baseline")
    return events, alerts, summary


def _most(alerts: list[dict[str, Any]], rule: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    """The value of `key` with the most alerts of `rule`, and those alerts."""
    by: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        if alert["rule"] == rule:
            by.setdefault(alert[key], []).append(alert)
    assert by, f"the simulation has no {rule} alert"
    value = max(sorted(by), key=lambda v: len(by[v]))
    return value, by[value]


def test_an_exception_takes_its_findings_out_of_alerts_money_and_metrics(history, tmp_path):
    events, baseline, summary = history
    account, by_account = _most(baseline, "early-churn-unrecovered", "account_id")
    team, by_team = _most(baseline, "new-logo-payout-share", "group")
    expires = (_today() + timedelta(days=400)).date().isoformat()
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    _with_exceptions(rules, "early-churn-unrecovered",
                     _exception("settled-account", expires, f"account_id: {account}")
                     + _exception("never-used", expires, "deal_id: no-such-deal"))
    _with_exceptions(rules, "new-logo-payout-share",
                     _exception("team-launch", expires, f"team: {team}"))
    _ok("rules", "check", str(rules))

    alerts, after, metrics = _replay(events, rules, tmp_path / "after")
    excepted = {a["alert_id"] for a in (*by_account, *by_team)}
    assert {a["alert_id"] for a in alerts} == {a["alert_id"] for a in baseline} - excepted

    def money(data: dict[str, Any], rule: str) -> float:
        return sum(row["amount"] for row in data["money"]["by_rule"] if row["rule"] == rule)

    assert money(after, "early-churn-unrecovered") == pytest.approx(
        money(summary, "early-churn-unrecovered") - sum(a["at_risk"] for a in by_account))
    assert {(r["rule"], r["exception"]): r["findings"] for r in after["excepted"]} == {
        ("early-churn-unrecovered", "settled-account"): len(by_account),
        ("early-churn-unrecovered", "never-used"): 0,
        ("new-logo-payout-share", "team-launch"): len(by_team)}
    assert _excepted_metric(metrics) == {
        ("early-churn-unrecovered", "settled-account"): float(len(by_account)),
        ("early-churn-unrecovered", "never-used"): 0.0,
        ("new-logo-payout-share", "team-launch"): float(len(by_team))}

    listed = json.loads(_ok("rules", "exceptions", str(rules), "--events", str(events),
                            "--json"))
    rows = {row["exception"]: row for row in listed["exceptions"]}
    assert rows["settled-account"]["findings"] == len(by_account)
    assert rows["settled-account"]["matches"] == {"account_id": account}
    assert rows["settled-account"]["status"] == "active"
    assert rows["team-launch"]["findings"] == len(by_team)
    assert rows["never-used"]["findings"] == 0
    text = _ok("rules", "exceptions", str(rules))
    assert f"early-churn-unrecovered  exceptions[settled-account]  active (expires {expires})" in (
        text)


def test_an_expired_exception_fails_rules_check_and_replay_warns(history, tmp_path):
    events, _, _ = history
    yesterday = (_today() - timedelta(days=1)).date().isoformat()
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    _with_exceptions(rules, "tcv-paid-upfront",
                     _exception("lapsed", yesterday, "account_id: acct-1"))
    done = auditor("rules", "check", str(rules))
    assert done.returncode == 1
    err = done.stderr.decode()
    payout = rules / "payout.yaml"
    lines = payout.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "- name: lapsed" in text)
    assert f"{payout}:{line}: tcv-paid-upfront: exceptions[lapsed]: expired on {yesterday}" in err
    listed = json.loads(_ok("rules", "exceptions", str(rules), "--json"))
    [row] = listed["exceptions"]
    assert (row["status"], row["days_left"]) == ("expired", -1)
    done = auditor("replay", str(events), "--rules", str(rules), "--quiet")
    assert done.returncode == 0, done.stderr.decode()
    assert (f"tcv-paid-upfront: exceptions[lapsed]: expired on {yesterday}; it matches no "
            "finding after that day") in done.stderr.decode()


def test_the_exception_rule_tests_pass():
    done = auditor("rules", "test", str(ROOT / "tests" / "unit" / "rules_with_exceptions"))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "7 passed, 0 failed" in done.stdout.decode()
