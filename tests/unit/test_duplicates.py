"""Duplicates: a repeated event_id, or a second deal_closed for a known deal_id, is counted as
`duplicate` and ignored; every event is counted once under exactly one outcome."""

from unit_helpers import churn_dict, deal_dict, raw, run

TCV = "tcv-paid-upfront"


def _tcv_deal(**kw):
    return deal_dict(term_months=24, commission={"basis": "tcv"}, **kw)


def test_same_deal_event_twice_is_a_duplicate_without_a_second_alert(rules, decoder):
    deal = _tcv_deal()
    result = run(rules, [deal], flush=False)
    assert len(result.of(TCV)) == 1
    assert result.feed(decoder, [deal]) == []
    assert result.counters.events[("deal_closed", "processed")] == 1
    assert result.counters.events[("deal_closed", "duplicate")] == 1
    assert len(result.of(TCV)) == 1


def test_same_churn_event_twice_is_a_duplicate_without_a_second_alert(rules, decoder):
    deal = deal_dict()
    churn = churn_dict(days=10.0)
    result = run(rules, [deal, churn], flush=False)
    assert len(result.of("early-churn-unrecovered")) == 1
    assert result.feed(decoder, [churn]) == []
    assert result.counters.events[("account_churned", "processed")] == 1
    assert result.counters.events[("account_churned", "duplicate")] == 1


def test_duplicate_churn_arriving_before_its_deal_is_still_a_duplicate(rules):
    churn = churn_dict(days=10.0)
    deal = deal_dict()
    result = run(rules, [churn, churn, deal])
    assert len(result.of("early-churn-unrecovered")) == 1
    assert result.counters.events[("account_churned", "duplicate")] == 1


def test_event_id_shared_by_a_deal_and_a_churn_is_a_duplicate(rules):
    deal = deal_dict()
    churn = churn_dict(days=10.0, event_id=deal["event_id"])
    result = run(rules, [deal, churn])
    assert result.counters.events[("account_churned", "duplicate")] == 1
    assert result.of("early-churn-unrecovered") == []


def test_same_deal_id_with_a_new_event_id_is_a_duplicate_and_the_first_stands(rules):
    first = deal_dict(deal_id="D-1", commission={"amount": 1000.0, "paid_upfront": 400.0})
    # The second claims a multi-year tcv deal paid upfront: it must change nothing.
    second = deal_dict(deal_id="D-1", term_months=36,
                       commission={"basis": "tcv", "amount": 5000.0, "paid_upfront": 5000.0})
    assert first["event_id"] != second["event_id"]
    churn = churn_dict(days=10.0)
    result = run(rules, [first, second, churn])
    assert result.counters.events[("deal_closed", "processed")] == 1
    assert result.counters.events[("deal_closed", "duplicate")] == 1
    assert result.of(TCV) == []
    [alert] = result.of("early-churn-unrecovered")
    assert alert.at_risk == 400.0  # the first deal's paid_upfront


def test_duplicate_deal_id_does_not_count_twice_in_aggregates(rules):
    deals = [deal_dict(deal_id=f"D{i}", account_id=f"a{i}", team="t") for i in range(4)]
    again = deal_dict(deal_id="D0", account_id="a0", team="t")
    result = run(rules, [*deals, again])
    assert result.of("new-logo-payout-share") == []  # still 4 deals, one short of 5


def test_ids_are_unique_per_account_the_partition_key(rules):
    """Departure from DESIGN, documented in README "Guarantees": duplicates are recognised within
    an account (the partition key, so the worker and replay agree); the same deal_id or event_id
    on another account is another account's event."""
    first = _tcv_deal(deal_id="D-9", account_id="acct-A")
    second = _tcv_deal(deal_id="D-9", account_id="acct-B")
    third = _tcv_deal(deal_id="D-10", account_id="acct-C", event_id=first["event_id"])
    result = run(rules, [first, second, third, first])
    assert result.counters.events[("deal_closed", "duplicate")] == 1
    assert result.counters.events[("deal_closed", "processed")] == 3
    assert sorted(a.account_id for a in result.of(TCV)) == ["acct-A", "acct-B", "acct-C"]


def test_events_in_equal_the_sum_of_outcomes(rules):
    deal = deal_dict(days=200.0)
    churn = churn_dict(days=210.0)
    inputs = [
        deal,
        deal,  # duplicate
        deal_dict(deal_id=deal["deal_id"], days=201.0),  # duplicate deal_id
        churn,
        churn,  # duplicate
        b"not json",  # invalid
        raw({**deal_dict(), "acv": -1}),  # invalid
        raw(churn_dict(currency="XYZ")),  # invalid
        deal_dict(days=300.0, account_id="other"),  # moves the watermark on
        churn_dict(days=100.0, account_id="late"),  # late: 200 days behind the watermark
        deal_dict(days=0.0, account_id="late"),  # late
    ]
    result = run(rules, inputs)
    counts = result.counters.events_by_outcome()
    assert counts == {"processed": 3, "duplicate": 3, "invalid": 3, "late": 2}
    assert sum(result.counters.events.values()) == len(inputs) == result.inputs
    assert sum(result.counters.deadletters.values()) == 3
    assert result.counters.events[("deal_closed", "invalid")] == 1
    assert result.counters.events[("account_churned", "invalid")] == 1
    assert result.counters.events[("unknown", "invalid")] == 1
