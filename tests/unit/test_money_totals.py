"""Money totals, worked out by hand: commission paid (RunCounters.paid) and commission flagged by
class, each (account, deal) once per class at the largest amount any finding gives it
(RunCounters.flagged), beside the per-rule figures that may overlap (RunCounters.at_risk); and
the replay summary (summary_data, render) showing the same totals and shares."""

from collections import defaultdict

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_helpers import churn_dict, deal_dict, run

from auditor.replay.summary import FindingsDigest, summary_data
from auditor.rules.loader import default_rules_dir

CLOSED = 5.0  # the rep's deals close on BASE + 5 days (2026-Q1)


def _eur_rate() -> float:
    """One EUR in the reporting currency, as rules/currency.yaml says."""
    data = yaml.safe_load((default_rules_dir() / "currency.yaml").read_text())
    assert data["reporting_currency"] == "USD"
    return float(data["rates"]["EUR"])


def _rep_deal(account, deal_id, paid, amount, clawback_days=0, discount=0.1, **kw):
    return deal_dict(account_id=account, deal_id=deal_id, rep_id="rep-t", days=CLOSED,
                     discount_pct=discount, acv=12000.0, tcv=12000.0,
                     commission={"amount": amount, "paid_upfront": paid,
                                 "clawback_days": clawback_days}, **kw)


def _story():
    """The events, and the deals by name. Every figure below is worked out from these."""
    # A: flagged by discount-then-churn, early-churn-unrecovered (twice: a partial churn, then
    # a full one) and rep-early-churn-rate, all unrecovered (no clawback).
    a = _rep_deal("acct-A", "D1", paid=900.0, amount=1000.0, discount=0.3)
    # B: the same deal id on another account, another deal: early-churn-unrecovered and
    # rep-early-churn-rate, unrecovered.
    b = _rep_deal("acct-B", "D1", paid=600.0, amount=800.0)
    # G: flagged by rep-early-churn-rate alone, recoverable (clawback 90, churn on day 30).
    g = _rep_deal("acct-G", "D7", paid=350.0, amount=700.0, clawback_days=90)
    # C: 36 months on TCV, all upfront: tcv-paid-upfront, exposure.
    c = deal_dict(account_id="acct-C", deal_id="D3", rep_id="rep-t", days=CLOSED,
                  term_months=36, acv=12000.0, tcv=36000.0,
                  commission={"amount": 500.0, "paid_upfront": 500.0, "basis": "tcv"})
    # D: paid in EUR; no finding.
    d = _rep_deal("acct-D", "D4", paid=400.0, amount=400.0, currency="EUR")
    # E: sold again as a new logo 100 days after a full churn (churn-and-resell, overpaid
    # amount) on a registered plan it contradicts (plan-contradiction, overpaid upfront beyond
    # 10000 x 0.10 x 0.8 = 800).
    e_churn = churn_dict(account_id="acct-E", days=20.0)
    e = deal_dict(account_id="acct-E", deal_id="D5", rep_id="rep-u", days=120.0,
                  plan_id="steady-2026", acv=10000.0, tcv=10000.0,
                  commission={"amount": 1500.0, "paid_upfront": 1500.0, "rate": 0.15,
                              "basis": "acv", "clawback_days": 180})
    # F: closed on day 0 but arriving after E (day 120): 120 days behind, late, still paid.
    f = deal_dict(account_id="acct-F", deal_id="D6", rep_id="rep-v", days=0.0,
                  commission={"amount": 250.0, "paid_upfront": 0.0})
    duplicate_event = dict(c)  # the same event_id again
    duplicate_deal = {**a, "event_id": "evt-again", "commission": {**a["commission"],
                                                                   "amount": 9999.0}}
    events = [
        a, b, g, c, d,
        churn_dict(account_id="acct-A", days=CLOSED + 10.0, churn_type="partial",
                   arr_lost=3000.0),
        churn_dict(account_id="acct-A", days=CLOSED + 20.0),
        churn_dict(account_id="acct-B", days=CLOSED + 40.0),
        churn_dict(account_id="acct-G", days=CLOSED + 30.0),
        duplicate_event, duplicate_deal,
        e_churn, e, f,
    ]
    return events, {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g}


def _paid(deal, eur=1.0):
    return deal["commission"]["amount"] * (eur if deal["currency"] == "EUR" else 1.0)


def _up(deal):
    return deal["commission"]["paid_upfront"]


def test_commission_paid_is_every_processed_deal_once_late_included_in_usd(rules):
    events, x = _story()
    result = run(rules, events)
    eur = _eur_rate()
    # 1000 + 800 + 700 + 500 + 400 x 1.08 + 250 on plan-a; 1500 on steady-2026.
    plan_a = sum(_paid(x[k], eur) for k in "abgcdf")
    assert plan_a == 1000 + 800 + 700 + 500 + 432 + 250
    assert dict(result.counters.paid) == pytest.approx(
        {("plan-a", "team-a", "USD"): plan_a, ("steady-2026", "team-a", "USD"): 1500.0})
    outcomes = result.counters.events_by_outcome()
    assert outcomes["duplicate"] == 2
    assert outcomes["late"] == 1  # deal F


def _by_class(flagged):
    totals: dict[str, float] = defaultdict(float)
    for (money_class, _, _, _), amount in flagged.items():
        totals[money_class] += amount
    return dict(totals)


def test_flagged_counts_each_deal_once_per_class_at_its_largest(rules):
    events, x = _story()
    result = run(rules, events)
    a, b, c, e, g = x["a"], x["b"], x["c"], x["e"], x["g"]
    # A: early-churn 900 x 3000/12000 = 225, then 900 on the full churn; discount-then-churn
    # 900; rep-early-churn-rate 900: largest 900. B (same deal id, other account): 600. G: 350.
    unrecovered = _up(a) + _up(b)  # 900 + 600
    recoverable = _up(g)  # 350
    exposure = round(_up(c) - c["commission"]["amount"] * 12 / c["term_months"], 2)  # 333.33
    overpaid = e["commission"]["amount"]  # 1500 from churn-and-resell; 700 from the plan
    assert (unrecovered, recoverable, exposure, overpaid) == (1500.0, 350.0, 333.33, 1500.0)
    assert dict(result.counters.flagged) == pytest.approx({
        ("unrecovered", "plan-a", "team-a", "USD"): unrecovered,
        ("recoverable", "plan-a", "team-a", "USD"): recoverable,
        ("exposure", "plan-a", "team-a", "USD"): exposure,
        ("overpaid", "steady-2026", "team-a", "USD"): overpaid,
    })
    # The per-rule figures overlap: A is in three rules, E in two.
    per_rule = {(rule, money_class): amount
                for (rule, _, _, money_class), amount in result.counters.at_risk.items()}
    assert per_rule == pytest.approx({
        ("early-churn-unrecovered", "unrecovered"): 225.0 + _up(a) + _up(b),
        ("discount-then-churn", "unrecovered"): _up(a),
        ("rep-early-churn-rate", "unrecovered"): _up(a) + _up(b),
        ("rep-early-churn-rate", "recoverable"): _up(g),
        ("tcv-paid-upfront", "exposure"): exposure,
        ("churn-and-resell", "overpaid"): overpaid,
        ("plan-contradiction", "overpaid"): 1500.0 - 800.0,
    })
    paid = sum(result.counters.paid.values())
    for amount in _by_class(result.counters.flagged).values():
        assert amount <= paid


def test_the_summary_shows_the_same_totals_and_shares(rules):
    events, _ = _story()
    result = run(rules, events)
    digest = FindingsDigest()
    for alert in result.alerts:
        digest.add(alert)
    data = summary_data(result.counters, digest)
    paid = 1000 + 800 + 700 + 500 + 432 + 250 + 1500  # 5182
    assert data["currency"] == "USD"
    assert data["commission_paid"]["total"] == paid
    assert data["money"]["by_class"] == {"unrecovered": 1500.0, "recoverable": 350.0,
                                         "overpaid": 1500.0, "exposure": 333.33}
    assert list(data["money"]["by_class"]) == ["unrecovered", "recoverable", "overpaid",
                                               "exposure"]
    rows = {(r["class"], r["plan_id"], r["quarter"]): r["amount"] for r in data["money"]["rows"]}
    assert rows == {("unrecovered", "plan-a", "2026-Q1"): 1500.0,
                    ("recoverable", "plan-a", "2026-Q1"): 350.0,
                    ("exposure", "plan-a", "2026-Q1"): 333.33,
                    ("overpaid", "steady-2026", "2026-Q2"): 1500.0}  # D5 closed on day 120
    by_rule = {(r["rule"], r["class"]): (r["amount"], r["findings"])
               for r in data["money"]["by_rule"]}
    assert by_rule[("early-churn-unrecovered", "unrecovered")] == (1725.0, 3)
    assert by_rule[("rep-early-churn-rate", "recoverable")] == (350.0, 1)
    text = digest.render(result.counters)
    assert "commission paid: 5,182.00 USD" in text
    # Shares of commission paid: 1500 / 5182 = 28.95%, 350 / 5182 = 6.75%,
    # 333.33 / 5182 = 6.43%.
    assert "  unrecovered          1,500.00 USD   28.9%" in text
    assert "  recoverable            350.00 USD    6.8%" in text
    assert "  overpaid             1,500.00 USD   28.9%" in text
    assert "  exposure               333.33 USD    6.4%" in text


def test_totals_do_not_depend_on_arrival_order(rules):
    events, _ = _story()
    head, tail = events[:9], events[9:]  # the late deal F stays after E
    expected = dict(run(rules, events).counters.flagged)
    for order in (list(reversed(head)) + tail, head[4:] + head[:4] + tail):
        assert dict(run(rules, order).counters.flagged) == pytest.approx(expected)


# --- property: over any stream, totals recomputed from the alerts --------------------------

ACCOUNTS = ("acct-1", "acct-2", "acct-3")
_days = st.integers(min_value=0, max_value=170).map(lambda half_days: half_days / 2)


@st.composite
def _any_deal(draw):
    amount = float(draw(st.integers(min_value=0, max_value=5000)))
    return deal_dict(
        account_id=draw(st.sampled_from(ACCOUNTS)),
        deal_id=draw(st.sampled_from(("D1", "D2", "D3", "D4"))),  # repeated across accounts
        rep_id=draw(st.sampled_from(("rep-1", "rep-1", "rep-2"))),
        team=draw(st.sampled_from(("team-1", "team-2"))),
        plan_id=draw(st.sampled_from(("plan-1", "steady-2026", "hunter-2026"))),
        deal_type=draw(st.sampled_from(("new_logo", "expansion", "renewal"))),
        days=draw(_days),
        term_months=draw(st.sampled_from((12, 24, 36))),
        acv=draw(st.sampled_from((0.0, 1000.0, 10000.0))),
        discount_pct=draw(st.sampled_from((0.0, 0.25, 0.3))),
        currency=draw(st.sampled_from(("USD", "USD", "EUR"))),
        commission={
            "amount": amount,
            "paid_upfront": float(draw(st.integers(min_value=0, max_value=int(amount)))),
            "basis": draw(st.sampled_from(("acv", "tcv"))),
            "rate": draw(st.sampled_from((0.1, 0.12))),
            "clawback_days": draw(st.sampled_from((0, 30, 90, 180))),
        },
    )


@st.composite
def _any_churn(draw):
    return churn_dict(account_id=draw(st.sampled_from(ACCOUNTS)), days=draw(_days),
                      churn_type=draw(st.sampled_from(("full", "partial"))),
                      arr_lost=draw(st.sampled_from((0.0, 500.0, 5000.0, 20000.0))))


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.one_of(_any_deal(), _any_deal(), _any_churn()), min_size=1,
                       max_size=40))
def test_any_stream_totals_match_the_alerts_and_never_exceed_paid(rules, events):
    result = run(rules, events)
    eur = _eur_rate()
    first: dict[tuple[str, str], dict] = {}
    for event in events:  # the first deal_closed of an (account, deal) stands
        if event["event_type"] == "deal_closed":
            first.setdefault((event["account_id"], event["deal_id"]), event)
    paid = sum(_paid(deal, eur) for deal in first.values())
    assert sum(result.counters.paid.values()) == pytest.approx(paid)
    largest: dict[tuple[str, str, str], float] = {}
    for alert in result.alerts:
        if alert.kind == "aggregate":
            items = [((d["account_id"], d["deal_id"], d["class"]), d["amount"])
                     for d in alert.evidence.get("money_by_deal", ())]
        else:
            items = [((alert.account_id, alert.deal_id, c), amount)
                     for c, amount in alert.evidence.get("money", {}).items()]
        for key, amount in items:
            largest[key] = max(largest.get(key, 0.0), amount)
    by_class: dict[str, float] = defaultdict(float)
    for (account_id, deal_id, money_class), amount in largest.items():
        assert amount <= _paid(first[account_id, deal_id], eur) + 0.005
        by_class[money_class] += amount
    flagged = _by_class(result.counters.flagged)
    assert {c: a for c, a in flagged.items() if a} == pytest.approx(
        {c: a for c, a in by_class.items() if a}, abs=0.01)
    for amount in flagged.values():
        assert amount <= paid + 0.01


# --- the worked example of README.md, "Money" -------------------------------------------------

@pytest.mark.parametrize("clawback_days", [0, 30])
def test_the_readme_worked_example(rules, clawback_days):
    d1 = deal_dict(account_id="A", deal_id="D1", rep_id="rep-x", discount_pct=0.3, acv=12000.0,
                   commission={"amount": 1000.0, "paid_upfront": 900.0,
                               "clawback_days": clawback_days})
    others = [deal_dict(account_id=f"O{i}", rep_id="rep-x", discount_pct=0.0,
                        commission={"amount": 1000.0, "paid_upfront": 1000.0})
              for i in range(3)]
    churns = [churn_dict(account_id="A", days=10.0, churn_type="partial", arr_lost=3000.0),
              churn_dict(account_id="A", days=20.0)]
    result = run(rules, [d1, *others, *churns])
    per_rule = {(rule, money_class): amount
                for (rule, _, _, money_class), amount in result.counters.at_risk.items()}
    flagged = _by_class(result.counters.flagged)
    assert sum(result.counters.paid.values()) == 4000.0
    if clawback_days == 0:
        assert per_rule == {("early-churn-unrecovered", "unrecovered"): 225.0 + 900.0,
                            ("discount-then-churn", "unrecovered"): 900.0,
                            ("rep-early-churn-rate", "unrecovered"): 900.0}
        assert sum(per_rule.values()) == 2925.0
        assert flagged == {"unrecovered": 900.0}
        [discount] = result.of("discount-then-churn")
        assert "a 30-day clawback would have recovered it" in discount.summary
        [rep] = result.of("rep-early-churn-rate")
        assert rep.value == 0.25
    else:
        assert result.of("early-churn-unrecovered") == []
        assert per_rule == {("discount-then-churn", "recoverable"): 900.0,
                            ("rep-early-churn-rate", "recoverable"): 900.0}
        assert flagged == {"recoverable": 900.0}


def test_a_gap_in_event_time_does_not_count_a_deal_twice(rules):
    # D1 is flagged 900 unrecovered by early-churn-unrecovered and discount-then-churn on day
    # 20. The next event comes on day 700: the rep's 2026-Q1 leaves the horizon (and is
    # evaluated, claiming D1's 900 unrecovered) in the same step that expires D1's state.
    deals = [deal_dict(account_id=f"gap-{i}", rep_id="rep-g", days=5.0, discount_pct=0.3,
                       commission={"amount": 1000.0, "paid_upfront": 900.0})
             for i in range(4)]
    filler = deal_dict(account_id="later", rep_id="rep-h", deal_type="renewal", days=700.0)
    result = run(rules, [*deals, churn_dict(account_id="gap-0", days=20.0), filler])
    assert [a.rule for a in result.alerts if a.money_class] == [
        "early-churn-unrecovered", "discount-then-churn", "rep-early-churn-rate"]
    assert _by_class(result.counters.flagged) == {"unrecovered": 900.0}  # is 1800
