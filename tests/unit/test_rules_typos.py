"""A sales-ops typo must never switch a rule off silently (issue 9): filter values outside the
event field's domain, filters that can never match, numbers written as strings. Each error
names file, line and rule id, with a "did you mean" when a near name exists."""

import textwrap
from pathlib import Path

import pytest

from auditor.errors import RuleError, RuleErrors
from auditor.rules.loader import load_rule_pack

JOIN = """\
rules:
  - id: my-join
    kind: churn-after-deal
    description: a join rule
    deal:
      deal_type: [new_logo]
    churn:
      churn_type: full
    within_days: 30
    severity: warning
    at_risk: paid_upfront
    money_class: unrecovered
"""

AGGREGATE = """\
rules:
  - id: renewal-rate-gap
    kind: aggregate
    description: renewals paid little
    measure: renewal_rate_ratio
    group_by: plan_id
    min_deals: {renewal: 3, new_logo: 3}
    threshold: {below: 0.3}
    severity: warning
"""


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    return [n for n, row in enumerate(text.splitlines(), 1) if needle in row][occurrence - 1]


def _errors(directory: Path, name: str, text: str) -> list[RuleError]:
    (directory / name).write_text(textwrap.dedent(text))
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(directory)
    return info.value.errors


def _only(directory: Path, name: str, text: str) -> RuleError:
    errors = _errors(directory, name, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def _assert(error: RuleError, directory: Path, name: str, line: int, message: str) -> None:
    assert error.source == str(directory / name)
    assert error.line == line
    assert str(error) == f"{directory / name}:{line}: {message}"


# --- 1. values outside the field's domain ----------------------------------------------------


def test_the_issue_example_names_file_line_rule_and_the_near_value(rules_dir):
    text = AGGREGATE.replace("    severity: warning\n",
                             "    deal:\n      deal_type: newlogo\n    severity: warning\n")
    error = _only(rules_dir, "payout.yaml", text)
    _assert(error, rules_dir, "payout.yaml", _line(text, "newlogo"),
            "renewal-rate-gap: deal.deal_type: 'newlogo' is not one of new_logo, expansion, "
            "renewal; did you mean 'new_logo'?")


def test_a_misspelt_entry_of_a_list_condition(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", "deal_type: [new_logo, expnasion]")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "expnasion"),
            "my-join: deal.deal_type: 'expnasion' is not one of new_logo, expansion, renewal; "
            "did you mean 'expansion'?")


def test_a_misspelt_entry_of_an_in_condition_on_its_own_line(rules_dir):
    block = "      deal_type:\n        in:\n          - renewal\n          - expnasion\n"
    text = JOIN.replace("      deal_type: [new_logo]\n", block)
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "- expnasion"),
            "my-join: deal.deal_type: 'expnasion' is not one of new_logo, expansion, renewal; "
            "did you mean 'expansion'?")


def test_a_misspelt_entry_of_a_named_list_is_reported_at_the_list(rules_dir):
    text = "lists:\n  acquisition: [new_logo, expnasion]\n" + JOIN.replace(
        "deal_type: [new_logo]", "deal_type: {in_list: acquisition}")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", 2,
            "list acquisition: 'expnasion' is not one of new_logo, expansion, renewal; did you "
            "mean 'expansion'? (the list is used for deal.deal_type by my-join)")


def test_an_unknown_churn_type(rules_dir):
    text = JOIN.replace("churn_type: full", "churn_type: total")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "total"),
            "my-join: churn.churn_type: 'total' is not one of full, partial")


def test_a_basis_in_capitals(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", "commission.basis: TCV")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "TCV"),
            "my-join: deal.commission.basis: 'TCV' is not one of acv, tcv; did you mean 'tcv'?")


def test_the_domains_come_from_the_event_contract():
    from typing import get_args

    from auditor.events.models import Churn, Deal
    from auditor.rules.domains import CHURN_DOMAINS, DEAL_DOMAINS

    deal_types = get_args(Deal.__pydantic_fields__["deal_type"].annotation)
    assert DEAL_DOMAINS["deal_type"].values == deal_types
    assert CHURN_DOMAINS["churn_type"].values == get_args(
        Churn.__pydantic_fields__["churn_type"].annotation)
    assert (DEAL_DOMAINS["discount_pct"].low, DEAL_DOMAINS["discount_pct"].high) == (0, 1)


def test_an_unknown_filter_field_suggests_the_near_one(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", "discount_pc: {gte: 0.2}")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "discount_pc"),
            "my-join: deal.discount_pc: unknown field; did you mean 'discount_pct'?")


# --- 2. filters that can never match ---------------------------------------------------------


@pytest.mark.parametrize(("condition", "message"), [
    ("discount_pct: {gte: 25}", "deal.discount_pct: {gte: 25} can never match: discount_pct is "
     "a number from 0 to 1; shares are written 0..1: did you mean 0.25?"),
    ("commission.rate: {gt: 1}", "deal.commission.rate: {gt: 1} can never match: "
     "commission.rate is a number from 0 to 1"),
    ("discount_pct: {gte: 0.25, lt: 0.1}", "deal.discount_pct: {gte: 0.25, lt: 0.1} can never "
     "match: no value is >= 0.25 and < 0.1"),
    ("acv: {lt: 0}", "deal.acv: {lt: 0} can never match: acv is a number >= 0"),
    ("acv: {gt: -1}", "deal.acv: {gt: -1} always holds (it filters nothing): acv is a number "
     ">= 0"),
    ("term_months: {lt: 1}", "deal.term_months: {lt: 1} can never match: term_months is a "
     "whole number >= 1"),
    ("term_months: {gt: 12, lt: 13}", "deal.term_months: {gt: 12, lt: 13} can never match: no "
     "value is > 12 and < 13"),
    ("commission.clawback_days: {lte: -1}", "deal.commission.clawback_days: {lte: -1} can never "
     "match: commission.clawback_days is a whole number >= 0"),
    ("discount_pct: 25", "deal.discount_pct: 25 is outside the field's values (a number from 0 "
     "to 1); shares are written 0..1: did you mean 0.25?"),
    ("term_months: 12.5", "deal.term_months: 12.5 is not a whole number"),
])
def test_a_filter_that_can_never_match_is_refused(rules_dir, condition, message):
    text = JOIN.replace("deal_type: [new_logo]", condition)
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, condition), f"my-join: {message}")


@pytest.mark.parametrize("condition", [
    "discount_pct: {gte: 0.25}", "discount_pct: {gt: 0, lte: 1}", "acv: {gte: 0}",
    "term_months: {gt: 12}", "commission.clawback_days: {gt: 0}", "term_months: 12",
    "deal_type: {not_in: [renewal]}",
])
def test_filters_that_can_match_load(rules_dir, condition):
    (rules_dir / "retention.yaml").write_text(JOIN.replace("deal_type: [new_logo]", condition))
    assert load_rule_pack(rules_dir).rule_count == 1


# --- 3. numbers written as strings -----------------------------------------------------------


def test_a_threshold_written_as_a_string(rules_dir):
    text = AGGREGATE.replace("threshold: {below: 0.3}", 'threshold: {below: "0.3"}')
    error = _only(rules_dir, "payout.yaml", text)
    _assert(error, rules_dir, "payout.yaml", _line(text, "threshold"),
            "renewal-rate-gap: threshold.below: '0.3' is text, not a number (write numbers "
            "without quotes or %; rule files are not coerced)")


def test_a_percentage_string_in_a_filter(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", "discount_pct: {gte: '25%'}")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "25%"),
            "my-join: deal.discount_pct.gte: '25%' is text, not a number (write numbers "
            "without quotes or %; rule files are not coerced)")


def test_a_window_written_as_a_string(rules_dir):
    text = JOIN.replace("within_days: 30", 'within_days: "90"')
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "within_days"),
            "my-join: within_days: '90' is text, not a number (write numbers without quotes "
            "or %; rule files are not coerced)")


def test_an_equality_on_a_number_written_as_a_string(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", 'term_months: "12"')
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "term_months"),
            "my-join: deal.term_months: '12' is not a number (the field is a whole number >= 1); "
            "write numbers without quotes or %")


def test_a_currency_rate_written_as_a_string(rules_dir):
    (rules_dir / "currency.yaml").write_text('reporting_currency: USD\nrates:\n  EUR: "1.08"\n')
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(rules_dir)
    [error] = info.value.errors
    assert error.line == 3 and "rates.EUR: '1.08' is text, not a number" in str(error)


# --- collect mode: every error of a directory in one run --------------------------------------


def test_every_error_of_a_file_is_reported_in_one_run(rules_dir):
    text = JOIN.replace("deal_type: [new_logo]", "deal_type: newlogo") \
        + JOIN.replace("rules:\n", "").replace("my-join", "other").replace(
            "within_days: 30", 'within_days: "30"') \
        + AGGREGATE.replace("rules:\n", "").replace("below: 0.3", "blow: 0.3")
    errors = _errors(rules_dir, "retention.yaml", text)
    assert [(e.line, str(e).split(": ")[1]) for e in errors] == [
        (_line(text, "newlogo"), "my-join"),
        (_line(text, "within_days", 2), "other"),
        (_line(text, "blow"), "renewal-rate-gap"),
    ]
    assert "threshold.blow: unknown key; did you mean 'below'?" in str(errors[2])


def test_a_disabled_rule_is_checked_too(rules_dir):
    text = JOIN.replace("    at_risk: paid_upfront\n",
                        "    at_risk: paid_upfront\n    enabled: false\n").replace(
        "churn_type: full", "churn_type: ful")
    error = _only(rules_dir, "retention.yaml", text)
    _assert(error, rules_dir, "retention.yaml", _line(text, "churn_type"),
            "my-join: churn.churn_type: 'ful' is not one of full, partial; did you mean 'full'?")
