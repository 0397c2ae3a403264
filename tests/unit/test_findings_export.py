"""`auditor findings export`: the CSV columns finance filters on, from alerts of any vintage."""

from __future__ import annotations

import csv
import io
import json

from auditor.findings.export import COLUMNS, write_csv
from auditor.findings.read import parse_alerts, quarter_of, to_finding


def export(*alerts: dict[str, object]) -> list[dict[str, str]]:
    out = io.StringIO()
    write_csv((to_finding(a) for a in alerts), out)
    return list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def engine_alert(**fields: object) -> dict[str, object]:
    """An alert as the alert contract (rev 4) writes it, every field in its place."""
    base: dict[str, object] = {
        "alert_id": "a1", "rule": "early-churn-unrecovered", "kind": "churn-after-deal",
        "severity": "critical", "event_time": "2026-05-02T10:00:00Z",
        "summary": "Account acct-1 churned.", "at_risk": 1202.09, "money_class": None,
        "currency": "USD", "deal_id": "deal-1", "account_id": "acct-1", "rep_id": "rep-1",
        "team": "na-midmarket", "plan_id": "hunter-2026", "group_by": None, "group": None,
        "period": None, "value": None, "threshold": None,
        "evidence": {"days": 13.5, "money": {"unrecovered": 1202.09}},
        "labels": {"area": "retention"}, "runbook": "",
    }
    base.update(fields)
    return json.loads(json.dumps(base))  # type: ignore[no-any-return]


def test_the_columns_are_fixed_with_evidence_last() -> None:
    out = io.StringIO()
    write_csv([], out)
    assert out.getvalue() == ",".join(COLUMNS) + "\r\n"
    assert COLUMNS[:6] == ("alert_id", "rule", "kind", "severity", "event_time", "period")
    assert COLUMNS[-1] == "evidence"
    assert COLUMNS.index("money_class") == COLUMNS.index("at_risk") - 1


def test_a_per_deal_finding_gets_the_quarter_of_its_event_time() -> None:
    [row] = export(engine_alert() | {"money_class": "unrecovered"})
    assert row["period"] == "2026-Q2"
    assert row["team"] == "na-midmarket" and row["deal_id"] == "deal-1"
    assert row["money_class"] == "unrecovered"
    assert row["at_risk"] == "1202.09"
    assert row["group_by"] == row["group"] == row["value"] == row["threshold"] == ""
    assert json.loads(row["evidence"]) == {"days": 13.5, "money": {"unrecovered": 1202.09}}


def test_an_aggregate_keeps_its_own_period_and_ratio() -> None:
    [row] = export(engine_alert(
        kind="aggregate", rule="new-logo-payout-share", severity="warning",
        event_time="2026-04-01T00:00:00Z", at_risk=0.0, deal_id=None, account_id=None,
        rep_id=None, team=None, plan_id=None, group_by="team", group="na-midmarket",
        period="2026-Q1", value=0.912345, threshold=0.85, evidence={"deals": 9}))
    # The event time is the period's exclusive end, in the next quarter: the period stands.
    assert row["period"] == "2026-Q1"
    assert (row["group_by"], row["group"]) == ("team", "na-midmarket")
    assert (row["value"], row["threshold"], row["at_risk"]) == ("0.912345", "0.85", "0.00")
    assert row["team"] == "" and row["money_class"] == ""


def test_an_older_alert_without_money_class_and_a_plan_finding_export() -> None:
    old = engine_alert()
    old.pop("money_class", None)
    plan = engine_alert(kind="plan", rule="plan-no-clawback", event_time=None, at_risk=0.0,
                        deal_id=None, account_id=None, rep_id=None, team=None,
                        group_by="plan_id", group="hunter-2026", evidence={})
    rows = export(old, plan)
    assert rows[0]["money_class"] == ""
    assert rows[1]["event_time"] == rows[1]["period"] == ""
    assert rows[1]["evidence"] == "{}"


def test_text_a_spreadsheet_would_run_as_a_formula_is_defused() -> None:
    [row] = export(engine_alert(rep_id="=cmd|'/c calc'!A0", team="+team", account_id="@acct",
                                deal_id="-1+2", summary="=SUM(A1)", plan_id="plan, \"quoted\""))
    assert row["rep_id"] == "'=cmd|'/c calc'!A0"
    assert (row["team"], row["account_id"], row["deal_id"]) == ("'+team", "'@acct", "'-1+2")
    assert row["summary"] == "'=SUM(A1)"
    assert row["plan_id"] == "plan, \"quoted\""  # commas and quotes survive the round trip


def test_lines_that_are_not_alerts_are_counted_not_fatal() -> None:
    read = parse_alerts(['{"rule": "r", "kind": "deal"}\n', "\n", "[1]\n", "{oops\n",
                         '{"rule": "s", "at_risk": "12", "value": NaN}\n'])
    assert [f.rule for f in read.findings] == ["r", "s"]
    assert [n for n, _ in read.skipped] == [3, 4]
    assert read.findings[1].at_risk == 0.0 and read.findings[1].value is None


def test_quarters_are_utc() -> None:
    assert quarter_of("2026-03-31T23:30:00-02:00") == "2026-Q2"
    assert quarter_of("2026-04-01T00:30:00+02:00") == "2026-Q1"
    assert quarter_of("2026-12-31T23:59:59Z") == "2026-Q4"
    assert quarter_of("yesterday") is None and quarter_of(None) is None
