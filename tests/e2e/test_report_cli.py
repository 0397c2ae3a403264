"""`auditor report` and `auditor findings export` run as a user runs them, on input files written
by hand to the contracts (alerts with money classes, the replay summary, a plan what-if), on
damaged or missing inputs, and on a real replay's alerts.

`write_inputs` is shared with test_report_browser.py, which opens the same report in Chromium.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from e2e_helpers import auditor

# The charts a report with every input has (the data-chart names of its SVGs).
ALL_CHARTS = {"paid-plan", "money-class", "money-rule", "money-team", "retention-plan",
              "retention-team"}
HOSTILE_SUMMARY = ('Rep <b>bold</b> </td></table></script><script>console.error("injected")'
                   "</script> & more")


def _alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alert_id": "", "rule": "", "kind": "deal", "severity": "warning",
        "event_time": None, "summary": "", "at_risk": 0.0, "money_class": None,
        "currency": "USD", "deal_id": None, "account_id": None, "rep_id": None, "team": None,
        "plan_id": None, "group_by": None, "group": None, "period": None, "value": None,
        "threshold": None, "evidence": {}, "labels": {}, "runbook": "",
    }
    base.update(fields)
    if not base["alert_id"]:
        base["alert_id"] = f"{len(base['rule']):02d}" + "a" * 62
    return base


def deal(rule: str, kind: str, severity: str, event_time: str, at_risk: float,
         money_class: str | None, n: int, team: str, plan: str,
         **extra: Any) -> dict[str, Any]:
    evidence = {"closed_at": event_time}
    if at_risk > 0 and money_class is not None:
        evidence["money"] = {money_class: at_risk}  # type: ignore[assignment]
    return _alert(alert_id=f"{n:064x}", rule=rule, kind=kind, severity=severity,
                  event_time=event_time, at_risk=at_risk, money_class=money_class,
                  deal_id=f"deal-{n}", account_id=f"acct-{n}", rep_id=f"rep-{n % 3}",
                  team=team, plan_id=plan, summary=f"{rule} on deal-{n}.", evidence=evidence,
                  **extra)


ALERTS: list[dict[str, Any]] = [
    deal("tcv-paid-upfront", "deal", "warning", "2025-01-03T10:00:00Z", 3399.34, "exposure",
         1, "apac-growth", "hunter-2026"),
    deal("early-churn-unrecovered", "churn-after-deal", "critical", "2025-05-02T10:00:00Z",
         1202.09, "unrecovered", 2, "na-midmarket", "hunter-2026"),
    deal("discount-then-churn", "churn-after-deal", "warning", "2025-08-20T10:00:00Z", 865.65,
         "recoverable", 3, "emea-enterprise", "steady-2026"),
    deal("churn-and-resell", "deal-after-churn", "critical", "2025-11-11T10:00:00Z", 1829.90,
         "overpaid", 4, "na-midmarket", "hunter-2026"),
    _alert(alert_id="5" * 64, rule="rep-early-churn-rate", kind="aggregate",
           severity="critical", event_time="2025-07-01T00:00:00Z", at_risk=2799.81,
           money_class="unrecovered", group_by="rep_id", group="rep-apac-023",
           period="2025-Q2", value=0.25, threshold=0.25,
           summary="rep_id rep-apac-023 in 2025-Q2: 25% of deals churned early.",
           evidence={"deals": 4, "money": {"unrecovered": 2000.0, "recoverable": 799.81}}),
    _alert(alert_id="6" * 64, rule="new-logo-payout-share", kind="aggregate",
           severity="warning", event_time="2025-04-01T00:00:00Z", group_by="team",
           group="na-midmarket", period="2025-Q1", value=1.0, threshold=0.85,
           summary="team na-midmarket in 2025-Q1: new-logo share 1.00.",
           evidence={"deals": 65}),
    _alert(alert_id="7" * 64, rule="plan-no-clawback", kind="plan", severity="warning",
           plan_id="hunter-2026", group_by="plan_id", group="hunter-2026",
           summary="Plan hunter-2026 has no clawback."),
    # A hostile deal: markup and a spreadsheet formula in fields that come from events.
    deal("early-churn-unrecovered", "churn-after-deal", "warning", "2026-02-14T10:00:00Z",
         410.0, "unrecovered", 8, "=HYPERLINK(\"x\")", "steady-2026",
         ) | {"summary": HOSTILE_SUMMARY, "rep_id": "@rep"},
]
# An alert of an older auditor: no money_class at all (read as unclassified).
OLD_ALERT = {k: v for k, v in deal("early-churn-unrecovered", "churn-after-deal", "warning",
                                   "2026-03-01T10:00:00Z", 500.0, None, 9, "apac-growth",
                                   "hunter-2026").items() if k != "money_class"}

SUMMARY: dict[str, Any] = {
    "currency": "USD",
    "events": {"processed": 1200, "late": 3, "duplicate": 7, "invalid": 2},
    "commission_paid": {"total": 250000.0, "rows": [
        {"plan_id": p, "team": t, "quarter": q, "amount": a}
        for p, t, q, a in (("hunter-2026", "apac-growth", "2025-Q1", 40000.0),
                           ("steady-2026", "emea-enterprise", "2025-Q1", 30000.0),
                           ("hunter-2026", "na-midmarket", "2025-Q2", 50000.0),
                           ("steady-2026", "emea-enterprise", "2025-Q3", 60000.0),
                           ("hunter-2026", "na-midmarket", "2025-Q4", 70000.0))]},
    "money": {
        "by_class": {"unrecovered": 3202.09, "recoverable": 1665.46, "exposure": 3399.34,
                     "overpaid": 1829.90},
        "rows": [
            {"class": c, "plan_id": p, "team": t, "quarter": q, "amount": a}
            for c, p, t, q, a in (
                ("exposure", "hunter-2026", "apac-growth", "2025-Q1", 3399.34),
                ("unrecovered", "hunter-2026", "na-midmarket", "2025-Q2", 3202.09),
                ("recoverable", "steady-2026", "emea-enterprise", "2025-Q2", 799.81),
                ("recoverable", "steady-2026", "emea-enterprise", "2025-Q3", 865.65),
                ("overpaid", "hunter-2026", "na-midmarket", "2025-Q4", 1829.90))],
        "by_rule": [
            {"rule": "tcv-paid-upfront", "class": "exposure", "amount": 3399.34, "findings": 1},
            {"rule": "early-churn-unrecovered", "class": "unrecovered", "amount": 1202.09,
             "findings": 1},
            {"rule": "rep-early-churn-rate", "class": "unrecovered", "amount": 2000.0,
             "findings": 1},
            {"rule": "rep-early-churn-rate", "class": "recoverable", "amount": 799.81,
             "findings": 1},
            {"rule": "discount-then-churn", "class": "recoverable", "amount": 865.65,
             "findings": 1},
            {"rule": "churn-and-resell", "class": "overpaid", "amount": 1829.90, "findings": 1},
        ],
    },
    "retention": {
        "months": 12,
        "rows": [
            {"group_by": g, "group": n, "period": q, "status": s, "paid": p, "retained": r,
             "share": round(r / p, 4)}
            for g, n, q, s, p, r in (
                ("plan_id", "hunter-2026", "2025-Q1", "settled", 40000.0, 26000.0),
                ("plan_id", "hunter-2026", "2025-Q2", "settled", 50000.0, 30000.0),
                ("plan_id", "hunter-2026", "2025-Q4", "live", 70000.0, 49000.0),
                ("plan_id", "steady-2026", "2025-Q1", "settled", 30000.0, 27000.0),
                ("plan_id", "steady-2026", "2025-Q3", "live", 60000.0, 55000.0),
                ("team", "apac-growth", "2025-Q1", "settled", 40000.0, 26000.0),
                ("team", "na-midmarket", "2025-Q2", "settled", 50000.0, 30000.0),
                ("team", "na-midmarket", "2025-Q4", "live", 70000.0, 49000.0),
                ("team", "emea-enterprise", "2025-Q1", "settled", 30000.0, 27000.0),
                ("team", "emea-enterprise", "2025-Q3", "live", 60000.0, 55000.0))],
        "targets": {"plan_id": 0.8, "team": 0.8},
    },
}

WHATIF: dict[str, Any] = {
    "currency": "USD",
    "plans": [{
        "plan_id": "hunter-2026",
        "changes": {"clawback_days": [0, 180], "rates.renewal": [0.0, 0.05]},
        "totals": {"paid_actual": 160000.0, "paid_candidate": 151000.0,
                   "recovered_actual": 0.0, "recovered_candidate": 3400.0},
        "rows": [
            {"team": "na-midmarket", "quarter": "2025-Q2", "paid_actual": 50000.0,
             "paid_candidate": 47000.0, "recovered_actual": 0.0, "recovered_candidate": 1202.09,
             "unrecovered_actual": 1202.09, "unrecovered_candidate": 0.0, "deals": 40,
             "churned_deals": 3},
            {"team": "apac-growth", "quarter": "2025-Q1", "paid_actual": 40000.0,
             "paid_candidate": 38000.0, "recovered_actual": 0.0, "recovered_candidate": 900.0,
             "unrecovered_actual": 900.0, "unrecovered_candidate": 0.0, "deals": 31,
             "churned_deals": 2},
        ],
    }],
}


def write_inputs(directory: Path) -> dict[str, Path]:
    """The alerts (with a blank line, an old alert and a damaged line), summary and what-if."""
    alerts = directory / "alerts.jsonl"
    lines = [json.dumps(a) for a in ALERTS]
    lines[3:3] = ["", json.dumps(OLD_ALERT), "{not json"]
    alerts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = directory / "summary.json"
    summary.write_text(json.dumps(SUMMARY, indent=2), encoding="utf-8")
    whatif = directory / "whatif.json"
    whatif.write_text(json.dumps(WHATIF, indent=2), encoding="utf-8")
    return {"alerts": alerts, "summary": summary, "whatif": whatif}


def full_report(directory: Path) -> Path:
    inputs = write_inputs(directory)
    out = directory / "report.html"
    done = auditor("report", "--alerts", str(inputs["alerts"]), "--summary",
                   str(inputs["summary"]), "--whatif", str(inputs["whatif"]), "--plans-audit",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    return out


def charts_in(page: str) -> set[str]:
    return set(re.findall(r'<svg [^>]*data-chart="([^"]+)"', page))


def test_a_report_with_every_input_has_every_section(tmp_path: Path) -> None:
    page = full_report(tmp_path).read_text(encoding="utf-8")
    assert charts_in(page) == ALL_CHARTS
    assert "Not available" not in page
    for text in ("Commission audit report", "Money by class", "per-rule sums: may double count",
                 "Commission retention per plan", "target 80%", "plan-renewals-underpaid",
                 "Plan hunter-2026", "clawback_days", "rep-apac-023", "unclassified"):
        assert text in page, text
    # Shares of commission paid beside the de-duplicated class totals: 3,399.34 / 250,000.
    assert "3,399.34" in page and "1.4%" in page
    # One row per alert read; the damaged line is skipped and said so.
    assert page.count("<tr data-alert-id=") == len(ALERTS) + 1
    assert "1 line(s) of the alerts file are not alerts" in page


def test_the_report_loads_nothing_and_escapes_what_the_events_say(tmp_path: Path) -> None:
    page = full_report(tmp_path).read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page)
    urls = set(re.findall(r"https?://[^\s\"')<]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert page.count("<script>") == 1
    assert "console.error(&quot;injected&quot;)" in page
    assert "<b>bold</b>" not in page


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    first = full_report(tmp_path).read_bytes()
    (tmp_path / "report.html").unlink()
    assert full_report(tmp_path).read_bytes() == first


def test_missing_or_damaged_optional_inputs_say_not_available(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json", encoding="utf-8")
    out = tmp_path / "report.html"
    done = auditor("report", "--alerts", str(inputs["alerts"]), "--summary",
                   str(tmp_path / "absent.json"), "--whatif", str(broken), "--rules",
                   str(tmp_path / "no-rules"), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    page = out.read_text(encoding="utf-8")
    stderr = done.stderr.decode()
    assert "absent.json does not exist" in stderr and "broken.json is not JSON" in stderr
    assert "no plans registered" in stderr
    assert "Not available: commission retention" in page
    assert "Not available: a plan what-if" in page and "is not JSON" in page
    assert "Not available: the plan audit" in page
    # The findings alone still give the charts by class (unclassified, summed), rule and team.
    assert charts_in(page) == {"money-class", "money-rule", "money-team"}


def test_a_summary_of_another_shape_leaves_its_parts_out(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"currency": "EUR", "money": {"rows": [{"class": "x"}, 3]},
                               "retention": {"rows": "none"}, "events": [1]}),
                   encoding="utf-8")
    whatif = tmp_path / "whatif.json"
    whatif.write_text(json.dumps({"plans": [{"changes": {}}, {"plan_id": "p", "rows": [
        {"team": "t", "quarter": "2025-Q1", "paid_actual": "a lot"}]}]}), encoding="utf-8")
    out = tmp_path / "report.html"
    done = auditor("report", "--alerts", str(inputs["alerts"]), "--summary", str(odd),
                   "--whatif", str(whatif), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    page = out.read_text(encoding="utf-8")
    assert "Amounts in EUR" in page
    assert "2 malformed row(s) of money.rows skipped" in page
    assert "Not available: commission retention" in page
    assert "Not available: de-duplicated totals by class" in page
    assert "Plan p" in page and "has no plan_id" in page


def test_a_missing_alerts_file_is_an_error(tmp_path: Path) -> None:
    done = auditor("report", "--alerts", str(tmp_path / "none.jsonl"), "--out",
                   str(tmp_path / "r.html"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr.decode()
    assert not (tmp_path / "r.html").exists()


def test_findings_export_writes_one_row_per_alert(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    out = tmp_path / "findings.csv"
    done = auditor("findings", "export", str(inputs["alerts"]), "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert ":6: not JSON" in done.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert len(rows) == len(ALERTS) + 1
    by_id = {r["alert_id"]: r for r in rows}
    assert by_id["5" * 64]["period"] == "2025-Q2"
    assert by_id[f"{2:064x}"]["period"] == "2025-Q2"  # event time 2025-05-02
    assert by_id[f"{9:064x}"]["money_class"] == ""  # an older alert
    assert by_id[f"{8:064x}"]["team"] == "'=HYPERLINK(\"x\")"
    assert json.loads(by_id["5" * 64]["evidence"])["money"]["recoverable"] == 799.81
    stdout = auditor("findings", "export", str(inputs["alerts"]))
    assert stdout.returncode == 0
    assert stdout.stdout.decode().replace("\r\n", "\n") == (
        out.read_text(encoding="utf-8").replace("\r\n", "\n"))


def test_a_real_replay_reports_and_exports(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    alerts = tmp_path / "alerts.jsonl"
    assert auditor("simulate", "--accounts", "300", "--months", "12", "--seed", "3", "--out",
                   str(events)).returncode == 0
    replay = auditor("replay", str(events), "--alerts-out", str(alerts), "--quiet")
    assert replay.returncode == 0, replay.stderr.decode()
    count = sum(1 for line in alerts.read_text(encoding="utf-8").splitlines() if line.strip())
    assert count > 0
    out = tmp_path / "report.html"
    done = auditor("report", "--alerts", str(alerts), "--summary",
                   str(tmp_path / "summary.json"), "--plans-audit", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert f"report: {out} ({count:,} findings)" in done.stdout.decode()
    page = out.read_text(encoding="utf-8")
    assert page.count("<tr data-alert-id=") == count
    assert {"money-rule", "money-team"} <= charts_in(page)
    export = auditor("findings", "export", str(alerts), "--out", str(tmp_path / "f.csv"))
    assert export.returncode == 0, export.stderr.decode()
    with (tmp_path / "f.csv").open(encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == count
