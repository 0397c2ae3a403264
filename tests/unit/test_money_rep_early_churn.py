"""Money of rep-early-churn-rate, worked out by hand: per churned deal, recoverable when its
clawback (> 0 days) reaches the earliest full churn 0..90 days after the close, else unrecovered;
evidence.money by class, money_by_deal per deal, money_class the class of the largest amount."""

import itertools

import pytest
from unit_helpers import churn_dict, deal_dict, run

RULE = "rep-early-churn-rate"
CLOSED = 5.0  # every deal closes on BASE + 5 days, in 2026-Q1


def _deal(n, clawback_days, paid, rep="rep-m", **kw):
    return deal_dict(deal_id=f"D{n}", account_id=f"{rep}-acct-{n}", rep_id=rep, days=CLOSED,
                     plan_id=f"plan-{n % 2}", team=f"team-{n % 3}",
                     commission={"amount": 2 * paid, "paid_upfront": paid,
                                 "clawback_days": clawback_days}, **kw)


def _churn(deal, after_days, **kw):
    return churn_dict(account_id=deal["account_id"], days=CLOSED + after_days, **kw)


def _by_deal(alert):
    return {d["deal_id"]: d for d in alert.evidence["money_by_deal"]}


def test_each_churned_deal_is_classed_by_its_own_clawback(rules):
    deals = [
        _deal(0, 180, 100.0),  # churn on day 60, inside 180: recoverable
        _deal(1, 0, 250.0),  # no clawback: unrecovered
        _deal(2, 45, 300.0),  # churn on day 45, the clawback's last day: recoverable
        _deal(3, 45, 410.0),  # churn on day 45.5, just past it: unrecovered
        _deal(4, 0, 999.0),  # did not churn
    ]
    churns = [_churn(deals[0], 60.0), _churn(deals[1], 30.0), _churn(deals[2], 45.0),
              _churn(deals[3], 45.5)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.value == 0.8  # 4 of 5
    assert alert.evidence["money"] == {"recoverable": 400.0,  # 100 + 300
                                       "unrecovered": 660.0}  # 250 + 410
    assert alert.at_risk == 1060.0  # 100 + 250 + 300 + 410
    assert alert.money_class == "unrecovered"  # 660 > 400
    assert alert.summary.endswith(
        "1,060.00 USD paid upfront on them (660.00 USD unrecovered, 400.00 USD recoverable).")
    by_deal = _by_deal(alert)
    assert {d: (e["class"], e["amount"]) for d, e in by_deal.items()} == {
        "D0": ("recoverable", 100.0), "D1": ("unrecovered", 250.0),
        "D2": ("recoverable", 300.0), "D3": ("unrecovered", 410.0)}
    for n in range(4):
        deal = deals[n]
        assert by_deal[f"D{n}"] == {
            "account_id": deal["account_id"], "deal_id": deal["deal_id"],
            "class": by_deal[f"D{n}"]["class"], "amount": deal["commission"]["paid_upfront"],
            "plan_id": deal["plan_id"], "team": deal["team"], "closed_at": deal["closed_at"]}
    assert deals[0]["closed_at"] == "2026-01-10T00:00:00Z"


def test_the_class_of_the_largest_amount_is_the_alerts(rules):
    deals = [_deal(0, 90, 700.0), _deal(1, 0, 200.0), _deal(2, 0, 1.0), _deal(3, 0, 1.0)]
    churns = [_churn(deals[0], 10.0), _churn(deals[1], 10.0)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.evidence["money"] == {"recoverable": 700.0, "unrecovered": 200.0}
    assert alert.money_class == "recoverable"  # 700 > 200
    assert alert.at_risk == 900.0


def test_a_tie_goes_to_unrecovered(rules):
    deals = [_deal(0, 90, 300.0), _deal(1, 0, 300.0), _deal(2, 0, 1.0), _deal(3, 0, 1.0)]
    churns = [_churn(deals[0], 10.0), _churn(deals[1], 10.0)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.evidence["money"] == {"recoverable": 300.0, "unrecovered": 300.0}
    assert alert.money_class == "unrecovered"


def test_only_recoverable_money_says_nothing_unrecovered(rules):
    deals = [_deal(n, 180, 100.0 * (n + 1)) for n in range(4)]
    [alert] = run(rules, [*deals, _churn(deals[3], 90.0)]).of(RULE)  # day 90 <= 180
    assert alert.evidence["money"] == {"recoverable": 400.0}
    assert alert.money_class == "recoverable"
    assert "unrecovered" not in alert.summary
    assert alert.summary.endswith("400.00 USD paid upfront on them (400.00 USD recoverable).")


# Churns of the account of a deal with a 50-day clawback: only full churns 0..90 days after the
# close count, and the earliest of them decides: day 40, inside the clawback, so recoverable.
_EARLIEST_RECOVERABLE = [
    {"after": 60.0},  # full, day 60: counts, but not the earliest
    {"after": 40.0},  # full, day 40: the earliest that counts
    {"after": 20.0, "churn_type": "partial", "arr_lost": 100.0},  # partial: does not count
    {"after": -3.0},  # before the close: does not count
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_the_earliest_qualifying_churn_decides_in_any_arrival_order(rules, order):
    deals = [_deal(0, 50, 500.0), _deal(1, 0, 10.0), _deal(2, 0, 10.0), _deal(3, 0, 10.0)]
    churns = []
    for i in order:
        spec = dict(_EARLIEST_RECOVERABLE[i])
        churns.append(_churn(deals[0], spec.pop("after"), **spec))
    for events in ([*deals, *churns], [*churns, *deals], [deals[1], *churns, deals[0],
                                                          *deals[2:]]):
        [alert] = run(rules, events).of(RULE)
        assert _by_deal(alert)["D0"]["class"] == "recoverable"
        assert alert.evidence["money"] == {"recoverable": 500.0}
        assert alert.money_class == "recoverable"


@pytest.mark.parametrize("first", ["early", "late"])
def test_an_earlier_churn_past_the_clawback_makes_it_unrecovered_in_either_order(rules, first):
    # Clawback 30: a full churn on day 31 (unrecovered) and one on day 80 (also past it), and
    # for the second deal a churn on day 29 (recoverable) with one on day 31.
    deals = [_deal(0, 30, 500.0), _deal(1, 30, 70.0), _deal(2, 0, 10.0), _deal(3, 0, 10.0)]
    early = [_churn(deals[0], 31.0), _churn(deals[1], 29.0)]
    late = [_churn(deals[0], 80.0), _churn(deals[1], 31.0)]
    churns = [*early, *late] if first == "early" else [*late, *early]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert {d: e["class"] for d, e in _by_deal(alert).items()} == {
        "D0": "unrecovered", "D1": "recoverable"}
    assert alert.evidence["money"] == {"recoverable": 70.0, "unrecovered": 500.0}


def test_at_risk_is_the_sum_of_evidence_money_to_the_cent(rules):
    # Paid upfront 1.004 on each of two churned deals, one recoverable, one unrecovered: the
    # classes hold 1.00 each (to the cent), and at_risk must be what they add up to.
    deals = [_deal(0, 90, 1.004), _deal(1, 0, 1.004), _deal(2, 0, 1.0), _deal(3, 0, 1.0)]
    churns = [_churn(deals[0], 10.0), _churn(deals[1], 10.0)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.evidence["money"] == {"recoverable": 1.0, "unrecovered": 1.0}
    assert alert.at_risk == 2.0  # is 2.01: round(1.004 + 1.004, 2)
