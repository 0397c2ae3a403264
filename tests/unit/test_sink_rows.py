"""The findings sink's row mapping: an alert as one `findings` row, or the reason it is not."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from auditor.engine.alerts import Alert
from auditor.plans.audit import PlanFinding, as_alert
from auditor.sink.rows import COLUMNS, Refused, parse, quarter_of, raw_text, to_row


def engine_alert(**fields: Any) -> dict[str, Any]:
    """A per-deal alert as the alert contract writes it, every field in its place."""
    alert = Alert(
        alert_id="a1", rule="early-churn-unrecovered", kind="churn-after-deal",
        severity="critical", event_time="2026-05-02T10:00:00Z",
        summary="Account acct-1 churned.", at_risk=1202.09, money_class="unrecovered",
        currency="USD", deal_id="deal-1", account_id="acct-1", rep_id="rep-1",
        team="na-midmarket", plan_id="hunter-2026",
        evidence={"days": 13.5, "money": {"unrecovered": 1202.09}},
        labels={"area": "retention"}, runbook="Check the clawback.",
    ).to_dict()
    alert.update(fields)
    return alert


def raw(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert).encode()


def test_every_contract_field_is_a_column_of_the_same_name() -> None:
    alert = engine_alert()
    row = parse(raw(alert), "audit.alerts/0/7")
    for name, value in alert.items():
        if name == "at_risk":
            assert row.at_risk == Decimal("1202.09")
        else:
            assert getattr(row, name) == value, name
    assert set(alert) <= set(COLUMNS)
    assert row.source == "audit.alerts/0/7"
    assert row.raw == raw(alert)
    assert len(row.values()) == len(COLUMNS)


@pytest.mark.parametrize(("event_time", "quarter"), [
    ("2026-01-01T00:00:00Z", "2026-Q1"),
    ("2026-03-31T23:59:59.999Z", "2026-Q1"),
    ("2026-04-01T00:00:00Z", "2026-Q2"),
    ("2026-12-31T12:00:00z", "2026-Q4"),
    # UTC decides: 01:30 on 1 April at +05:30 is still 31 March in UTC.
    ("2026-04-01T01:30:00+05:30", "2026-Q1"),
    ("2026-09-30T22:00:00-03:00", "2026-Q4"),
])
def test_a_per_deal_finding_gets_the_utc_quarter_of_its_event_time(
        event_time: str, quarter: str) -> None:
    assert to_row(engine_alert(event_time=event_time), "f:1").quarter == quarter
    assert quarter_of(event_time) == quarter


def test_an_aggregate_keeps_its_own_period() -> None:
    # An aggregate's event_time is the end of its period, in the next quarter.
    row = to_row(engine_alert(kind="aggregate", rule="renewal-rate-gap", period="2026-Q1",
                              event_time="2026-04-01T00:00:00Z", deal_id=None,
                              account_id=None, group_by="plan_id", group="hunter-2026",
                              value=0.21, threshold=0.3, at_risk=0.0, money_class=None,
                              evidence={"renewals": 3}), "f:2")
    assert row.quarter == "2026-Q1"
    assert (row.value, row.threshold, row.group) == (0.21, 0.3, "hunter-2026")


def test_the_end_of_9999_q4_an_aggregate_can_carry_is_accepted() -> None:
    row = to_row(engine_alert(kind="aggregate", period="9999-Q4",
                              event_time="10000-01-01T00:00:00Z"), "f:3")
    assert (row.event_time, row.quarter) == ("10000-01-01T00:00:00Z", "9999-Q4")


def test_a_plan_finding_has_a_null_event_time_and_no_quarter() -> None:
    finding = PlanFinding("plan-no-clawback", "hunter-2026", "warning",
                          "Plan hunter-2026 has no clawback.")
    alert = as_alert(finding, "USD").to_dict()
    row = parse(raw(alert), "plans.jsonl:1")
    assert row.event_time is None and row.quarter is None
    assert (row.kind, row.plan_id, row.group_by, row.group) == (
        "plan", "hunter-2026", "plan_id", "hunter-2026")
    assert row.at_risk == 0 and row.money_class is None
    assert (row.unrecovered, row.recoverable, row.exposure, row.overpaid) == (0, 0, 0, 0)


def test_money_columns_come_from_evidence_money_and_are_zero_when_absent() -> None:
    row = to_row(engine_alert(
        rule="rep-early-churn-rate", kind="aggregate", period="2026-Q2", at_risk=10128.35,
        evidence={"money": {"unrecovered": 814.36, "recoverable": 9313.99}}), "f:4")
    assert (row.unrecovered, row.recoverable, row.exposure, row.overpaid) == (
        Decimal("814.36"), Decimal("9313.99"), Decimal(0), Decimal(0))
    assert row.at_risk == Decimal("10128.35")
    no_money = to_row(engine_alert(evidence={"days": 3}), "f:5")
    assert (no_money.unrecovered, no_money.exposure) == (0, 0)
    # Not a number in evidence.money: 0 in the column (the evidence keeps what was sent).
    odd = to_row(engine_alert(evidence={"money": {"overpaid": "12"}}), "f:6")
    assert odd.overpaid == 0 and odd.evidence == {"money": {"overpaid": "12"}}


def test_amounts_are_rounded_to_the_cent() -> None:
    row = to_row(engine_alert(at_risk=0.1 + 0.2, evidence={"money": {"exposure": 2274.205}}),
                 "f:7")
    assert row.at_risk == Decimal("0.30")
    assert row.exposure == Decimal("2274.20")  # half to even, as the float's decimal says
    assert to_row(engine_alert(at_risk=5), "f:8").at_risk == Decimal("5.00")


def test_an_alert_from_before_money_classes_is_stored() -> None:
    alert = engine_alert()
    del alert["money_class"], alert["runbook"], alert["labels"]
    row = to_row(alert, "old.jsonl:1")
    assert (row.money_class, row.runbook, row.labels) == (None, "", {})


@pytest.mark.parametrize(("record", "reason", "detail"), [
    (b"", "empty", "no value"),
    (None, "empty", "no value"),
    (b"{not json", "not_json", ""),
    (b"\xff\xfe{}", "not_json", "not UTF-8"),
    (b'{"at_risk": NaN}', "not_json", "NaN"),
    (b"[1, 2]", "not_object", "list"),
    (b'{"event_type": "deal_closed"}', "not_alert", "alert_id: missing"),
])
def test_records_that_are_not_alerts_are_refused(record: bytes | None, reason: str,
                                                 detail: str) -> None:
    with pytest.raises(Refused) as refused:
        parse(record, "t/0/1")
    assert refused.value.reason == reason
    assert detail in refused.value.detail


@pytest.mark.parametrize(("fields", "detail"), [
    ({"alert_id": ""}, "alert_id"),
    ({"rule": None}, "rule: expected text, got null"),
    ({"at_risk": "12.5"}, "at_risk: expected a number"),
    ({"at_risk": True}, "at_risk"),
    ({"event_time": "2026-05-02"}, "event_time: not an RFC 3339"),
    ({"event_time": 1767225600}, "event_time: expected text or null"),
    ({"team": 7}, "team"),
    ({"value": "0.3"}, "value"),
    ({"evidence": []}, "evidence: expected an object"),
])
def test_a_field_of_the_wrong_type_is_named(fields: dict[str, Any], detail: str) -> None:
    with pytest.raises(Refused) as refused:
        to_row(engine_alert(**fields), "f:1")
    assert refused.value.reason == "not_alert"
    assert detail in refused.value.detail


def test_what_postgresql_cannot_store_is_refused_before_it_is_sent() -> None:
    with pytest.raises(Refused) as nul:
        to_row(engine_alert(evidence={"note": ["ok", "a\x00b"]}), "f:1")
    assert (nul.value.reason, nul.value.detail.split(":")[0]) == ("unstorable",
                                                                  "evidence.note[1]")
    with pytest.raises(Refused) as huge:
        to_row(engine_alert(at_risk=1e17), "f:2")
    assert huge.value.reason == "unstorable" and "numeric(18,2)" in huge.value.detail


def test_raw_text_keeps_what_it_can() -> None:
    assert raw_text(b"ok \xff\x00") == "ok \ufffd\ufffd"
