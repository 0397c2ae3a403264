"""The report's inputs are read leniently: every optional part may be missing or malformed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from auditor.findings.read import to_finding
from auditor.report.data import (
    load_inputs,
    load_plan_audit,
    load_summary,
    load_whatif,
    parse_summary,
)
from auditor.rules.loader import default_rules_dir


def test_a_summary_to_the_contract_is_read_whole() -> None:
    s = parse_summary({
        "currency": "USD",
        "events": {"processed": 10, "late": 1, "duplicate": 0, "invalid": 2},
        "commission_paid": {"total": 1000.0, "rows": [
            {"plan_id": "p", "team": "t", "quarter": "2026-Q1", "amount": 1000.0}]},
        "money": {"by_class": {"unrecovered": 10.0, "exposure": 5.5},
                  "rows": [{"class": "unrecovered", "plan_id": "p", "team": "t",
                            "quarter": "2026-Q1", "amount": 10.0}],
                  "by_rule": [{"rule": "r", "class": "unrecovered", "amount": 12.0,
                               "findings": 2}]},
        "retention": {"months": 12, "targets": {"plan_id": 0.8, "team": 0.75},
                      "rows": [{"group_by": "plan_id", "group": "p", "period": "2026-Q1",
                                "status": "live", "paid": 1000.0, "retained": 800.0}]},
    })
    assert s.events == {"processed": 10, "late": 1, "duplicate": 0, "invalid": 2}
    assert s.paid_total == 1000.0 and s.paid_rows is not None and len(s.paid_rows) == 1
    assert s.by_class == {"unrecovered": 10.0, "exposure": 5.5}
    assert s.by_rule is not None and s.by_rule[0].findings == 2
    assert s.retention_targets == {"plan_id": 0.8, "team": 0.75}
    assert s.retention_rows is not None
    assert s.retention_rows[0].share == 0.8  # computed when the row has no share
    assert s.notes == []


def test_an_empty_or_odd_summary_has_no_parts_and_says_what_it_skipped() -> None:
    s = parse_summary({})
    assert (s.events, s.paid_total, s.by_class, s.money_rows, s.retention_rows) == (
        None, None, None, None, None)
    odd = parse_summary({"money": {"by_class": {"unrecovered": "ten", "overpaid": True,
                                                "exposure": 3},
                                   "rows": [{"class": "x", "amount": 1}, "row",
                                            {"quarter": "2026-Q1", "amount": 2}]}})
    assert odd.by_class == {"exposure": 3.0}
    assert odd.money_rows is not None and [r.money_class for r in odd.money_rows] == [
        "unclassified"]
    assert odd.notes == ["2 malformed row(s) of money.rows skipped"]


def test_files_that_are_absent_or_not_json_are_notes(tmp_path: Path) -> None:
    assert "does not exist" in (load_summary(tmp_path / "none.json").note or "")
    (tmp_path / "bad.json").write_text("[1, 2", encoding="utf-8")
    assert "is not JSON" in (load_summary(tmp_path / "bad.json").note or "")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    assert "not a JSON object" in (load_summary(tmp_path / "list.json").note or "")
    assert "no \"plans\" list" in (load_whatif(tmp_path / "list.json").note or "")


def test_a_whatif_keeps_its_changes_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "whatif.json"
    path.write_text(json.dumps({"currency": "USD", "plans": [
        {"plan_id": "hunter-2026", "changes": {"clawback_days": [0, 180], "odd": 3},
         "totals": {"paid_actual": 10}, "rows": [
             {"team": "t", "quarter": "2026-Q1", "paid_actual": 10, "deals": 2}, "x"]},
        {"changes": {}}]}), encoding="utf-8")
    whatif = load_whatif(path).value
    assert whatif is not None and len(whatif.plans) == 1
    plan = whatif.plans[0]
    assert plan.changes == [("clawback_days", 0, 180), ("odd", None, 3)]
    assert len(plan.rows) == 1
    assert plan.rows[0].figures["paid_actual"] == 10.0
    assert plan.rows[0].figures["paid_candidate"] is None
    assert whatif.notes == ["plan #2 of the what-if has no plan_id; skipped"]


def test_the_plan_audit_is_that_of_auditor_plans_audit(tmp_path: Path) -> None:
    audit = load_plan_audit(default_rules_dir()).value
    assert audit is not None
    assert {"hunter-2026", "steady-2026"} <= set(audit.plan_ids)
    assert any(f.plan_id == "hunter-2026" and f.rule == "plan-no-clawback"
               for f in audit.findings)
    broken = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), broken)
    (broken / "plans.yaml").write_text("plans: [{id: x}]\n", encoding="utf-8")
    assert "cannot be loaded" in (load_plan_audit(broken).note or "")


def test_money_per_class_of_a_finding() -> None:
    split = to_finding({"at_risk": 30.0, "money_class": "unrecovered",
                        "evidence": {"money": {"unrecovered": 20.0, "recoverable": 10.0}}})
    assert split.money() == {"unrecovered": 20.0, "recoverable": 10.0}
    assert to_finding({"at_risk": 5.0, "money_class": "exposure"}).money() == {"exposure": 5.0}
    assert to_finding({"at_risk": 5.0}).money() == {"unclassified": 5.0}  # an older alert
    assert to_finding({"at_risk": 0.0, "value": 0.2}).money() == {}
    by_team = to_finding({"kind": "aggregate", "group_by": "team", "group": "emea"})
    assert by_team.team_or_group == "emea"


def test_inputs_name_only_the_files_that_were_read(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("", encoding="utf-8")
    inputs = load_inputs(alerts, summary=tmp_path / "absent.json")
    assert inputs.sources == [("alerts", str(alerts))]
    assert inputs.summary.value is None and inputs.whatif.note == "no what-if given (--whatif)"
    assert inputs.plans.note == "plan audit not requested (--plans-audit)"
