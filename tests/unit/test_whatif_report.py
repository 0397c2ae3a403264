"""The what-if report: the JSON's keys and rounding, the headline sentence, the table."""

from __future__ import annotations

from typing import Any

from auditor.whatif.history import History
from auditor.whatif.report import compact, headline, render, to_json
from auditor.whatif.runner import Figures, PlanResult, WhatIf

ROW_KEYS = ["team", "quarter", "paid_actual", "paid_candidate", "paid_change",
            "recovered_actual", "recovered_candidate", "recovered_change", "unrecovered_actual",
            "unrecovered_candidate", "unrecovered_change", "upfront_churned_actual",
            "upfront_churned_candidate", "deals", "churned_deals"]


def figures(**values: Any) -> Figures:
    return Figures(**values)


def hunter() -> PlanResult:
    row = figures(deals=3, churned_deals=2, paid_actual=2_000_000.004,
                  paid_candidate=2_000_000.004, recovered_actual=0.0,
                  recovered_candidate=1_100_000.006, upfront_churned_actual=1_900_000.0,
                  upfront_churned_candidate=1_900_000.0)
    result = PlanResult("hunter-2026", {"clawback_days": [0, 180]}, 180,
                        {("apac-growth", "2026-Q1"): row})
    result.totals.add(row)
    return result


def test_the_json_has_stable_keys_and_money_in_cents():
    report = to_json(WhatIf("USD", History(), [hunter()], {"other": 2}))
    assert list(report) == ["currency", "input", "plans"]
    assert report["input"] == {"lines": 0, "deals": 0, "churns": 0, "invalid": 0,
                               "duplicates": 0, "other_plans": {"other": 2}}
    [plan] = report["plans"]
    assert list(plan) == ["plan_id", "changes", "churn_window_days", "headline", "totals",
                          "rows"]
    assert plan["changes"] == {"clawback_days": [0, 180]}
    [row] = plan["rows"]
    assert list(row) == ROW_KEYS
    assert list(plan["totals"]) == ROW_KEYS[2:]
    assert row["paid_actual"] == 2_000_000.0
    assert row["recovered_candidate"] == 1_100_000.01
    assert row["recovered_change"] == 1_100_000.01
    assert row["unrecovered_actual"] == 1_900_000.0            # 1,900,000 - 0
    assert row["unrecovered_candidate"] == 799_999.99          # 1,900,000 - 1,100,000.006
    assert row["unrecovered_change"] == -1_100_000.01
    assert row["paid_change"] == 0.0
    assert (row["deals"], row["churned_deals"]) == (3, 2)


def test_the_headline_says_what_the_new_clawback_would_have_recovered():
    assert headline(hunter(), "USD") == (
        "With a 180-day clawback on hunter-2026, 1.1M USD of the 1.9M paid upfront on accounts "
        "that churned within 180 days would have been recovered (none as it was).")


def test_the_headline_says_what_a_rate_change_would_have_paid():
    row = figures(deals=1, paid_actual=0.0, paid_candidate=2500.0)
    plan = PlanResult("hunter-2026", {"rates.renewal": [0.0, 0.05]}, 0,
                      {("t", "2026-Q1"): row}, row)
    assert headline(plan, "USD") == ("With rates.renewal 0.0 -> 0.05 on hunter-2026, 2.5K USD "
                                     "would have been paid instead of 0.00.")


def test_a_plan_without_changes_has_no_headline():
    assert headline(PlanResult("steady-2026", {}, 180), "USD") is None


def test_compact_amounts():
    assert [compact(x) for x in (1_149_999.0, 950_340.0, 512.4, -2500.0)] == [
        "1.1M", "950.3K", "512.40", "-2.5K"]


def test_the_table_has_a_row_per_team_and_quarter_and_a_total():
    text = render(WhatIf("USD", History(), [hunter()], {}))
    lines = text.splitlines()
    assert lines[2] == "== hunter-2026: clawback_days 0 -> 180 (churned: first churn within " \
                       "180 days) =="
    assert lines[3].startswith("With a 180-day clawback")
    assert lines[5].split() == ["apac-growth", "2026-Q1", "3", "2", "2,000,000.00",
                                "2,000,000.00", "0.00", "0.00", "1,100,000.01", "1,900,000.00",
                                "799,999.99"]
    assert lines[6].split()[0] == "total"


def test_a_change_that_pays_nothing_differently_says_so():
    plan = PlanResult("p", {"name": ["Old", "New"]}, 0)
    assert headline(plan, "USD") == "With name Old -> New on p, the figures would have been " \
                                    "the same."
