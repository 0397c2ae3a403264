"""State is kept by event time for the longest window of the rules (372 days for the default
pack: commission retention's 12 months, counted as 31 days each) plus the allowed lateness
(30 days) behind the watermark, then dropped; late events are counted `late` and still processed
against the state that remains."""

import pytest
from unit_helpers import churn_dict, deal_dict, raw, run

from auditor.engine.engine import AuditEngine
from auditor.events.decode import EventDecoder
from auditor.metrics.counters import RunCounters
from auditor.rules.loader import default_rules_dir, load_rule_pack

HORIZON_DAYS = load_rule_pack(default_rules_dir()).longest_window_days() + 30
YEARS = 3
STEP = 3.0  # a new account every STEP days


def _stream():
    """One new account every 3 days for 3 years: a deal, then a partial churn a day later."""
    events = []
    for k in range(int(YEARS * 365 / STEP)):
        day = k * STEP
        account = f"acct-{k}"
        events.append(deal_dict(account_id=account, days=day, rep_id=f"rep-{k % 7}",
                                team=f"team-{k % 3}", commission={"clawback_days": 30}))
        events.append(churn_dict(account_id=account, days=day + 1.0, churn_type="partial",
                                 arr_lost=10.0))
    return events


@pytest.fixture(scope="module")
def streamed(rules):
    counters = RunCounters()
    engine = AuditEngine(rules, counters)
    decoder = EventDecoder(rules.currency)
    sizes = []
    aggregate_sizes = []
    for n, event in enumerate(_stream()):
        result = decoder.decode(raw(event), f"s:{n}")
        engine.process(result)
        sizes.append(len(engine.accounts))
        aggregate_sizes.append(len(engine.aggregates))
    return engine, counters, sizes, aggregate_sizes


def test_account_state_stays_bounded(streamed):
    _, counters, sizes, _ = streamed
    total_accounts = int(YEARS * 365 / STEP)
    # Without expiry every account would still be there.
    assert max(sizes) < total_accounts / 2
    # Accounts within the horizon, plus up to two days of expiry granularity.
    assert max(sizes) <= HORIZON_DAYS / STEP + 2
    assert counters.events_by_outcome() == {"processed": 2 * total_accounts}


def test_accounts_inside_the_horizon_are_kept(streamed):
    engine, _, sizes, _ = streamed
    watermark_day = (int(YEARS * 365 / STEP) - 1) * STEP + 1.0
    kept = [k for k in range(int(YEARS * 365 / STEP))
            if engine.accounts.get(f"acct-{k}") is not None]
    # Everything newer than the horizon (less a day of slack) is still there.
    newest_dropped = max((k for k in range(int(YEARS * 365 / STEP)) if k not in kept),
                         default=-1)
    assert watermark_day - (newest_dropped * STEP + 1.0) >= HORIZON_DAYS
    assert len(kept) >= (HORIZON_DAYS - 2) / STEP
    assert sizes[-1] == len(kept)


def test_old_accounts_are_dropped(streamed):
    engine, *_ = streamed
    for k in range(100):
        assert engine.accounts.get(f"acct-{k}") is None


def test_aggregate_state_stays_bounded(streamed):
    _, _, _, aggregate_sizes = streamed
    # One key per group and quarter: teams (payout share, retention), reps, and the plan
    # (renewal gap, retention).
    groups = 3 + 3 + 7 + 1 + 1
    # The 402-day horizon spans at most 6 quarters; expiry runs when a period settles, so allow
    # one more quarter of lag.
    assert max(aggregate_sizes) <= groups * 7
    # Without expiry, 12 quarters of groups would pile up.
    assert aggregate_sizes[-1] < groups * 12


def test_one_busy_account_keeps_only_its_recent_events(rules):
    events = [deal_dict(account_id="busy", days=float(day), deal_type="renewal")
              for day in range(3 * 365)]
    result = run(rules, events, flush=False)
    state = result.engine.accounts.get("busy")
    assert state is not None
    assert HORIZON_DAYS - 2 <= len(state.deals) <= HORIZON_DAYS + 2
    # Its duplicate check knows the events it holds, and no longer the expired ones.
    assert not state.has_event(events[0]["event_id"])
    assert all(state.has_event(deal.event_id) for deal in state.deals)


def test_state_is_kept_for_the_365_day_window(rules):
    deal = deal_dict(account_id="keep", discount_pct=0.3, days=0.0,
                     commission={"clawback_days": 400})
    filler = [deal_dict(account_id=f"f{i}", days=float(i), deal_type="renewal")
              for i in range(1, 365)]
    churn = churn_dict(account_id="keep", days=365.0)
    result = run(rules, [deal, *filler, churn], flush=False)
    assert len(result.of("discount-then-churn")) == 1
    assert result.counters.events_by_outcome() == {"processed": 366}


# --- late events ------------------------------------------------------------------------------


def _watermark_stream(days=400.0):
    """A deal 100 days behind the final watermark, and the stream that moves it on."""
    return [
        deal_dict(account_id="target", days=days - 100.0),
        *[deal_dict(account_id=f"w{i}", days=days - 100.0 + i, deal_type="renewal")
          for i in range(1, 101)],
    ]


def test_late_event_is_counted_late_and_still_joins(rules, decoder):
    result = run(rules, _watermark_stream(), flush=False)
    processed = result.counters.events[("account_churned", "processed")]
    # 40 days behind the watermark (400): older than watermark - 30 days.
    alerts = result.feed(decoder, [churn_dict(account_id="target", days=360.0)])
    assert result.counters.events[("account_churned", "late")] == 1
    assert result.counters.events[("account_churned", "processed")] == processed
    [alert] = [a for a in alerts if a.rule == "early-churn-unrecovered"]
    assert alert.evidence["days"] == 60.0
    assert alert.severity == "critical"


def test_event_exactly_at_the_lateness_limit_is_not_late(rules, decoder):
    result = run(rules, _watermark_stream(), flush=False)
    result.feed(decoder, [churn_dict(account_id="target", days=370.0)])  # 30 days behind
    assert result.counters.events[("account_churned", "late")] == 0
    assert result.counters.events[("account_churned", "processed")] == 1
    result.feed(decoder, [churn_dict(account_id="w1", days=369.5)])  # 30.5 days behind
    assert result.counters.events[("account_churned", "late")] == 1


def test_late_deal_joins_a_churn_still_in_state(rules, decoder):
    stream = [churn_dict(account_id="c", days=300.0),
              *[deal_dict(account_id=f"w{i}", days=300.0 + i, deal_type="renewal")
                for i in range(1, 101)]]
    result = run(rules, stream, flush=False)
    alerts = result.feed(decoder, [deal_dict(account_id="c", days=250.0)])
    assert result.counters.events[("deal_closed", "late")] == 1
    assert [a.rule for a in alerts if a.rule == "early-churn-unrecovered"] == [
        "early-churn-unrecovered"]


def test_late_event_for_an_expired_account_is_counted_and_finds_nothing(rules, decoder):
    deal = deal_dict(account_id="gone", days=0.0)
    filler = [deal_dict(account_id=f"f{i}", days=float(i), deal_type="renewal")
              for i in range(1, 500)]
    result = run(rules, [deal, *filler], flush=False)
    assert result.engine.accounts.get("gone") is None
    alerts = result.feed(decoder, [churn_dict(account_id="gone", days=10.0)])
    assert alerts == []
    assert result.counters.events[("account_churned", "late")] == 1
    assert sum(result.counters.events.values()) == 501


def test_late_event_does_not_move_the_watermark(rules, decoder):
    result = run(rules, _watermark_stream(), flush=False)
    before = result.engine.accounts.watermark
    result.feed(decoder, [churn_dict(account_id="target", days=100.0)])
    assert result.engine.accounts.watermark == before


# --- aggregate periods and expiry -------------------------------------------------------------


def test_a_period_is_evaluated_before_its_state_expires(rules):
    """A gap in the stream longer than the horizon must not drop a period unevaluated: in
    replay every period is evaluated once (here 5 new logos of team T in 2026-Q1)."""
    five = [deal_dict(team="T", account_id=f"a{i}", days=10.0) for i in range(5)]
    later = deal_dict(team="U", account_id="z", days=500.0)  # 2027-Q2
    result = run(rules, [*five, later])
    assert [(a.group, a.period) for a in result.of("new-logo-payout-share")] == [
        ("T", "2026-Q1")]


def test_a_period_is_evaluated_with_a_gap_shorter_than_the_horizon(rules):
    five = [deal_dict(team="T", account_id=f"a{i}", days=10.0) for i in range(5)]
    later = deal_dict(team="U", account_id="z", days=400.0)
    result = run(rules, [*five, later])
    assert [(a.group, a.period) for a in result.of("new-logo-payout-share")] == [
        ("T", "2026-Q1")]


LONG_CHURN_WINDOW = """\
rules:
  - id: churn-within-half-a-year
    kind: aggregate
    description: share of a rep's deals fully churned within 180 days
    measure: early_churn_share
    group_by: rep_id
    churn:
      churn_type: full
    churn_within_days: 180
    min_deals: 1
    threshold: {at_least: 0.5}
    severity: warning
"""


def test_aggregate_state_stays_bounded_after_a_churn_settles_every_period(rules_dir):
    """A churn that arrives after its deal's period settled (possible when churn_within_days
    exceeds settle_days + lateness) must not stop periods from settling and expiring."""
    (rules_dir / "agg.yaml").write_text(LONG_CHURN_WINDOW)
    pack = load_rule_pack(rules_dir)
    events = [deal_dict(account_id="first", rep_id="R", days=0.0),
              churn_dict(account_id="first", days=170.0)]
    events += [deal_dict(account_id=f"b{i}", rep_id=f"R{i % 5}", days=200.0 + 3 * i)
               for i in range(365)]
    result = run(pack, events, flush=False)
    assert len(result.of("churn-within-half-a-year")) == 1  # R, 2026-Q1: 1 of 1 churned
    # 5 reps; the 395-day horizon spans at most 6 quarters, one more for expiry lag.
    assert len(result.engine.aggregates) <= 5 * 7
    # The same stream without that churn stays bounded: the churn alone makes the difference.
    baseline = run(pack, [events[0], *events[2:]], flush=False)
    assert len(baseline.engine.aggregates) <= 5 * 7


def test_account_and_aggregate_state_survive_a_round_trip_through_json(rules):
    """What the worker's tables write to their changelogs, and read back on recovery."""
    import json

    from unit_helpers import churn_dict, deal_dict, run

    from auditor.engine.state import AccountState, AggregateState

    deals = [deal_dict(account_id="A", team="T", deal_id=f"D{i}", days=float(i),
                       currency="EUR") for i in range(5)]
    result = run(rules, [*deals, churn_dict(account_id="A", days=30.0)], flush=False)
    account = result.engine.accounts.get("A")
    again = AccountState.from_dict(json.loads(json.dumps(account.to_dict())))
    assert again.to_dict() == account.to_dict()
    assert again.fired == account.fired
    assert all(again.has_event(d["event_id"]) for d in [*deals, *account.to_dict()["churns"]])
    assert [d.time for d in again.deals] == [d.time for d in account.deals]
    assert again.deal("D0").amount == account.deal("D0").amount  # converted, not re-converted
    for key, state in result.engine.aggregates.items():
        copy = AggregateState.from_dict(json.loads(json.dumps(state.to_dict())))
        assert copy.to_dict() == state.to_dict()
        assert (copy.totals(), copy.churned_count, copy.churned_upfront) == (
            state.totals(), state.churned_count, state.churned_upfront), key
