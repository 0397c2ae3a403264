"""`auditor rules explain`, its filters: condition by condition, each check compiled by the
filter compiler, so the explanation's verdict is the compiled predicate's on any event."""

import random
import shutil
import textwrap
from pathlib import Path

import pytest
from unit_helpers import churn_dict, deal_dict, decode_all

from auditor.events.decode import EventDecoder
from auditor.explain.conditions import explain_filter, filter_text, number, split_condition
from auditor.explain.specs import load_rule_book
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS
from auditor.rules.kind import FIELDS_OF
from auditor.rules.loader import default_rules_dir
from auditor.rules.spec import Comparison

# Every kind of condition the format has, on numbers, text and named lists.
FILTERS = """\
lists:
  big_teams: [team-a, team-b]
  odd_plans: [plan-x]
rules:
  - id: every-operator
    kind: deal
    description: every comparison at once
    deal:
      discount_pct: {gte: 0.1, lt: 0.4}
      acv: {gt: 5000, lte: 60000}
      term_months: {ne: 24}
      team: {in_list: big_teams}
      plan_id: {not_in_list: odd_plans}
      deal_type: [new_logo, expansion]
      commission.basis: acv
    severity: info
    at_risk: none
  - id: in-and-not-in
    kind: deal
    description: in, not_in and eq on numbers
    deal:
      rep_id: {in: [rep-1, rep-2, rep-3], not_in: [rep-3]}
      term_months: {eq: 12}
      commission.clawback_days: {lte: 90}
      commission.rate: {gt: 0.05}
    severity: info
    at_risk: none
  - id: churn-side
    kind: churn-after-deal
    description: a churn filter of each form
    deal:
      deal_type: {ne: renewal}
    churn:
      churn_type: {in: [full]}
      arr_lost: {gte: 1000, lt: 50000}
      currency: [USD, EUR]
    within_days: 30
    severity: info
    at_risk: none
"""


def _random_deal(rng: random.Random) -> dict:
    amount = rng.choice([0.0, 500.0, 1200.0, 4000.0])
    return deal_dict(
        account_id=rng.choice(["a1", "a2"]),
        rep_id=rng.choice(["rep-1", "rep-2", "rep-3", "rep-4"]),
        team=rng.choice(["team-a", "team-b", "team-c"]),
        plan_id=rng.choice(["plan-a", "plan-x"]),
        deal_type=rng.choice(["new_logo", "expansion", "renewal"]),
        term_months=rng.choice([1, 12, 13, 24, 36]),
        acv=rng.choice([0.0, 5000.0, 5000.01, 20000.0, 60000.0, 60000.5]),
        discount_pct=rng.choice([0.0, 0.0999, 0.1, 0.25, 0.3999, 0.4, 1.0]),
        currency=rng.choice(["USD", "EUR"]),
        commission={"amount": amount, "paid_upfront": amount * rng.choice([0.0, 0.5, 1.0]),
                    "basis": rng.choice(["acv", "tcv"]),
                    "rate": rng.choice([0.0, 0.05, 0.1]),
                    "clawback_days": rng.choice([0, 30, 90, 91, 180])},
    )


def _random_churn(rng: random.Random) -> dict:
    return churn_dict(churn_type=rng.choice(["full", "partial"]),
                      arr_lost=rng.choice([0.0, 999.99, 1000.0, 49999.0, 50000.0]),
                      currency=rng.choice(["USD", "EUR", "GBP"]))


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    custom = tmp_path_factory.mktemp("explain-filters")
    (custom / "rules.yaml").write_text(FILTERS)
    shutil.copy(default_rules_dir() / "currency.yaml", custom)
    return [load_rule_book(default_rules_dir()), load_rule_book(custom)]


def test_the_verdict_is_the_compiled_predicates_on_many_events(books):
    rng = random.Random(20260105)
    for book in books:
        decoder = EventDecoder(book.pack.currency)
        deals = decode_all(decoder, [_random_deal(rng) for _ in range(1500)])
        churns = decode_all(decoder, [_random_churn(rng) for _ in range(500)])
        rules = book.pack.by_id()
        compared = 0
        for rule_id, rule in rules.items():
            spec = book.specs[rule_id]
            # each filter the kind names, against the predicate its rule compiled from it
            sides = [(event, getattr(spec, key), FIELDS_OF[event], getattr(rule, key),
                      deals if event == "deal" else churns)
                     for key, event in type(spec).FILTERS.items()]
            for side, conditions, fields, predicate, events in sides:
                verdicts = set()
                for event in events:
                    result = explain_filter(side, conditions, fields, event, book.lists)
                    expected = True if predicate is None else predicate(event)
                    assert result.holds == expected, (rule_id, side, event, result)
                    # each condition is all of its checks; the filter all of its conditions
                    assert result.holds == all(all(c.holds for c in cond.checks)
                                               for cond in result.conditions)
                    verdicts.add(result.holds)
                    compared += 1
                if conditions:  # the events reach both outcomes of every real filter
                    assert verdicts == {True, False}, (rule_id, side)
        assert compared >= 5000


def test_a_measures_where_is_what_its_compiled_quantity_tests(books):
    rng = random.Random(20260106)
    book = books[0]
    deals = decode_all(EventDecoder(book.pack.currency), [_random_deal(rng) for _ in range(500)])
    verdicts = set()
    for rule in book.pack.aggregate_rules:
        spec = book.specs[rule.meta.id]
        measure = book.measures[spec.measure] if isinstance(spec.measure, str) else spec.measure
        for quantity, compiled in ((measure.numerator, rule.measure.numerator),
                                   (measure.denominator, rule.measure.denominator)):
            for deal in deals:
                result = explain_filter("deal", quantity.where, DEAL_FIELDS, deal, book.lists)
                assert result.holds == (compiled.where is None or compiled.where(deal))
                verdicts.add(result.holds)
    assert verdicts == {True, False}


def test_a_filter_on_one_line():
    assert filter_text({
        "deal_type": "renewal",
        "acv": Comparison.model_validate({"gt": 5000.0, "lte": 60000.0}),
        "team": Comparison.model_validate({"in_list": "big"}),
        "rep_id": ["r-1", "r-2"],
    }, {"big": ["team-a", "team-b"]}) == (
        "deal_type == renewal and acv > 5000 and acv <= 60000 and team in big [team-a, team-b] "
        "and rep_id in [r-1, r-2]")
    assert filter_text({}) == ""


def test_each_check_is_one_key_in_the_compilers_order():
    condition = Comparison.model_validate(
        {"not_in_list": "l", "in": ["a"], "lt": 3.0, "gte": 1.0, "ne": "z"})
    assert [op for op, _ in split_condition(condition)] == ["ne", "gte", "lt", "in",
                                                           "not_in_list"]
    assert split_condition(["a", "b"]) == [("in", ["a", "b"])]
    assert split_condition("full") == [("eq", "full")]


def test_lines_show_the_values_compared_and_where_it_stops(decoder):
    [deal] = decode_all(decoder, [deal_dict(discount_pct=0.2, team="team-c", acv=20000.0)])
    result = explain_filter("deal", {
        "acv": Comparison.model_validate({"gt": 5000.0}),
        "discount_pct": Comparison.model_validate({"gte": 0.25}),
        "team": Comparison.model_validate({"in_list": "big"}),
    }, DEAL_FIELDS, deal, {"big": ["team-a", "team-b"]})
    assert not result.holds
    assert result.lines() == [
        "    acv 20000 > 5000 ... yes",
        "    discount_pct 0.20 >= 0.25 ... no   <- stops here",
        "    team team-c in big [team-a, team-b] ... no",
    ]
    assert explain_filter("churn", {}, CHURN_FIELDS, deal, {}).lines() == [
        "    (no condition: every churn passes)"]


@pytest.mark.parametrize(("value", "text"), [
    (0.2, "0.20"), (0.25, "0.25"), (0.195, "0.195"), (12.0, "12"), (365.0, "365"),
    (27.950567, "27.950567"), (1500.5, "1500.50"),
])
def test_numbers_are_shown_exactly_enough(value, text):
    assert number(value) == text


def test_a_filter_of_a_rule_file_is_read_with_its_lists(tmp_path: Path):
    (tmp_path / "r.yaml").write_text(textwrap.dedent(FILTERS))
    book = load_rule_book(tmp_path)
    assert book.lists == {"big_teams": ["team-a", "team-b"], "odd_plans": ["plan-x"]}
    assert book.sources["every-operator"].endswith("r.yaml:5")
