"""Aggregate periods: calendar quarters of closed_at in UTC, labelled YYYY-Qn, ending exclusive."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from unit_helpers import deal_dict, rfc3339, run

RULE = "new-logo-payout-share"


def _five(closed_at, team="t", **kw):
    return [deal_dict(team=team, account_id=f"{team}-{i}", closed_at=closed_at, **kw)
            for i in range(5)]


def test_quarter_is_taken_in_utc_not_the_local_offset(rules):
    # 2026-03-31T23:30:00-02:00 is 2026-04-01T01:30:00Z: Q2.
    [alert] = run(rules, _five("2026-03-31T23:30:00-02:00")).of(RULE)
    assert alert.period == "2026-Q2"
    assert alert.event_time == "2026-07-01T00:00:00Z"


def test_positive_offset_can_move_a_deal_back_a_quarter(rules):
    # 2026-04-01T01:00:00+02:00 is 2026-03-31T23:00:00Z: Q1.
    [alert] = run(rules, _five("2026-04-01T01:00:00+02:00")).of(RULE)
    assert alert.period == "2026-Q1"
    assert alert.event_time == "2026-04-01T00:00:00Z"


def test_local_q1_deal_counted_in_q2_does_not_complete_q1(rules):
    deals = [*_five("2026-03-15T00:00:00Z")[:4],
             deal_dict(team="t", account_id="t-x", closed_at="2026-03-31T23:30:00-02:00")]
    assert run(rules, deals).of(RULE) == []


@pytest.mark.parametrize(
    ("closed_at", "period", "end"),
    [
        ("2026-01-01T00:00:00Z", "2026-Q1", "2026-04-01T00:00:00Z"),
        ("2026-03-31T23:59:59Z", "2026-Q1", "2026-04-01T00:00:00Z"),
        ("2026-04-01T00:00:00Z", "2026-Q2", "2026-07-01T00:00:00Z"),
        ("2026-08-15T12:00:00Z", "2026-Q3", "2026-10-01T00:00:00Z"),
        ("2026-12-31T23:59:59Z", "2026-Q4", "2027-01-01T00:00:00Z"),
        ("2027-01-01T00:00:00+01:00", "2026-Q4", "2027-01-01T00:00:00Z"),
        ("2024-02-29T10:00:00Z", "2024-Q1", "2024-04-01T00:00:00Z"),
    ],
)
def test_period_label_and_exclusive_end(rules, closed_at, period, end):
    [alert] = run(rules, _five(closed_at)).of(RULE)
    assert alert.period == period
    assert alert.event_time == end


def test_one_alert_per_group_and_period(rules):
    q1 = _five("2026-02-01T00:00:00Z", team="a")
    q2 = [deal_dict(team="a", account_id=f"a2-{i}", closed_at="2026-05-01T00:00:00Z")
          for i in range(5)]
    other = _five("2026-02-01T00:00:00Z", team="b")
    alerts = run(rules, q1 + q2 + other).of(RULE)
    assert sorted((a.group, a.period) for a in alerts) == [
        ("a", "2026-Q1"), ("a", "2026-Q2"), ("b", "2026-Q1")]
    assert len({a.alert_id for a in alerts}) == 3


def test_deals_spread_over_a_quarter_add_up(rules):
    start = datetime(2026, 7, 1, tzinfo=UTC)
    deals = [deal_dict(team="t", account_id=f"s{i}", closed_at=rfc3339(start + timedelta(days=d)))
             for i, d in enumerate((0, 10, 40, 80, 91.99))]
    [alert] = run(rules, deals).of(RULE)
    assert alert.period == "2026-Q3"


def test_flush_evaluates_each_period_once(rules):
    result = run(rules, _five("2026-02-01T00:00:00Z"))
    assert len(result.of(RULE)) == 1
    assert [a for a in result.engine.flush() if a.rule == RULE] == []


def test_offsets_other_than_whole_hours(rules):
    tz = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2026, 7, 1, 5, 0, tzinfo=tz)  # 2026-06-30T23:30:00Z
    [alert] = run(rules, _five(local.isoformat())).of(RULE)
    assert alert.period == "2026-Q2"
