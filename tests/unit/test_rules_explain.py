"""`auditor rules explain`, on hand-made events: each kind of rule, both outcomes, the last
line agreeing with a replay of the same file."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import Field
from unit_helpers import churn_dict, deal_dict

from auditor.engine.findings import deal_alert, time_text
from auditor.engine.periods import quarter_of
from auditor.engine.state import AccountState
from auditor.events.models import Churn, Deal
from auditor.explain.conditions import number
from auditor.explain.events import BadInput, find_by_id, find_by_line, parse_event_arg
from auditor.explain.explainer import Explanation, UnknownRule, explain
from auditor.explain.specs import RuleBook, load_rule_book
from auditor.replay.runner import Replay
from auditor.rules.compiled import CompiledRule, Found, MoneyClass, RuleMeta
from auditor.rules.filters import Predicate
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds import register, unregister
from auditor.rules.loader import default_rules_dir
from auditor.rules.spec import Filter, RuleSpecBase, Severity


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
    if rule.meta.kind == "deal-after-deal":  # about the second deal, naming the first
        return any(a.rule == rule_id and a.account_id == deal.account_id
                   and deal.deal_id in (a.deal_id, a.evidence["first_deal_id"]) for a in alerts)
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


RENEWAL = "renewal-discount-after-new-logo"


def _new_logo_and_renewal(days: float = 90.0, rep: str = "rep-1",
                          discount: float = 0.35) -> list[dict]:
    return [deal_dict(deal_id="N1", account_id="A1", event_id="e-N1"),
            deal_dict(deal_id="R1", account_id="A1", deal_type="renewal", rep_id=rep,
                      discount_pct=discount, days=days, event_id="e-R1")]


def test_a_discounted_renewal_fires_as_the_second_deal_of_its_new_logo(book, tmp_path):
    events = _new_logo_and_renewal()
    events.insert(1, dict(events[0], event_id="e-N1-again"))  # the same deal sent again
    events.append(deal_dict(deal_id="N2", account_id="A2", days=10))  # another account
    path = write(tmp_path, events)
    result = explained(book, path, 3, RENEWAL)
    assert result.fires and result.analysis_fires
    assert result.text() == (
        f"{RENEWAL} (deal-after-deal) on deal R1 of account A1 ({path}:3):\n"
        "  as the second deal:\n"
        "    second filter:\n"
        "      deal_type renewal == renewal ... yes\n"
        "      discount_pct 0.35 >= 0.30 ... yes\n"
        f"    other deals of account A1 in {path}: 1\n"
        f"    deal N1 ({path}:1, 2026-01-05T00:00:00Z, new_logo, rep rep-1) as the first:\n"
        "      first filter:\n"
        "        deal_type new_logo == new_logo ... yes\n"
        "      days from deal N1 to this one: 90, window 0..120 ... yes\n"
        "      same_rep: deal N1 by rep-1, this one by rep-1 ... yes\n"
        "      -> this pair raises an alert: severity warning\n"
        "  as the first deal:\n"
        "    first filter:\n"
        "      deal_type renewal == new_logo ... no   <- stops here\n"
        "    -> not the first deal of a pair: the first filter does not hold\n"
        "  => fires: 1 alert (deal R1 90 days after deal N1), severity warning\n")


def test_a_new_logo_fires_as_the_first_deal_of_a_later_renewal(book, tmp_path):
    events = [deal_dict(deal_id="R0", account_id="A1", deal_type="renewal", discount_pct=0.4,
                        days=-30, event_id="e-R0"),  # before the new logo: never its second
              *_new_logo_and_renewal()]
    path = write(tmp_path, events)
    result = explained(book, path, 2, RENEWAL)
    assert result.fires and result.analysis_fires
    assert result.text() == (
        f"{RENEWAL} (deal-after-deal) on deal N1 of account A1 ({path}:2):\n"
        "  as the second deal:\n"
        "    second filter:\n"
        "      deal_type new_logo == renewal ... no   <- stops here\n"
        "      discount_pct 0.10 >= 0.30 ... no\n"
        "    -> not the second deal of a pair: the second filter does not hold\n"
        "  as the first deal:\n"
        "    first filter:\n"
        "      deal_type new_logo == new_logo ... yes\n"
        f"    later deals of account A1 in {path}: 1\n"
        f"    deal R1 ({path}:3, 2026-04-05T00:00:00Z, renewal, rep rep-1) as the second:\n"
        "      second filter:\n"
        "        deal_type renewal == renewal ... yes\n"
        "        discount_pct 0.35 >= 0.30 ... yes\n"
        "      days from this one to deal R1: 90, window 0..120 ... yes\n"
        "      same_rep: deal R1 by rep-1, this one by rep-1 ... yes\n"
        "      -> this pair raises an alert: severity warning\n"
        "  => fires: 1 alert (deal R1 90 days after deal N1), severity warning\n")


def test_a_renewal_a_fraction_of_a_day_past_the_window_does_not_fire(book, tmp_path):
    path = write(tmp_path, _new_logo_and_renewal(days=120.5))
    renewal = explained(book, path, 2, RENEWAL)
    new_logo = explained(book, path, 1, RENEWAL)
    assert not renewal.fires and not renewal.analysis_fires and not new_logo.fires
    assert ("      days from deal N1 to this one: 120.50, window 0..120 ... no\n"
            "      same_rep: deal N1 by rep-1, this one by rep-1 ... yes\n"
            "      -> not this pair: outside the window\n") in renewal.text()
    assert last_line(renewal) == (
        "  => does not fire: as the second deal, none of the account's 1 other deals "
        "qualifies as its first; as the first deal, the first filter does not hold")
    assert ("      days from this one to deal R1: 120.50, window 0..120 ... no\n"
            in new_logo.text())
    assert last_line(new_logo) == (
        "  => does not fire: as the second deal, the second filter does not hold; as the "
        "first deal, none of the account's 1 later deals qualifies as its second")
    assert "note:" not in renewal.text() + new_logo.text()


def test_a_renewal_by_another_rep_does_not_fire(book, tmp_path):
    path = write(tmp_path, _new_logo_and_renewal(rep="rep-2"))
    result = explained(book, path, 2, RENEWAL)
    assert not result.fires and not result.analysis_fires
    assert ("      days from deal N1 to this one: 90, window 0..120 ... yes\n"
            "      same_rep: deal N1 by rep-1, this one by rep-2 ... no\n"
            "      -> not this pair: not the same rep\n") in result.text()
    assert last_line(result) == (
        "  => does not fire: as the second deal, none of the account's 1 other deals "
        "qualifies as its first; as the first deal, the first filter does not hold")


def test_a_renewal_below_the_discount_stops_at_the_second_filter(book, tmp_path):
    path = write(tmp_path, _new_logo_and_renewal(discount=0.25))
    result = explained(book, path, 2, RENEWAL)
    assert not result.fires and not result.analysis_fires
    assert result.text() == (
        f"{RENEWAL} (deal-after-deal) on deal R1 of account A1 ({path}:2):\n"
        "  as the second deal:\n"
        "    second filter:\n"
        "      deal_type renewal == renewal ... yes\n"
        "      discount_pct 0.25 >= 0.30 ... no   <- stops here\n"
        "    -> not the second deal of a pair: the second filter does not hold\n"
        "  as the first deal:\n"
        "    first filter:\n"
        "      deal_type renewal == new_logo ... no   <- stops here\n"
        "    -> not the first deal of a pair: the first filter does not hold\n"
        "  => does not fire: as the second deal, the second filter does not hold; as the "
        "first deal, the first filter does not hold\n")


def test_a_renewal_later_than_the_engine_keeps_its_new_logo_follows_the_replay(book,
                                                                              tmp_path):
    """Out of order beyond the horizon: the pair qualifies, the engine had forgotten the new
    logo when the renewal came."""
    events = _new_logo_and_renewal()
    events.insert(1, deal_dict(deal_id="far", account_id="A2", days=900))
    path = write(tmp_path, events)
    result = explained(book, path, 3, RENEWAL)
    assert result.analysis_fires and not result.fires
    assert "      -> this pair raises an alert: severity warning\n" in result.text()
    assert "  note: a replay of" in result.text()
    assert last_line(result) == ("  => does not fire: no alert about a pair of this deal in "
                                 "the replay")


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
    assert (
        "  measure early_churn_share: share of new-logo and expansion deals fully churned "
        "early\n"
        "    value = numerator / denominator; min_deals 4 in the period\n"
        "    numerator: number of deals counted as churned\n"
        "    denominator: number of deals\n"
        f"  a replay of {path}, rep_id rep-9 in 2026-Q1: {deals} deals, this one among them\n"
        f"    numerator: {churned} deal{'s' if churned > 1 else ''}, this one among them\n"
        f"    denominator: {deals} deals, this one among them\n") in text
    assert shown in text
    assert "note:" not in text


def test_a_deal_not_churned_is_not_among_the_churned(book, tmp_path):
    path = write(tmp_path, _rep_quarter(4, 1))
    result = explained(book, path, 4, "rep-early-churn-rate")  # D3, which did not churn
    assert "    numerator: 1 deal\n    denominator: 4 deals, this one among them\n" in (
        result.text())
    assert last_line(result).startswith("  => fires: rep_id rep-9 in 2026-Q1: early churn "
                                        "share 0.25 crosses at_least 0.25, severity critical")


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


def _plan_quarter(renewals: int, renewal_rate: float) -> list[dict]:
    """Three new logos paid 10% of ACV, and renewals paid `renewal_rate` of theirs."""
    events = [deal_dict(deal_id=f"N{n}", account_id=f"A{n}", plan_id="p-1", acv=10000.0,
                        commission={"amount": 1000.0}) for n in range(3)]
    events += [deal_dict(deal_id=f"R{n}", account_id=f"B{n}", plan_id="p-1",
                         deal_type="renewal", acv=10000.0 if renewal_rate else 0.0,
                         commission={"amount": 10000.0 * renewal_rate})
               for n in range(renewals)]
    return events


def test_renewal_rate_gap_shows_each_quantity_of_its_measure(book, tmp_path):
    path = write(tmp_path, _plan_quarter(3, 0.01))
    result = explained(book, path, 4, "renewal-rate-gap")  # a renewal
    assert result.fires
    assert result.text().split("  counts in: ")[1] == (
        "plan_id p-1, period 2026-Q1 (closed_at 2026-01-05T00:00:00Z)\n"
        "  measure renewal_rate_ratio: renewal commission rate relative to new logos\n"
        "    value = numerator / denominator\n"
        "    numerator (renewal): sum of commission.amount / sum of acv over deals with "
        "deal_type == renewal; min_deals 3\n"
        "    denominator (new_logo): sum of commission.amount / sum of acv over deals with "
        "deal_type == new_logo; min_deals 3\n"
        f"  a replay of {path}, plan_id p-1 in 2026-Q1: 6 deals, this one among them\n"
        "    numerator (renewal): 3 deals, commission.amount 300.00 / acv 30,000.00 = 0.01, "
        "this one among them\n"
        "    denominator (new_logo): 3 deals, commission.amount 3,000.00 / acv 30,000.00 = "
        "0.10\n"
        "    value 0.1 < 0.30 (below) ... yes\n"
        "  => fires: plan_id p-1 in 2026-Q1: renewal rate ratio 0.1 crosses below 0.30, "
        "severity warning\n")


@pytest.mark.parametrize(("renewals", "rate", "why"), [
    (2, 0.01, "numerator (renewal) has 2 deals, fewer than its min_deals 3"),
    (3, 0.0, "numerator (renewal): the sum of acv is 0"),
])
def test_an_aggregate_not_evaluated_says_which_quantity_stops_it(book, tmp_path, renewals,
                                                                 rate, why):
    path = write(tmp_path, _plan_quarter(renewals, rate))
    result = explained(book, path, 1, "renewal-rate-gap")
    assert f"    not evaluated: {why}\n" in result.text()
    assert last_line(result) == (f"  => does not fire: plan_id p-1 in 2026-Q1 is not "
                                 f"evaluated: {why}")


def test_commission_retention_counts_the_churned_deals_out_of_the_numerator(book, tmp_path):
    events = [deal_dict(deal_id=f"D{n}", account_id=f"A{n}", plan_id="p-2", days=n,
                        commission={"amount": 1000.0 + n}) for n in range(5)]
    events += [churn_dict(account_id=f"A{n}", days=n + 200, event_id=f"C{n}")
               for n in range(2)]
    path = write(tmp_path, events)
    churned = explained(book, path, 1, "commission-retention-plan")  # D0, churned
    kept = explained(book, path, 5, "commission-retention-plan")  # D4, still a customer
    assert churned.fires and kept.fires
    assert (
        "  measure commission_retention: share of commission paid on accounts still customers "
        "12 months later\n"
        "    value = numerator / denominator; min_deals 5 in the period\n"
        "    numerator: sum of commission.amount over deals not counted as churned\n"
        "    denominator: sum of commission.amount over all deals\n") in churned.text()
    assert ("    numerator: 3 deals, commission.amount 3,009.00\n"
            "    denominator: 5 deals, commission.amount 5,010.00, this one among them\n"
            "    value 0.600599 < 0.80 (below) ... yes\n") in churned.text()
    assert ("    numerator: 3 deals, commission.amount 3,009.00, this one among them\n"
            in kept.text())
    assert last_line(churned) == (
        "  => fires: plan_id p-2 in 2026-Q1: commission retention 0.600599 crosses below "
        "0.80, severity warning")


IN_PLACE = """\
lists:
  big_teams: [t-1, t-2]
rules:
  - id: team-expansion-share
    kind: aggregate
    description: Little of a team's commission goes to expansions.
    measure:
      describe: share of commission on expansions
      numerator: {sum: commission.amount, where: {deal_type: expansion, team: {in_list: big_teams}}}
      denominator: {count: deals}
    group_by: team
    threshold: {below: 500}
    severity: info
"""


def test_a_measure_written_in_place_is_described_from_its_data(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(default_rules_dir() / "currency.yaml", rules)
    (rules / "r.yaml").write_text(IN_PLACE)
    book = load_rule_book(rules)
    path = write(tmp_path, [
        deal_dict(deal_id="E1", account_id="A1", team="t-1", deal_type="expansion",
                  commission={"amount": 300.0}),
        deal_dict(deal_id="N1", account_id="A2", team="t-1")])
    result = explained(book, path, 2, "team-expansion-share")
    assert result.fires
    assert (
        "  measure: share of commission on expansions\n"
        "    value = numerator / denominator\n"
        "    numerator: sum of commission.amount over deals with deal_type == expansion and "
        "team in big_teams [t-1, t-2]\n"
        "    denominator: number of deals\n"
        f"  a replay of {path}, team t-1 in 2026-Q1: 2 deals, this one among them\n"
        "    numerator: 1 deal, commission.amount 300.00\n"
        "    denominator: 2 deals, this one among them\n"
        "    value 150 < 500 (below) ... yes\n") in result.text()
    assert last_line(result) == ("  => fires: team t-1 in 2026-Q1: share of commission on "
                                 "expansions 150 crosses below 500, severity info")


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


# A kind explain knows nothing of, added as a module would be: its filters (one of them named
# `lost`, on churns) and the replay's verdict.
class LostBigDealSpec(RuleSpecBase):
    """A churn of an account after a deal of at least `min_acv`."""

    FILTERS: ClassVar[dict[str, str]] = {"deal": "deal", "lost": "churn"}

    kind: Literal["trial-lost-big-deal"]
    deal: Filter = Field(default_factory=dict)
    lost: Filter = Field(default_factory=dict)
    min_acv: float
    severity: Severity


@dataclass(frozen=True, slots=True, eq=False)
class LostBigDeal(CompiledRule):
    meta: RuleMeta
    deal: Predicate | None
    lost: Predicate | None
    min_acv: float
    severity: str
    money: MoneyClass | None = None

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        for churn in state.churns:
            self._pair(deal, churn, found)

    def on_churn(self, churn: Churn, state: AccountState, found: Found) -> None:
        for deal in state.deals:
            self._pair(deal, churn, found)

    def _pair(self, deal: Deal, churn: Churn, found: Found) -> None:
        if ((self.deal is None or self.deal(deal)) and (self.lost is None or self.lost(churn))
                and deal.acv >= self.min_acv and churn.time >= deal.time):
            found.alerts.append(deal_alert(
                self.meta, (deal.account_id, deal.deal_id, churn.event_id), self.severity,
                time_text(churn.time), f"Big deal {deal.deal_id} lost.", 0.0, None,
                found.currency, deal, {"churn_event_id": churn.event_id}))

    def window_days(self) -> float:
        return 365.0

    def severities(self) -> tuple[str, ...]:
        return (self.severity,)


def _compile_lost_big_deal(spec: LostBigDealSpec, ctx: CompileContext) -> LostBigDeal:
    return LostBigDeal(ctx.meta, ctx.filter(spec.deal), ctx.filter(spec.lost, "churn"),
                       spec.min_acv, spec.severity)


TRIAL_KIND = RuleKind(LostBigDealSpec, _compile_lost_big_deal)
TRIAL_RULES = """\
rules:
  - id: big-deal-lost
    kind: trial-lost-big-deal
    description: A big new-logo deal whose account fully churned.
    deal: {deal_type: new_logo}
    lost: {churn_type: full}
    min_acv: 20000
    severity: warning
"""


@pytest.fixture
def trial_book(tmp_path):
    register(TRIAL_KIND)
    try:
        rules = tmp_path / "rules"
        rules.mkdir()
        shutil.copy(default_rules_dir() / "currency.yaml", rules)
        (rules / "trial.yaml").write_text(TRIAL_RULES)
        yield load_rule_book(rules)
    finally:
        unregister(TRIAL_KIND.name)


def test_an_unknown_kind_is_explained_by_its_filters_and_the_replay(trial_book, tmp_path):
    path = write(tmp_path, [
        deal_dict(deal_id="D1", account_id="A1", acv=25000.0),
        churn_dict(account_id="A1", days=10, churn_type="partial", arr_lost=100.0,
                   event_id="C1"),
        churn_dict(account_id="A1", days=20, event_id="C2"),
    ])
    result = explained(trial_book, path, 1, "big-deal-lost")
    assert result.fires and result.analysis_fires
    assert result.text() == (
        f"big-deal-lost (trial-lost-big-deal) on deal D1 of account A1 ({path}:1):\n"
        "  deal filter:\n"
        "    deal_type new_logo == new_logo ... yes\n"
        f"  churns of account A1 in {path}: 2\n"
        f"  churn C1 ({path}:2, 2026-01-15T00:00:00Z, partial, arr_lost 100):\n"
        "    lost filter:\n"
        "      churn_type partial == full ... no   <- stops here\n"
        "    -> does not pass the rule's churn filters\n"
        f"  churn C2 ({path}:3, 2026-01-25T00:00:00Z, full, arr_lost 12000):\n"
        "    lost filter:\n"
        "      churn_type full == full ... yes\n"
        "    -> passes the rule's churn filters\n"
        "  what else a trial-lost-big-deal rule tests is not broken down here: the verdict "
        "is a replay's\n"
        "  => fires: 1 alert, severity warning\n")


@pytest.mark.parametrize(("deal", "churn_type", "reason"), [
    ({"acv": 5000.0}, "full", "no alert about the deal in the replay"),  # below min_acv
    ({"acv": 25000.0, "deal_type": "renewal"}, "full", "the deal filter does not hold"),
    ({"acv": 25000.0}, "partial", "none of the account's 1 churns passes its filters"),
])
def test_an_unknown_kind_that_does_not_fire_says_what_stopped_it(trial_book, tmp_path, deal,
                                                                 churn_type, reason):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", **deal),
                            churn_dict(account_id="A1", days=10, churn_type=churn_type)])
    result = explained(trial_book, path, 1, "big-deal-lost")
    assert not result.fires
    assert last_line(result) == f"  => does not fire: {reason}"
    assert "note:" not in result.text()


# Exceptions: a finding an exception of the rule matched is not an alert; the verdict names the
# exception, and the conditions holding is no disagreement.
EXCEPTED_RULES = """\
rules:
  - id: upfront-new-logo
    kind: deal
    description: A new-logo deal paid half or more of its commission upfront.
    deal: {deal_type: new_logo}
    min_upfront_share: 0.5
    severity: warning
    at_risk: paid_upfront
    money_class: exposure
    exceptions:
      - name: legacy-account
        reason: Signed under the 2024 master agreement.
        owner: finance-ops
        expires: 2099-06-30
        account_id: legacy-1
      - name: old-plan-discounts
        reason: The old plan paid discounted deals upfront by design.
        owner: comp-committee
        expires: 2099-12-31
        plan_id: [plan-old, plan-older]
        deal: {discount_pct: {gte: 0.2}}
      - name: lapsed
        reason: A pilot that ended in 2025.
        owner: sales-ops
        expires: 2025-12-31
        account_id: pilot-1

  - id: early-churn
    kind: churn-after-deal
    description: A deal whose account fully churned within 90 days.
    deal: {deal_type: new_logo}
    churn: {churn_type: full}
    within_days: 90
    severity: warning
    at_risk: none
    exceptions:
      - name: migration-january
        reason: Accounts moved to the new billing entity in January.
        owner: billing-ops
        expires: 2026-01-20
        account_id: [moved-1, moved-2]
      - name: moved-accounts
        reason: The moved accounts churn on paper only.
        owner: billing-ops
        expires: 2099-12-31
        account_id: moved-1

  - id: team-new-logo-share
    kind: aggregate
    description: Nearly all of a team's commission in the quarter went to new logos.
    measure: new_logo_commission_share
    group_by: team
    min_deals: 1
    threshold: {above: 0.85}
    severity: warning
    exceptions:
      - name: team-launch
        reason: A team launched in Q1 sells new logos only in its first quarter.
        owner: sales-ops
        expires: 2026-03-31
        team: [team-new, team-newer]
"""


@pytest.fixture
def excepted_book(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(default_rules_dir() / "currency.yaml", rules)
    (rules / "rules.yaml").write_text(EXCEPTED_RULES)
    return load_rule_book(rules)


def _source(book: RuleBook, rule_id: str, name: str) -> str:
    return next(e.source for e in book.pack.by_id()[rule_id].meta.exceptions if e.name == name)


def test_a_deal_finding_excepted_names_the_exception_and_what_it_matched(excepted_book,
                                                                       tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="legacy-1")])
    result = explained(excepted_book, path, 1, "upfront-new-logo")
    assert not result.fires and result.analysis_fires
    assert [item.exception.name for item in result.excepted] == ["legacy-account"]
    source = _source(excepted_book, "upfront-new-logo", "legacy-account")
    assert result.text() == (
        f"upfront-new-logo (deal) on deal D1 of account legacy-1 ({path}:1):\n"
        "  deal filter:\n"
        "    deal_type new_logo == new_logo ... yes\n"
        "  min_upfront_share: commission.paid_upfront 1200 >= 0.50 x commission.amount 1200 "
        "(= 600) ... yes\n"
        "  excepted in the replay: deal D1, severity warning, at risk 1,200.00 USD exposure\n"
        f"    exception legacy-account ({source}):\n"
        "      account_id legacy-1 == legacy-1 ... yes\n"
        "      day of the finding 2026-01-05 <= expires 2099-06-30 ... yes\n"
        "  => does not fire: excepted by legacy-account (owner finance-ops, until 2099-06-30: "
        "Signed under the 2024 master agreement.)\n")
    assert "note:" not in result.text()


def test_an_exception_with_a_deal_filter_shows_it_on_the_deal(excepted_book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", plan_id="plan-old",
                                      discount_pct=0.3)])
    result = explained(excepted_book, path, 1, "upfront-new-logo")
    source = _source(excepted_book, "upfront-new-logo", "old-plan-discounts")
    assert (
        f"    exception old-plan-discounts ({source}):\n"
        "      plan_id plan-old in [plan-old, plan-older] ... yes\n"
        "      deal filter (deal D1):\n"
        "        discount_pct 0.30 >= 0.20 ... yes\n"
        "      day of the finding 2026-01-05 <= expires 2099-12-31 ... yes\n") in result.text()
    assert last_line(result) == (
        "  => does not fire: excepted by old-plan-discounts (owner comp-committee, until "
        "2099-12-31: The old plan paid discounted deals upfront by design.)")


@pytest.mark.parametrize("deal", [
    {"account_id": "A1"},  # no exception names it
    {"account_id": "A1", "plan_id": "plan-old", "discount_pct": 0.1},  # its deal filter fails
    {"account_id": "pilot-1"},  # expired before the finding
])
def test_an_exception_that_does_not_match_leaves_the_verdict(excepted_book, tmp_path, deal):
    path = write(tmp_path, [deal_dict(deal_id="D1", **deal)])
    result = explained(excepted_book, path, 1, "upfront-new-logo")
    assert result.fires and result.analysis_fires and not result.excepted
    assert "excepted" not in result.text() and "note:" not in result.text()
    assert last_line(result) == "  => fires: severity warning, at risk 1,200.00 USD exposure"


def test_join_findings_excepted_by_two_exceptions_list_each(excepted_book, tmp_path):
    """The first exception expires between the two churns: each finding names its own."""
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="moved-1"),
                            churn_dict(account_id="moved-1", days=10, event_id="C1"),
                            churn_dict(account_id="moved-1", days=30, event_id="C2")])
    result = explained(excepted_book, path, 1, "early-churn")
    assert not result.fires and result.analysis_fires
    text = result.text()
    assert ("  excepted in the replay: deal D1 with churn C1, severity warning\n"
            f"    exception migration-january "
            f"({_source(excepted_book, 'early-churn', 'migration-january')}):\n"
            "      account_id moved-1 in [moved-1, moved-2] ... yes\n"
            "      day of the finding 2026-01-15 <= expires 2026-01-20 ... yes\n") in text
    assert "      day of the finding 2026-02-04 <= expires 2099-12-31 ... yes\n" in text
    assert "note:" not in text
    assert last_line(result) == (
        "  => does not fire: excepted by migration-january (owner billing-ops, until "
        "2026-01-20: Accounts moved to the new billing entity in January.); by moved-accounts "
        "(owner billing-ops, until 2099-12-31: The moved accounts churn on paper only.)")


def test_an_aggregate_finding_excepted_names_the_exception(excepted_book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", team="team-new"),
                            deal_dict(deal_id="D2", account_id="A2", team="team-new")])
    result = explained(excepted_book, path, 1, "team-new-logo-share")
    assert not result.fires and result.analysis_fires
    source = _source(excepted_book, "team-new-logo-share", "team-launch")
    assert result.text().split("    value 1 > 0.85 (above) ... yes\n")[1] == (
        "  excepted in the replay: team team-new in 2026-Q1, severity warning\n"
        f"    exception team-launch ({source}):\n"
        "      team team-new in [team-new, team-newer] ... yes\n"
        "      last day of the period 2026-03-31 <= expires 2026-03-31 ... yes\n"
        "  => does not fire: excepted by team-launch (owner sales-ops, until 2026-03-31: A team "
        "launched in Q1 sells new logos only in its first quarter.)\n")
    assert "note:" not in result.text()


@pytest.mark.parametrize(("team", "days"), [("team-old", 0), ("team-new", 90)])
def test_an_aggregate_exception_that_does_not_match_leaves_the_verdict(excepted_book,
                                                                       tmp_path, team, days):
    """Another team, or the next quarter (past the exception's expiry)."""
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="A1", team=team, days=days)])
    result = explained(excepted_book, path, 1, "team-new-logo-share")
    assert result.fires and not result.excepted
    assert "excepted" not in result.text()
    quarter = "2026-Q1" if not days else "2026-Q2"
    assert last_line(result) == (
        f"  => fires: team {team} in {quarter}: new logo commission share 1 crosses above "
        "0.85, severity warning")


def test_a_join_rule_firing_beside_an_excepted_finding_says_both(excepted_book, tmp_path):
    path = write(tmp_path, [deal_dict(deal_id="D1", account_id="moved-2"),
                            churn_dict(account_id="moved-2", days=10, event_id="C1"),
                            churn_dict(account_id="moved-2", days=30, event_id="C2")])
    result = explained(excepted_book, path, 1, "early-churn")
    assert result.fires and result.analysis_fires
    assert "  excepted in the replay: deal D1 with churn C1, severity warning\n" in (
        result.text())
    assert "note:" not in result.text()
    assert last_line(result) == ("  => fires: 1 alert (churn C2), severity warning; 1 more "
                                 "finding excepted by migration-january")
