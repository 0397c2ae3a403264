"""Joins are symmetric in arrival order: the same events in any order give the same alerts."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_helpers import churn_dict, deal_dict, run

# Nothing is ever late or settled before flush() with this lateness: order cannot matter.
NEVER_LATE = 100_000.0

ACCOUNTS = ("acct-a", "acct-b", "acct-c")


def _key(alert):
    return (alert.alert_id, alert.rule, alert.severity, alert.at_risk, alert.event_time,
            alert.deal_id, alert.group, alert.period, alert.value)


def _alerts(rules, events, lateness=NEVER_LATE):
    return sorted(_key(a) for a in run(rules, events, lateness_days=lateness).alerts)


# --- examples ---------------------------------------------------------------------------------


def test_churn_before_deal_fires_early_churn_unrecovered(rules):
    deal = deal_dict(days=0.0)
    churn = churn_dict(days=30.0)
    forward = run(rules, [deal, churn]).of("early-churn-unrecovered")
    backward = run(rules, [churn, deal])
    [alert] = backward.of("early-churn-unrecovered")
    assert [_key(a) for a in forward] == [_key(alert)]
    # The alert comes out when the second event (the deal) is processed, not at flush.
    assert alert not in backward.flushed


def test_churn_before_deal_fires_discount_then_churn(rules):
    deal = deal_dict(days=0.0, discount_pct=0.3, commission={"clawback_days": 365})
    churn = churn_dict(days=200.0)
    [alert] = run(rules, [churn, deal]).of("discount-then-churn")
    assert alert.event_time == churn["churned_at"]


def test_deal_before_churn_fires_churn_and_resell(rules):
    churn = churn_dict(days=0.0)
    deal = deal_dict(days=10.0)
    [alert] = run(rules, [deal, churn]).of("churn-and-resell")
    assert alert.event_time == deal["closed_at"]
    assert alert.at_risk == 1200.0


def test_churn_before_deals_counts_for_rep_early_churn_rate(rules):
    deals = [deal_dict(account_id=f"x{i}", rep_id="r", days=1.0) for i in range(4)]
    churn = churn_dict(account_id="x0", days=2.0)
    assert _alerts(rules, [churn, *deals]) == _alerts(rules, [*deals, churn])
    assert len(run(rules, [churn, *deals]).of("rep-early-churn-rate")) == 1


# --- property -------------------------------------------------------------------------------

# Whole-number amounts keep every sum exact, so no order of additions can tip a threshold.
_amount = st.integers(min_value=0, max_value=5000).map(float)
_days = st.integers(min_value=0, max_value=360).map(lambda half_days: half_days / 2)


@st.composite
def _deal(draw, days=_days):
    amount = draw(_amount)
    return deal_dict(
        account_id=draw(st.sampled_from(ACCOUNTS)),
        rep_id=draw(st.sampled_from(("rep-1", "rep-1", "rep-2"))),
        team=draw(st.sampled_from(("team-1", "team-1", "team-2"))),
        plan_id=draw(st.sampled_from(("plan-1", "plan-1", "plan-2"))),
        deal_type=draw(st.sampled_from(("new_logo", "expansion", "renewal"))),
        days=draw(days),
        term_months=draw(st.sampled_from((12, 24, 36))),
        acv=draw(st.sampled_from((0.0, 1000.0, 10000.0))),
        discount_pct=draw(st.sampled_from((0.0, 0.1, 0.25, 0.3))),
        commission={
            "amount": amount,
            "paid_upfront": float(draw(st.integers(min_value=0, max_value=int(amount)))),
            "basis": draw(st.sampled_from(("acv", "tcv"))),
            "clawback_days": draw(st.sampled_from((0, 30, 90, 200))),
        },
    )


@st.composite
def _churn(draw):
    return churn_dict(
        account_id=draw(st.sampled_from(ACCOUNTS)),
        days=draw(_days),
        churn_type=draw(st.sampled_from(("full", "partial"))),
        arr_lost=draw(st.sampled_from((0.0, 500.0, 5000.0, 20000.0))),
    )


_events = st.lists(st.one_of(_deal(), _deal(), _churn()), min_size=1, max_size=40)

# Many deals in one quarter (BASE + 85 days is still 2026-Q1), so the aggregates fire too.
_dense_events = st.lists(
    st.one_of(_deal(days=st.integers(min_value=0, max_value=170).map(lambda h: h / 2)),
              _churn()),
    min_size=15, max_size=40)

_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(events=_events, data=st.data())
def test_any_order_gives_the_same_alerts(rules, events, data):
    shuffled = data.draw(st.permutations(events))
    expected = _alerts(rules, events)
    assert _alerts(rules, shuffled) == expected
    assert _alerts(rules, list(reversed(events))) == expected


@_SETTINGS
@given(events=_events, data=st.data())
def test_alert_ids_do_not_depend_on_order(rules, events, data):
    shuffled = data.draw(st.permutations(events))
    ids = {a.alert_id for a in run(rules, events, lateness_days=NEVER_LATE).alerts}
    assert {a.alert_id for a in run(rules, shuffled, lateness_days=NEVER_LATE).alerts} == ids


@_SETTINGS
@given(events=_dense_events, data=st.data())
def test_any_order_gives_the_same_aggregate_alerts(rules, events, data):
    shuffled = data.draw(st.permutations(events))
    expected = _alerts(rules, events)
    assert _alerts(rules, shuffled) == expected
    assert _alerts(rules, list(reversed(events))) == expected


_within_a_month = st.integers(min_value=0, max_value=58).map(lambda half_days: half_days / 2)


@st.composite
def _month_of_events(draw):
    """Events spanning < 30 days of event time: with the default lateness none is late."""
    events = []
    for event in draw(_events):
        day = draw(_within_a_month)
        field = "closed_at" if event["event_type"] == "deal_closed" else "churned_at"
        events.append({**event, field: deal_dict(days=day)["closed_at"]})
    return events


@_SETTINGS
@given(events=_month_of_events(), data=st.data())
def test_default_lateness_order_does_not_matter_within_a_month(rules, events, data):
    shuffled = data.draw(st.permutations(events))
    expected = _alerts(rules, events, lateness=30.0)
    assert _alerts(rules, shuffled, lateness=30.0) == expected
    assert _alerts(rules, list(reversed(events)), lateness=30.0) == expected
    result = run(rules, shuffled, lateness_days=30.0)
    assert result.counters.events_by_outcome().get("late", 0) == 0
