"""Money of the per-deal rules of the default pack, each figure worked out by hand from the
event's fields (DESIGN.md, "Default rule pack" and "Money"): the class, the amount, evidence.money
and what the sentence says about it."""

import pytest
from unit_helpers import churn_dict, deal_dict, run

# Deal, churn and plan-contradiction rules; aggregates are in test_money_rep_early_churn.py.
TCV, EARLY, DISCOUNT, RESELL, PLAN = ("tcv-paid-upfront", "early-churn-unrecovered",
                                      "discount-then-churn", "churn-and-resell",
                                      "plan-contradiction")


def _only(result, rule):
    [alert] = result.of(rule)
    return alert


def _assert_money(alert, money_class, amount):
    """One class, one amount: in money_class, at_risk and evidence.money alike."""
    assert alert.money_class == money_class
    assert alert.at_risk == amount
    assert alert.evidence["money"] == {money_class: amount}


# --- tcv-paid-upfront: exposure = paid_upfront - amount x 12 / term_months ---------------------

@pytest.mark.parametrize(("term", "amount", "paid", "expected", "text"), [
    # 2850 - 3000 x 12 / 36 = 2850 - 1000
    (36, 3000.0, 2850.0, 1850.0, "1,850.00 USD is for years after the first"),
    # 1000 - 1000 x 12 / 18 = 1000 - 666.666... = 333.333... -> 333.33
    (18, 1000.0, 1000.0, 333.33, "333.33 USD is for years after the first"),
    # 5000 - 5000 x 12 / 60 = 5000 - 1000
    (60, 5000.0, 5000.0, 4000.0, "4,000.00 USD is for years after the first"),
    # 2700 - 3000 x 12 / 13 = 2700 - 2769.23 < 0: nothing paid beyond the first year
    (13, 3000.0, 2700.0, 0.0, "0.00 USD is for years after the first"),
])
def test_tcv_paid_upfront_is_exposure(rules, term, amount, paid, expected, text):
    deal = deal_dict(term_months=term, acv=12000.0, tcv=12000.0 * term / 12,
                     commission={"basis": "tcv", "amount": amount, "paid_upfront": paid})
    alert = _only(run(rules, [deal]), TCV)
    _assert_money(alert, "exposure", expected)
    assert text in alert.summary
    assert "paid ahead of revenue not yet earned" in alert.summary
    assert "counterfactual" not in alert.evidence


# --- early-churn-unrecovered: unrecovered = paid_upfront x f -----------------------------------

@pytest.mark.parametrize(("churn", "expected"), [
    ({"churn_type": "full", "arr_lost": 12000.0}, 900.0),  # f = 1
    ({"churn_type": "full", "arr_lost": 10.0}, 900.0),  # a full churn is f = 1 whatever is lost
    # f = 3000 / 12000 = 0.25; 900 x 0.25
    ({"churn_type": "partial", "arr_lost": 3000.0}, 225.0),
    # f = 1000 / 12000 = 0.08333...; 900 x 0.08333... = 75
    ({"churn_type": "partial", "arr_lost": 1000.0}, 75.0),
    # f = min(1, 15000 / 12000) = 1
    ({"churn_type": "partial", "arr_lost": 15000.0}, 900.0),
])
def test_early_churn_is_unrecovered_paid_upfront_times_the_churned_share(rules, churn, expected):
    deal = deal_dict(acv=12000.0, commission={"amount": 1000.0, "paid_upfront": 900.0})
    alert = _only(run(rules, [deal, churn_dict(days=10.0, **churn)]), EARLY)
    _assert_money(alert, "unrecovered", expected)
    assert f"{expected:,.2f} USD of commission paid upfront is unrecovered" in alert.summary


def test_a_partial_churn_of_a_deal_with_acv_0_counts_as_full(rules):
    deal = deal_dict(acv=0.0, tcv=0.0, commission={"amount": 500.0, "paid_upfront": 400.0})
    churn = churn_dict(days=10.0, churn_type="partial", arr_lost=250.0)
    alert = _only(run(rules, [deal, churn]), EARLY)
    _assert_money(alert, "unrecovered", 400.0)  # f = 1: all of the 400 paid upfront
    assert alert.evidence["churn_share"] == 1.0


@pytest.mark.parametrize(("days", "window"), [
    (0.0, 30), (10.0, 30), (30.0, 30), (30.5, 60), (60.0, 60), (61.0, 90), (90.0, 90),
    (90.5, 180), (180.0, 180),
])
def test_early_churn_names_the_shortest_clawback_that_would_have_recovered_it(
        rules, days, window):
    deal = deal_dict(commission={"amount": 1000.0, "paid_upfront": 800.0})
    alert = _only(run(rules, [deal, churn_dict(days=days)]), EARLY)
    assert alert.summary.endswith(
        f"800.00 USD of commission paid upfront is unrecovered; a {window}-day clawback would "
        "have recovered it.")
    assert alert.evidence["counterfactual"] == {"clawback_days": window, "recovered": 800.0}


def test_early_churn_just_past_the_deals_own_clawback_names_a_longer_one(rules):
    # Clawback 60 days, churn on day 61: not covered, so unrecovered; 61 needs a 90-day window.
    deal = deal_dict(commission={"amount": 1000.0, "paid_upfront": 700.0, "clawback_days": 60})
    alert = _only(run(rules, [deal, churn_dict(days=61.0)]), EARLY)
    _assert_money(alert, "unrecovered", 700.0)
    assert alert.evidence["counterfactual"] == {"clawback_days": 90, "recovered": 700.0}
    assert "a 90-day clawback would have recovered it." in alert.summary


# --- discount-then-churn: recoverable when 0 < clawback_days and days <= clawback_days --------

def _discounted(clawback_days, paid=1500.0):
    # A renewal: early-churn-unrecovered (new logos and expansions) stays out of the way.
    return deal_dict(deal_type="renewal", discount_pct=0.3,
                     commission={"amount": 2000.0, "paid_upfront": paid,
                                 "clawback_days": clawback_days})


@pytest.mark.parametrize(("clawback_days", "days"), [
    (180, 180.0),  # the edge: the churn on the clawback's last day is still recoverable
    (180, 1.0),
    (30, 30.0),
    (1, 0.0),  # a churn on the day of the close, under a 1-day clawback
    (365, 365.0),
])
def test_discount_then_churn_inside_the_clawback_is_recoverable(rules, clawback_days, days):
    alert = _only(run(rules, [_discounted(clawback_days), churn_dict(days=days)]), DISCOUNT)
    _assert_money(alert, "recoverable", 1500.0)  # paid_upfront
    assert alert.summary.endswith(
        f"1,500.00 USD of commission paid upfront is recoverable under the deal's "
        f"{clawback_days}-day clawback.")
    assert "unrecovered" not in alert.summary
    assert "counterfactual" not in alert.evidence


@pytest.mark.parametrize(("clawback_days", "days", "window"), [
    (180, 180.5, 365),  # half a day past the clawback: unrecovered; 180.5 needs 365
    (180, 181.0, 365),
    (30, 30.5, 60),
    (45, 46.0, 60),
    (60, 89.0, 90),
    (0, 0.0, 30),  # no clawback: unrecovered even on the day of the close
    (0, 10.0, 30),
    (0, 91.0, 180),
    (0, 365.0, 365),
])
def test_discount_then_churn_past_the_clawback_is_unrecovered(rules, clawback_days, days,
                                                              window):
    alert = _only(run(rules, [_discounted(clawback_days), churn_dict(days=days)]), DISCOUNT)
    _assert_money(alert, "unrecovered", 1500.0)
    assert alert.summary.endswith(
        f"1,500.00 USD of commission paid upfront is unrecovered; a {window}-day clawback "
        "would have recovered it.")
    assert alert.evidence["counterfactual"] == {"clawback_days": window, "recovered": 1500.0}
    assert "recoverable" not in alert.summary


def test_nothing_paid_upfront_is_unrecovered_with_no_counterfactual(rules):
    alert = _only(run(rules, [_discounted(0, paid=0.0), churn_dict(days=10.0)]), DISCOUNT)
    _assert_money(alert, "unrecovered", 0.0)
    assert alert.summary.endswith("0.00 USD of commission paid upfront is unrecovered.")
    assert "counterfactual" not in alert.evidence


def test_the_class_does_not_depend_on_arrival_order(rules):
    for clawback_days, money_class in ((90, "recoverable"), (89, "unrecovered")):
        deal, churn = _discounted(clawback_days), churn_dict(days=90.0)
        before = _only(run(rules, [churn, deal]), DISCOUNT)
        after = _only(run(rules, [deal, churn]), DISCOUNT)
        assert before.money_class == after.money_class == money_class
        assert before.summary == after.summary
        assert before.evidence == after.evidence


# --- churn-and-resell: overpaid = commission.amount -------------------------------------------

@pytest.mark.parametrize("churn_first", [True, False])
def test_churn_and_resell_is_overpaid_commission_amount(rules, churn_first):
    churn = churn_dict(days=0.0)
    deal = deal_dict(days=100.0, commission={"amount": 1750.0, "paid_upfront": 600.0})
    events = [churn, deal] if churn_first else [deal, churn]
    alert = _only(run(rules, events), RESELL)
    _assert_money(alert, "overpaid", 1750.0)  # the amount, not the 600 paid upfront
    assert alert.summary.endswith(
        "earning 1,750.00 USD commission, 1,750.00 USD of it overpaid.")
    assert "counterfactual" not in alert.evidence


# --- plan-contradiction: overpaid = paid_upfront - what the plan pays at close ----------------

def test_a_deal_paid_above_its_plan_is_overpaid_by_the_excess_at_close(rules):
    # steady-2026 pays new logos 0.10 on ACV, 80% at close: 10000 x 0.10 x 0.8 = 800.
    deal = deal_dict(plan_id="steady-2026", acv=10000.0, tcv=10000.0,
                     commission={"amount": 1500.0, "paid_upfront": 1500.0, "rate": 0.15,
                                 "basis": "acv", "clawback_days": 180})
    alert = _only(run(rules, [deal]), PLAN)
    _assert_money(alert, "overpaid", 700.0)  # 1500 - 800
    assert alert.evidence["plan_paid_at_close"] == 800.0


def test_a_multi_year_deal_paid_above_its_plan_is_overpaid_and_exposure(rules):
    # hunter-2026 pays new logos 0.12 on TCV, all at close: 30000 x 0.12 x 1.0 = 3600.
    deal = deal_dict(plan_id="hunter-2026", term_months=36, acv=10000.0, tcv=30000.0,
                     commission={"amount": 4500.0, "paid_upfront": 4500.0, "rate": 0.15,
                                 "basis": "tcv", "clawback_days": 0})
    result = run(rules, [deal])
    _assert_money(_only(result, PLAN), "overpaid", 900.0)  # 4500 - 3600
    # 4500 - 4500 x 12 / 36 = 3000, another class of the same deal's money
    _assert_money(_only(result, TCV), "exposure", 3000.0)


def test_a_deal_paid_below_its_plan_contradicts_it_but_is_not_overpaid(rules):
    # Only the clawback differs, and 500 is below the 800 the plan pays at close.
    deal = deal_dict(plan_id="steady-2026", acv=10000.0, tcv=10000.0,
                     commission={"amount": 1000.0, "paid_upfront": 500.0, "rate": 0.10,
                                 "basis": "acv", "clawback_days": 0})
    alert = _only(run(rules, [deal]), PLAN)
    _assert_money(alert, "overpaid", 0.0)


# --- ratio findings: no money ---------------------------------------------------------------

def test_ratio_findings_have_no_money_class_and_no_money(rules):
    plan_deals = [deal_dict(account_id=f"nl-{i}", plan_id="gap-plan", team=f"t-{i}")
                  for i in range(3)]
    plan_deals += [deal_dict(account_id=f"rn-{i}", plan_id="gap-plan", team=f"t-{i}",
                             deal_type="renewal",
                             commission={"amount": 0.0, "paid_upfront": 0.0, "rate": 0.0})
                   for i in range(3)]
    team_deals = [deal_dict(account_id=f"team-{i}", team="all-new", plan_id=f"p-{i}")
                  for i in range(5)]
    result = run(rules, [*plan_deals, *team_deals])
    [gap] = result.of("renewal-rate-gap")
    [share] = result.of("new-logo-payout-share")
    for alert in (gap, share):
        assert alert.money_class is None
        assert alert.at_risk == 0.0
        assert "money" not in alert.evidence
        assert "money_by_deal" not in alert.evidence
