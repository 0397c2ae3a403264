"""Engine semantics at the edges the contract states: deal ids unique per account only, replay's
aggregate periods evaluated once at end of input, at most one alert per aggregate key even past
the horizon, and an event the engine fails on counted once."""

import pytest
from unit_helpers import churn_dict, deal_dict, raw, run

from auditor.engine.alerts import alert_id
from auditor.metrics.counters import RunCounters
from auditor.replay.runner import Replay


def test_one_deal_id_on_two_accounts_is_two_deals(rules):
    events = []
    for account in ("acct-a", "acct-b"):
        events += [deal_dict(deal_id="D-1", account_id=account, days=0, discount_pct=0.3),
                   churn_dict(account_id=account, days=30)]
    result = run(rules, events)
    found = result.of("discount-then-churn")
    assert len(found) == 2
    assert len({a.alert_id for a in found}) == 2  # a consumer de-duplicating by id keeps both
    for a in found:
        key = (a.account_id, "D-1", a.evidence["churn_event_id"])
        assert a.alert_id == alert_id("discount-then-churn", *key)
    assert result.counters.events_by_outcome() == {"processed": 4}


def test_aggregates_count_one_deal_id_on_two_accounts_twice(rules):
    # rep-early-churn-rate needs 4 new-logo deals of the rep; two pairs share their deal ids.
    events = [deal_dict(deal_id=f"D-{n % 2}", account_id=f"acct-{n}", rep_id="rep-x", days=n)
              for n in range(4)]
    events += [churn_dict(account_id=f"acct-{n}", days=20) for n in range(4)]
    [alert] = run(rules, events).of("rep-early-churn-rate")
    assert alert.evidence["deals"] == 4
    assert alert.evidence["churned_deals"] == 4
    assert sorted(alert.evidence["churned_deal_ids"]) == ["D-0", "D-0", "D-1", "D-1"]


def _payout_share_events(late_renewal: bool) -> list[dict]:
    """Five new-logo deals of one team in 2026-Q1 (share 1.0 > 0.85); time moves on past the
    quarter's settle time (end + 30 days' lateness); then, maybe, a late Q1 renewal with a large
    commission brings the share under the threshold."""
    events = [deal_dict(team="team-z", account_id=f"acct-q{n}", days=n) for n in range(5)]
    events.append(deal_dict(team="team-y", account_id="acct-later", days=150))  # 2026-Q2
    if late_renewal:
        events.append(deal_dict(team="team-z", account_id="acct-q9", deal_type="renewal",
                                days=10, commission={"amount": 10000.0}))
    return events


def test_replay_evaluates_a_period_once_at_end_of_input(rules):
    late = run(rules, _payout_share_events(late_renewal=True), lateness_days=30.0)
    assert late.counters.events_by_outcome() == {"processed": 6, "late": 1}
    assert [a for a in late.of("new-logo-payout-share") if a.group == "team-z"] == []
    on_time = run(rules, _payout_share_events(late_renewal=False))
    [alert] = [a for a in on_time.of("new-logo-payout-share") if a.group == "team-z"]
    assert alert.value == 1.0


def test_replay_fires_nothing_before_the_end(rules):
    result = run(rules, _payout_share_events(late_renewal=False), flush=False)
    assert result.of("new-logo-payout-share") == []
    assert [a.group for a in result.flush() if a.rule == "new-logo-payout-share"] == ["team-z"]


def test_a_period_fires_once_even_after_it_left_the_horizon(rules):
    events = _payout_share_events(late_renewal=False)
    # Far past the horizon (365 days + 30 of lateness after the quarter), then five more Q1
    # new-logo deals of the team, enough to fire alone: the period is gone and must not start
    # afresh.
    events.append(deal_dict(team="team-y", account_id="acct-far", days=900))
    events += [deal_dict(team="team-z", account_id=f"acct-r{n}", days=20) for n in range(5)]
    result = run(rules, events)
    fired = [a for a in result.of("new-logo-payout-share") if a.group == "team-z"]
    assert len(fired) == 1
    assert fired[0].evidence["deals"] == 5  # evaluated as it left the horizon


def test_an_event_the_engine_fails_on_is_counted_once_as_internal_error(rules, monkeypatch):
    counters = RunCounters()
    replay = Replay(rules, counters)
    letters = []
    replay.on_deadletter = letters.append

    def broken(fact):
        raise RuntimeError("boom")

    monkeypatch.setattr(replay.engine.aggregate, "apply", broken)
    replay.feed([raw(deal_dict(account_id="acct-e")), raw(churn_dict(account_id="acct-f"))],
                "in.jsonl")
    [letter] = letters
    assert (letter.reason, letter.source, letter.event_type) == (
        "internal_error", "in.jsonl:1", "deal_closed")
    assert "RuntimeError: boom" in letter.detail
    assert dict(counters.events) == {("deal_closed", "invalid"): 1,
                                     ("account_churned", "processed"): 1}
    assert dict(counters.deadletters) == {"internal_error": 1}
    assert sum(counters.alerts.values()) == 0


@pytest.mark.parametrize("lateness", [30.0, 0.0])
def test_the_engine_keeps_no_period_past_the_horizon(rules, lateness):
    result = run(rules, [deal_dict(account_id=f"a{n}", days=n * 40) for n in range(30)],
                 lateness_days=lateness)
    engine = result.engine
    horizon = rules.longest_window_days() + lateness
    newest = engine.aggregates.watermark
    assert all(state.end >= newest - horizon * 86400 for _, state in engine.aggregates.items())


def test_the_last_representable_quarter_is_audited(rules):
    events = [deal_dict(team="team-end", account_id=f"acct-end{n}",
                        closed_at=f"9999-12-31T23:59:5{n}Z") for n in range(5)]
    result = run(rules, events)
    assert result.deadletters == []
    [alert] = [a for a in result.of("new-logo-payout-share") if a.group == "team-end"]
    assert (alert.period, alert.event_time) == ("9999-Q4", "10000-01-01T00:00:00Z")


def test_commission_retention_is_a_ratio_finding_with_its_figures(rules):
    """Five deals of one plan in 2026-Q1, 1,000 each; two accounts fully churn within 12 months
    (one exactly 12 months after its close), one 12 months and a second after: retained 3,000 of
    5,000 = 0.6, below the 0.8 target."""
    events = [deal_dict(account_id=f"k{n}", plan_id="plan-k", team="team-k", days=0.0,
                        commission={"amount": 1000.0}) for n in range(5)]
    events += [churn_dict(account_id="k0", days=100.0),
               churn_dict(account_id="k1", churned_at="2027-01-05T00:00:00Z"),
               churn_dict(account_id="k2", churned_at="2027-01-05T00:00:01Z")]
    result = run(rules, events)
    [plan] = result.of("commission-retention-plan")
    assert (plan.group_by, plan.group, plan.period) == ("plan_id", "plan-k", "2026-Q1")
    assert plan.value == 0.6 and plan.threshold == 0.8
    assert (plan.money_class, plan.at_risk, plan.deal_id) == (None, 0.0, None)
    assert plan.event_time == "2026-04-01T00:00:00Z"
    assert plan.evidence["commission_paid"] == 5000.0
    assert plan.evidence["commission_retained"] == 3000.0
    assert [a.group for a in result.of("commission-retention-team")] == ["team-k"]
    [figure] = [v for v in result.counters.retained.values() if v.group == "plan-k"]
    assert (figure.share, figure.paid, figure.retained) == (0.6, 5000.0, 3000.0)
    # The input ends on 2027-01-05: 2026-Q1 settles 12 months + 30 days after 2026-04-01.
    assert figure.status == "live"
