"""`auditor rules explain`, on hand-made events: each kind of rule, both outcomes, the last
line agreeing with a replay of the same file."""

import json
import shutil
from pathlib import Path

import pytest
from unit_helpers import churn_dict, deal_dict

from auditor.engine.periods import quarter_of
from auditor.events.models import Deal
from auditor.explain.conditions import number
from auditor.explain.events import BadInput, find_by_id, find_by_line, parse_event_arg
from auditor.explain.explainer import Explanation, UnknownRule, explain
from auditor.explain.specs import RuleBook, load_rule_book
from auditor.replay.runner import Replay
from auditor.rules.loader import default_rules_dir


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return load_rule_book(default_rules_dir())


def write(tmp_path: Path, events: list[dict]) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def replay_fires(book: RuleBook, path: str, rule_id: str, deal: Deal) -> bool:
    """What `auditor replay` finds for the deal and the rule."""
    alerts = []
    Replay(book.pack, on_alert=alerts.append).run_files([path])
    rule = book.pack.by_id()[rule_id]
    if rule.meta.kind != "aggregate":
        return any(a.rule == rule_id and a.account_id == deal.account_id
                   and a.deal_id == deal.deal_id for a in alerts)
    group, period = getattr(deal, rule.group_by), quarter_of(deal.time)[0]
    counted = rule.deal is None or rule.deal(deal)
    return counted and any(a.rule == rule_id and a.group == group and a.period == period
                           for a in alerts)


def explained(book: RuleBook, path: str, line: int, rule_id: str) -> Explanation:
    found = find_by_line(path, line, book.pack.currency)
    result = explain(book, rule_id, found, path)
    assert result.fires == replay_fires(book, path, rule_id, found.deal), result.text()
    return result


def last_line(result: Explanation) -> str:
    return result.text().splitlines()[-1]


def test_a_deal_below_the_discount_stops_at_the_deal_filter(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", discount_pct=0.2),
                            churn_dict(account_id="A1", days=30)])
    result = explained(book, path, 1, "discount-then-churn")
    assert result.text() == (
        f"discount-then-churn (churn-after-deal) on deal D1 of account A1 ({path}:1):\n"
        "  deal filter:\n"
        "    discount_pct 0.20 >= 0.25 ... no   <- stops here\n"
        "  => does not fire: the deal filter does not hold\n")
    assert not result.analysis_fires


def test_a_discounted_deal_then_a_full_churn_fires_with_each_churn_explained(book, tmp_path):
    path = write(tmp_path, [
        deal_dict(deal_id="D1", account_id="A1", discount_pct=0.3,
                  commission={"amount": 2000.0, "paid_upfront": 1500.0, "clawback_days": 180}),
        churn_dict(account_id="A1", days=-10, event_id="C0"),  # before the deal
        churn_dict(account_id="A1", days=50, churn_type="partial", arr_lost=100.0,
                   event_id="C1"),
        churn_dict(account_id="A1", days=100, event_id="C2"),
        churn_dict(account_id="A2", days=100, event_id="other-account"),
    ])
    result = explained(book, path, 1, "discount-then-churn")
    text = result.text()
    assert result.fires and result.analysis_fires
    assert "other-account" not in text
    assert "  churns of account A1 in" in text
    assert "      churn_type partial == full ... no   <- stops here" in text
    assert "    days from the deal to the churn: -10, window 0..365 ... no" in text
    assert "    days from the deal to the churn: 100, window 0..365 ... yes" in text
    assert "clawback" not in text  # the rule does not skip covered churns
    assert last_line(result) == (
        "  => fires: 1 alert (churn C2), severity warning, at risk 1,500.00 USD recoverable")


@pytest.mark.parametrize(("clawback", "fires"), [(180, False), (30, True), (0, True)])
def test_early_churn_unrecovered_says_whether_the_clawback_covers(book, tmp_path, clawback,
                                                                   fires):
    path = write(tmp_path, [
        deal_dict(deal_id="D1", account_id="A1",
                  commission={"amount": 1000.0, "clawback_days": clawback}),
        churn_dict(account_id="A1", days=60, event_id="C1"),
    ])
    result = explained(book, path, 1, "early-churn-unrecovered")
    assert result.fires is fires
    text = result.text()
    if clawback:
        assert (f"    clawback (unless_clawback_covers): day 60 <= commission.clawback_days "
                f"{clawback} ... covers: {'yes' if not fires else 'no'}") in text
    else:
        assert "commission.clawback_days 0, no clawback ... covers: no" in text
    if fires:
        assert last_line(result).startswith("  => fires: 1 alert (churn C1), severity critical")
    else:
        assert "-> not this churn: the deal's clawback recovers it" in text
        assert last_line(result) == "  => does not fire: none of the account's 1 churns qualifies"


def test_a_deal_with_no_churn_in_the_file(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1"),
                            churn_dict(account_id="A2", days=5)])
    result = explained(book, path, 1, "early-churn-unrecovered")
    assert "  no churn of account A1 in" in result.text()
    assert last_line(result) == "  => does not fire: no churn of account A1 in the file"


@pytest.mark.parametrize(("days", "churn_type", "fires"), [
    (100, "full", True), (365, "full", True), (365.5, "full", False), (100, "partial", False),
])
def test_churn_and_resell_looks_back_from_the_deal(book, tmp_path, days, churn_type, fires):
    path = write(tmp_path, [
        churn_dict(account_id="A1", days=0, churn_type=churn_type, event_id="C1"),
        deal_dict(deal_id="D1", account_id="A1", days=days),
    ])
    result = explained(book, path, 2, "churn-and-resell")
    assert result.fires is fires and result.analysis_fires is fires
    shown = number(days)
    assert f"    days from the churn to the deal: {shown}, window 0..365" in result.text()
    if fires:
        assert last_line(result).startswith(
            f"  => fires: the deal came {shown} days after churn C1, severity critical")


def test_the_resell_evidence_is_the_alerts_churn(book, tmp_path):
    path = write(tmp_path, [
        churn_dict(account_id="A1", days=0, event_id="C-old"),
        churn_dict(account_id="A1", days=50, event_id="C-new"),
        deal_dict(deal_id="D1", account_id="A1", days=80),
    ])
    result = explained(book, path, 3, "churn-and-resell")
    assert result.text().count("-> this churn qualifies") == 2
    assert "after churn C-new" in last_line(result)


@pytest.mark.parametrize(("upfront", "fires"), [(900.0, True), (899.99, False)])
def test_tcv_paid_upfront_tests_the_upfront_share(book, tmp_path, upfront, fires):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", term_months=36,
                                      commission={"amount": 1000.0, "paid_upfront": upfront,
                                                  "basis": "tcv"})])
    result = explained(book, path, 1, "tcv-paid-upfront")
    assert result.fires is fires
    text = result.text()
    assert "    term_months 36 > 12 ... yes" in text
    assert "    commission.basis tcv == tcv ... yes" in text
    assert (f"  min_upfront_share: commission.paid_upfront {number(upfront)} >= 0.90 x "
            f"commission.amount 1000 (= 900) ... {'yes' if fires else 'no'}") in text
    if not fires:
        assert last_line(result) == ("  => does not fire: less than 0.90 of the commission was "
                                     "paid upfront (min_upfront_share)")


def test_tcv_paid_upfront_on_a_one_year_deal(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", term_months=12)])
    result = explained(book, path, 1, "tcv-paid-upfront")
    assert "    term_months 12 > 12 ... no   <- stops here" in result.text()
    assert "min_upfront_share" not in result.text()


def _rep_quarter(deals: int, churned: int) -> list[dict]:
    events = [deal_dict(deal_id=f"D{n}", account_id=f"A{n}", rep_id="rep-9", days=n)
              for n in range(deals)]
    events += [churn_dict(account_id=f"A{n}", days=n + 30, event_id=f"C{n}")
               for n in range(churned)]
    return events


@pytest.mark.parametrize(("deals", "churned", "fires", "shown"), [
    (4, 1, True, "value 0.25 >= 0.25 (at_least) ... yes"),
    (5, 1, False, "value 0.20 >= 0.25 (at_least) ... no"),
    (3, 3, False, "not evaluated: 3 deals, fewer than min_deals 4"),
])
def test_rep_early_churn_rate_replays_the_period(book, tmp_path, deals, churned, fires, shown):
    path = write(tmp_path, _rep_quarter(deals, churned))
    result = explained(book, path, 1, "rep-early-churn-rate")  # D0, which churned
    text = result.text()
    assert result.fires is fires
    assert "  counts in: rep_id rep-9, period 2026-Q1" in text
    assert "      -> counts the deal as churned" in text
    assert "this one among them" in text
    assert shown in text
    assert "note:" not in text


def test_an_aggregate_deal_outside_the_filter_counts_nowhere(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="R1", account_id="A1", deal_type="renewal"),
                            *_rep_quarter(4, 1)])
    result = explained(book, path, 1, "rep-early-churn-rate")
    assert not result.fires
    assert last_line(result) == ("  => does not fire: the deal filter does not hold: the deal "
                                 "counts in no period of the rule")


@pytest.mark.parametrize(("renewals", "fires"), [(0, True), (3, False)])
def test_new_logo_payout_share(book, tmp_path, renewals, fires):
    events = [deal_dict(deal_id=f"N{n}", account_id=f"A{n}", team="t-1") for n in range(5)]
    events += [deal_dict(deal_id=f"R{n}", account_id=f"B{n}", team="t-1",
                         deal_type="renewal") for n in range(renewals)]
    path = write(tmp_path, events)
    result = explained(book, path, 1, "new-logo-payout-share")
    assert result.fires is fires
    assert "  a replay of" in result.text()
    share = "1" if not renewals else "0.625"
    assert f"    value {share} > 0.85 (above) ... {'yes' if fires else 'no'}" in result.text()


def test_a_churn_later_than_the_engine_keeps_the_deal_follows_the_replay(book, tmp_path):
    """Out of order beyond the horizon: the conditions hold, the engine had forgotten the deal
    when the churn came; the last line says what the replay did, and a note says why."""
    path = write(tmp_path, [
        deal_dict(deal_id="D1", account_id="A1", discount_pct=0.3),
        deal_dict(deal_id="far", account_id="A2", days=900),
        churn_dict(account_id="A1", days=100, event_id="C1"),
    ])
    result = explained(book, path, 1, "discount-then-churn")
    assert result.analysis_fires and not result.fires
    assert "  note: a replay of" in result.text()
    assert last_line(result) == "  => does not fire: none of the account's 1 churns qualifies"


def test_a_repeated_deal_is_explained_as_the_first_one(book, tmp_path):
    first = deal_dict(deal_id="D1", account_id="A1", discount_pct=0.3)
    again = dict(first, discount_pct=0.1, event_id="evt-again")
    path = write(tmp_path, [first, again, churn_dict(account_id="A1", days=10)])
    result = explained(book, path, 2, "discount-then-churn")
    assert result.header.endswith(f"({path}:1):")
    assert f"  note: {path}:2 repeats deal D1 of {path}:1" in result.text()
    assert "discount_pct 0.30 >= 0.25 ... yes" in result.text()
    assert result.fires


def test_a_line_sent_twice_is_explained_once(book, tmp_path):
    deal = deal_dict(deal_id="D1", account_id="A1", discount_pct=0.3)
    churn = churn_dict(account_id="A1", days=10, event_id="C1")
    path = write(tmp_path, [deal, churn, deal, churn])
    result = explained(book, path, 3, "discount-then-churn")
    assert f"  note: {path}:3 repeats deal D1 of {path}:1" in result.text()
    assert result.text().count("  churn C1 (") == 1
    assert last_line(result).startswith("  => fires: 1 alert (churn C1)")


def test_a_deal_whose_event_id_is_taken_is_not_audited(book, tmp_path):
    churn = churn_dict(account_id="A1", days=-10, event_id="E1")
    path = write(tmp_path, [churn, deal_dict(deal_id="D1", account_id="A1", event_id="E1")])
    result = explained(book, path, 2, "churn-and-resell")
    assert f"{path}:2 repeats the event id E1 of another event" in result.text()
    assert result.analysis_fires and not result.fires
    assert "  note: a replay of" in result.text()


def test_amounts_are_in_the_reporting_currency(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", currency="EUR",
                                      term_months=24, commission={"amount": 1000.0,
                                                                  "basis": "tcv"})])
    result = explained(book, path, 1, "tcv-paid-upfront")
    assert "commission.amount 1080 (= 972) ... yes" in result.text()


def test_a_disabled_rule_does_not_fire(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    text = (rules / "payout.yaml").read_text()
    (rules / "payout.yaml").write_text(text.replace(
        "    labels: {area: payout}\n", "    labels: {area: payout}\n    enabled: false\n", 1))
    book = load_rule_book(rules)
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", term_months=36,
                                      commission={"basis": "tcv"})])
    result = explain(book, "tcv-paid-upfront", find_by_line(path, 1, book.pack.currency), path)
    assert "the rule is disabled (enabled: false" in result.text()
    assert last_line(result) == "  => does not fire: the rule is disabled"


def test_an_unknown_rule_says_did_you_mean(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1")])
    found = find_by_line(path, 1, book.pack.currency)
    with pytest.raises(UnknownRule, match="did you mean 'discount-then-churn'"):
        explain(book, "discount-then-chrun", found, path)
    with pytest.raises(UnknownRule, match="the rules are: churn-and-resell, "):
        explain(book, "zzz", found, path)


def test_a_deal_by_id_needs_its_account_when_two_have_it(book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1"),
                            deal_dict(deal_id="D1", account_id="A2", discount_pct=0.3)])
    currency = book.pack.currency
    with pytest.raises(BadInput, match=r"in 2 accounts .*A1, A2.*give --account"):
        find_by_id(path, "D1", currency)
    found = find_by_id(path, "D1", currency, "A2")
    assert found.where == f"{path}:2" and found.deal.discount_pct == 0.3
    with pytest.raises(BadInput, match="did you mean 'D1'"):
        find_by_id(path, "DD1", currency)


@pytest.mark.parametrize(("line", "message"), [
    (2, "an account_churned event"), (3, "not a valid event"), (4, "the line is blank"),
    (9, "the file has 4 lines"),
])
def test_a_line_that_is_not_a_deal_is_bad_input(book, tmp_path, line, message):
    path = write(tmp_path, [deal_dict(), churn_dict()])
    with open(path, "a") as stream:
        stream.write('{"event_type": "deal_closed"}\n\n')
    with pytest.raises(BadInput, match=message):
        find_by_line(path, line, book.pack.currency)


@pytest.mark.parametrize("value", ["events.jsonl", "events.jsonl:0", "events.jsonl:x", ":3"])
def test_event_must_be_file_and_line(value):
    with pytest.raises(BadInput, match="expected FILE:LINE"):
        parse_event_arg(value)
    assert parse_event_arg("c:/x/events.jsonl:12") == ("c:/x/events.jsonl", 12)
