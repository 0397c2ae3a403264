"""Plan what-if on small hand-made plans and events; every expected figure is worked out by
hand in the test, from the rule in DESIGN "Plan what-if"."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from unit_helpers import churn_dict, deal_dict, ts

from auditor.events.currency import CurrencyTable
from auditor.events.decode import EventDecoder
from auditor.rules.plans import PaidAtClose, PlanRegistry, PlanSpec
from auditor.whatif.history import read_history
from auditor.whatif.runner import Figures, WhatIf, run_whatif

SECOND = 1 / 86400
CURRENCY = CurrencyTable("USD", {"EUR": 1.08, "GBP": 1.25})


def plan(**changes: Any) -> PlanSpec:
    """Plan `p`: 10% on new logos and expansions, nothing on renewals, ACV basis, all paid at
    close, no clawback."""
    base: dict[str, Any] = {
        "id": "p", "rates": {"new_logo": 0.1, "expansion": 0.1, "renewal": 0.0},
        "multi_year_basis": "acv",
        "paid_at_close": PaidAtClose(multi_year=1.0, single_year=1.0), "clawback_days": 0,
    }
    return PlanSpec(**{**base, **changes})


def registry(spec: PlanSpec) -> PlanRegistry:
    return PlanRegistry({spec.id: spec})


def deal(account: str, **fields: Any) -> dict[str, Any]:
    """A 12-month new-logo deal of plan p on a 10,000 ACV, paid 1,000, all upfront."""
    given: dict[str, Any] = {"account_id": account, "plan_id": "p", "acv": 10_000.0,
                             "tcv": 10_000.0, **fields}
    if "commission" not in fields:
        given = {"commission.amount": 1000.0, "commission.rate": 0.1, **given}
    return deal_dict(**given)


def churn(account: str, days: float, **fields: Any) -> dict[str, Any]:
    return churn_dict(account_id=account, days=days, **fields)


def whatif(tmp_path: Path, lines: Sequence[dict[str, Any] | str], candidate: PlanSpec,
           before: PlanSpec | None = None) -> WhatIf:
    path = tmp_path / "events.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))
    history = read_history([str(path)], EventDecoder(CURRENCY))
    return run_whatif(history, registry(before or plan()), registry(candidate), "USD")


def totals(result: WhatIf) -> Figures:
    [only] = result.plans
    return only.totals


def test_a_clawback_covers_a_churn_on_the_close_and_on_its_last_day_and_nothing_after(tmp_path):
    events = [
        deal("on-close"), churn("on-close", 0),                 # 0 days: covered
        deal("last-day"), churn("last-day", 90),                # 90 days: covered
        deal("a-second-late"), churn("a-second-late", 90 + SECOND),  # 90 days 1 s: missed
        deal("before-close"), churn("before-close", -SECOND),   # before the close: not after it
        deal("stays"),
    ]
    t = totals(whatif(tmp_path, events, plan(clawback_days=90)))
    assert t.deals == 5
    assert t.churned_deals == 2  # window: max(90 candidate, 0 as it was)
    assert t.paid_actual == pytest.approx(5 * 1000)
    assert t.paid_candidate == pytest.approx(5 * 0.1 * 10_000)
    assert t.recovered_actual == 0  # the deals had no clawback
    assert t.recovered_candidate == pytest.approx(1000 + 1000)
    assert t.unrecovered_actual == pytest.approx(2000 - 0)
    assert t.unrecovered_candidate == pytest.approx(2000 - 2000)


def test_a_partial_churn_recovers_its_share_of_the_acv_and_only_the_first_churn_counts(tmp_path):
    events = [
        deal("partial", acv=20_000.0, tcv=20_000.0, **{"commission.amount": 2000.0}),
        churn("partial", 30, churn_type="partial", arr_lost=5000.0),
        churn("partial", 60, churn_type="full", arr_lost=15_000.0),  # later: not the first
        deal("over", acv=4000.0, tcv=4000.0, **{"commission.amount": 400.0}),
        churn("over", 30, churn_type="partial", arr_lost=6000.0),   # more than the ACV: f = 1
    ]
    t = totals(whatif(tmp_path, events, plan(clawback_days=180)))
    assert t.churned_deals == 2
    # candidate upfront: 0.1 x 20,000 x 1.0 = 2,000, f = 5,000 / 20,000; 0.1 x 4,000, f = 1
    assert t.recovered_candidate == pytest.approx(2000 * 0.25 + 400 * 1.0)
    assert t.unrecovered_candidate == pytest.approx((2000 + 400) - (500 + 400))


def test_a_partial_churn_of_a_deal_with_no_acv_counts_whole(tmp_path):
    events = [deal("zero", acv=0.0, tcv=0.0, **{"commission.amount": 300.0,
                                                "commission.clawback_days": 30}),
              churn("zero", 5, churn_type="partial", arr_lost=100.0)]
    t = totals(whatif(tmp_path, events, plan(clawback_days=30), plan(clawback_days=30)))
    # as it was: its own 30-day clawback, share 1, f = 1: the 300 paid upfront
    assert t.recovered_actual == pytest.approx(300)
    assert t.recovered_candidate == 0  # the candidate pays 0.1 x 0 = 0


def test_a_clawback_share_below_one_recovers_that_share(tmp_path):
    events = [deal("a", **{"commission.clawback_days": 30}), churn("a", 10)]
    t = totals(whatif(tmp_path, events, plan(clawback_days=30, clawback_share=0.5),
                      plan(clawback_days=30)))
    assert t.recovered_actual == pytest.approx(1000)  # own 30 days, share 1
    assert t.recovered_candidate == pytest.approx(0.5 * 1000 * 1.0)
    assert (t.unrecovered_actual, t.unrecovered_candidate) == pytest.approx((0, 500))


def test_a_36_month_deal_on_tcv_against_acv(tmp_path):
    tcv_plan = plan(rates={"new_logo": 0.12, "expansion": 0.06, "renewal": 0.0},
                    multi_year_basis="tcv")
    acv_plan = plan(rates={"new_logo": 0.12, "expansion": 0.06, "renewal": 0.0},
                    multi_year_basis="acv",
                    paid_at_close=PaidAtClose(multi_year=0.5, single_year=1.0),
                    clawback_days=180)
    events = [deal("m", term_months=36, acv=10_000.0, tcv=30_000.0,
                   commission={"amount": 3600.0, "paid_upfront": 3600.0, "basis": "tcv",
                               "rate": 0.12}),
              churn("m", 100)]
    t = totals(whatif(tmp_path, events, acv_plan, tcv_plan))
    assert t.paid_actual == pytest.approx(0.12 * 30_000)
    assert t.paid_candidate == pytest.approx(0.12 * 10_000)
    assert t.recovered_actual == 0
    assert t.recovered_candidate == pytest.approx(0.12 * 10_000 * 0.5)
    assert t.unrecovered_actual == pytest.approx(3600)
    assert t.unrecovered_candidate == pytest.approx(600 - 600)
    # the same deal under the TCV plan itself: paid as it was
    same = totals(whatif(tmp_path, events, tcv_plan, tcv_plan))
    assert same.paid_candidate == pytest.approx(same.paid_actual)


def test_a_renewal_rate_change(tmp_path):
    events = [deal("r", deal_type="renewal", acv=50_000.0, tcv=50_000.0,
                   commission={"amount": 0.0, "paid_upfront": 0.0, "rate": 0.0})]
    candidate = plan(rates={"new_logo": 0.1, "expansion": 0.1, "renewal": 0.05},
                     paid_at_close=PaidAtClose(multi_year=0.5, single_year=0.8))
    result = whatif(tmp_path, events, candidate)
    t = totals(result)
    assert (t.paid_actual, t.paid_candidate) == pytest.approx((0, 0.05 * 50_000))
    assert result.plans[0].changes == {"rates.renewal": [0.0, 0.05],
                                       "paid_at_close.single_year": [1.0, 0.8],
                                       "paid_at_close.multi_year": [1.0, 0.5]}


def test_duplicates_are_ignored_invalid_lines_counted_and_blank_lines_skipped(tmp_path):
    first = deal("d", deal_id="D1")
    again = dict(first)                                                 # the same event_id
    resent = deal("d", deal_id="D1", **{"commission.amount": 5000.0})  # known deal_id
    other_account = deal("e", deal_id="D1")                             # a deal of its own
    a_churn = churn("d", 10)
    events = [first, again, resent, other_account, a_churn, dict(a_churn),
              "{not json", "", "   "]
    result = whatif(tmp_path, events, plan(clawback_days=30))
    t = totals(result)
    assert (result.history.duplicates, result.history.invalid) == (3, 1)
    assert result.history.lines == 7
    assert t.deals == 2
    assert t.paid_actual == pytest.approx(1000 + 1000)  # the first D1 stands
    assert t.recovered_candidate == pytest.approx(1000)  # d's deal, once


def test_amounts_in_another_currency_are_converted(tmp_path):
    events = [deal("x", currency="EUR", acv=10_000.0, tcv=10_000.0,
                   **{"commission.amount": 1000.0}),
              churn("x", 20, churn_type="partial", arr_lost=2000.0, currency="GBP")]
    t = totals(whatif(tmp_path, events, plan(clawback_days=30)))
    assert t.paid_actual == pytest.approx(1000 * 1.08)
    assert t.paid_candidate == pytest.approx(0.1 * 10_000 * 1.08)
    # f = 2,000 GBP / 10,000 EUR = 2,500 USD / 10,800 USD
    assert t.recovered_candidate == pytest.approx(1080 * 2500 / 10_800)


def test_rows_are_per_team_and_utc_quarter_and_other_plans_are_left_apart(tmp_path):
    events = [
        deal("a", team="t1", closed_at="2026-03-31T23:59:59Z"),
        deal("b", team="t1", closed_at="2026-04-01T01:00:00+02:00"),  # 2026-03-31 in UTC
        deal("c", team="t1", closed_at="2026-04-01T00:00:00Z"),
        deal("d", team="t2", closed_at=ts(0)),
        deal("e", plan_id="not-in-candidate"),
    ]
    result = whatif(tmp_path, events, plan())
    [p] = result.plans
    assert {key: f.deals for key, f in p.rows.items()} == {
        ("t1", "2026-Q1"): 2, ("t1", "2026-Q2"): 1, ("t2", "2026-Q1"): 1}
    assert result.other_plans == {"not-in-candidate": 1}
