"""Rule files: the default pack loads; a broken file gives RuleErrors naming file and line."""

import textwrap
from pathlib import Path

import pytest

from auditor.errors import RuleErrors
from auditor.rules.loader import default_rules_dir, load_rule_pack

JOIN_RULE = """\
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

DEAL_RULE = """\
rules:
  - id: my-deal
    kind: deal
    description: a deal rule
    deal:
      term_months: {gt: 12}
      commission.basis: tcv
    min_upfront_share: 0.9
    severity: warning
    at_risk: upfront_beyond_first_year
    money_class: exposure
"""

AGGREGATE_RULE = """\
rules:
  - id: my-aggregate
    kind: aggregate
    description: an aggregate rule
    measure: new_logo_commission_share
    group_by: team
    min_deals: 5
    threshold: {above: 0.85}
    severity: warning
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def _errors(directory: Path) -> RuleErrors:
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(directory)
    return info.value


def _assert_one_error(directory: Path, name: str, line: int, *words: str) -> None:
    exc = _errors(directory)
    assert len(exc.errors) == 1, str(exc)
    [error] = exc.errors
    text = str(exc)
    assert f"{name}:{line}:" in text, text
    assert Path(error.source).name == name
    assert error.line == line, text
    for word in words:
        assert word in text, text


# --- valid packs ------------------------------------------------------------------------------


def test_default_pack_loads_all_ten_rules(rules):
    ids = {r.meta.id for r in rules.rules}
    assert ids == {"tcv-paid-upfront", "early-churn-unrecovered", "discount-then-churn",
                   "churn-and-resell", "renewal-rate-gap", "new-logo-payout-share",
                   "rep-early-churn-rate", "commission-retention-plan",
                   "commission-retention-team", "renewal-discount-after-new-logo"}
    assert rules.rule_count == 10
    # Commission retention's 12 months, at most 31 days each, is the longest window.
    assert rules.longest_window_days() == 12 * 31


@pytest.mark.parametrize("text", [JOIN_RULE, DEAL_RULE, AGGREGATE_RULE])
def test_each_sample_file_is_valid(rules_dir, text):
    _write(rules_dir, "mine.yaml", text)
    assert load_rule_pack(rules_dir).rule_count == 1


def test_rule_source_names_file_and_line(rules_dir):
    _write(rules_dir, "mine.yaml", "# comment\n\n" + JOIN_RULE)
    [rule] = load_rule_pack(rules_dir).rules
    assert rule.meta.source.endswith("mine.yaml:4")


# --- unknown key ------------------------------------------------------------------------------


def test_unknown_key_in_a_join_rule(rules_dir):
    text = JOIN_RULE.replace("    severity: warning\n",
                             "    severty: warning\n    severity: warning\n")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "severty"), "severty",
                      "unknown key")


def test_unknown_key_in_an_aggregate_rule(rules_dir):
    text = AGGREGATE_RULE + "    treshold: {above: 1}\n"
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "treshold"), "treshold")


def test_unknown_key_in_a_deal_rule_without_a_filter(rules_dir):
    no_filter = DEAL_RULE.replace(
        "    deal:\n      term_months: {gt: 12}\n      commission.basis: tcv\n", "")
    assert "deal:" not in no_filter
    text = no_filter + "    colour: red\n"
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "colour"), "colour")


def test_unknown_key_in_a_deal_rule_with_a_deal_filter(rules_dir):
    """The deal rule's `deal:` filter must not capture errors about the rule's other keys."""
    text = DEAL_RULE + "    colour: red\n"
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "colour"), "colour", "unknown key")


def test_unknown_comparison_key_in_a_filter(rules_dir):
    text = JOIN_RULE.replace("deal_type: [new_logo]", "acv: {greater: 5}")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "greater"), "acv")


# --- wrong type -------------------------------------------------------------------------------


def test_wrong_type_in_a_join_rule(rules_dir):
    text = JOIN_RULE.replace("within_days: 30", "within_days: a month")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "within_days"), "within_days")


def test_negative_window(rules_dir):
    text = JOIN_RULE.replace("within_days: 30", "within_days: -1")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "within_days"), "within_days")


def test_unknown_severity(rules_dir):
    text = JOIN_RULE.replace("severity: warning", "severity: urgent")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "severity"), "severity")


def test_wrong_type_in_an_aggregate_rule(rules_dir):
    text = AGGREGATE_RULE.replace("min_deals: 5", "min_deals: five")
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "min_deals"), "min_deals")


def test_wrong_type_in_a_deal_rule_with_a_deal_filter(rules_dir):
    """As with unknown keys: the error is on min_upfront_share's line, not the filter's."""
    text = DEAL_RULE.replace("min_upfront_share: 0.9", "min_upfront_share: most")
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "min_upfront_share"),
                      "min_upfront_share")


def test_missing_required_key_is_named(rules_dir):
    text = JOIN_RULE.replace("    severity: warning\n", "")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "- id: my-join"), "severity")


def test_comparison_on_a_text_field(rules_dir):
    text = JOIN_RULE.replace("churn_type: full", "churn_type: {gt: 1}")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "churn_type"), "churn_type")


# --- bad YAML ---------------------------------------------------------------------------------


def test_unclosed_flow_sequence(rules_dir):
    text = JOIN_RULE.replace("deal_type: [new_logo]", "deal_type: [new_logo")
    _write(rules_dir, "retention.yaml", text)
    exc = _errors(rules_dir)
    [error] = exc.errors
    # The parser notices on the line after the unclosed bracket at the latest.
    assert error.line in (_line(text, "deal_type"), _line(text, "deal_type") + 1), str(exc)
    assert "retention.yaml:" in str(exc) and "YAML" in str(exc)


def test_tab_indentation(rules_dir):
    text = JOIN_RULE.replace("    within_days: 30", "\twithin_days: 30")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "within_days"), "YAML")


def test_duplicate_yaml_key(rules_dir):
    text = JOIN_RULE + "    within_days: 40\n"
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "within_days", 2), "within_days")


def test_top_level_not_a_mapping(rules_dir):
    _write(rules_dir, "retention.yaml", "- id: x\n")
    _assert_one_error(rules_dir, "retention.yaml", 1, "mapping")


# --- unknown filter field ---------------------------------------------------------------------


def test_unknown_deal_filter_field(rules_dir):
    text = JOIN_RULE.replace("deal_type: [new_logo]", "deal_kind: [new_logo]")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "deal_kind"), "deal_kind",
                      "unknown field")


def test_unknown_churn_filter_field(rules_dir):
    text = JOIN_RULE.replace("churn_type: full", "churn_kind: full")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "churn_kind"), "churn_kind")


def test_deal_field_in_a_churn_filter(rules_dir):
    """deal_type is valid in the deal filter (line 6) and unknown in the churn filter (line 8):
    the error is in the churn filter."""
    text = JOIN_RULE.replace("churn_type: full", "deal_type: renewal")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "deal_type", 2), "deal_type")


def test_unknown_field_in_a_deal_rule_filter(rules_dir):
    """A `kind: deal` rule has no churn filter: the loader must still report file:line (a
    RuleErrors), not crash."""
    text = DEAL_RULE.replace("commission.basis: tcv", "commission.base: tcv")
    _write(rules_dir, "payout.yaml", text)
    _assert_one_error(rules_dir, "payout.yaml", _line(text, "commission.base"),
                      "commission.base")


# --- duplicate id -----------------------------------------------------------------------------


def test_duplicate_id_in_one_file(rules_dir):
    text = JOIN_RULE + JOIN_RULE.replace("rules:\n", "")
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "id: my-join", 2),
                      "duplicate", "my-join", f"retention.yaml:{_line(text, 'id: my-join')}")


def test_duplicate_id_across_files(rules_dir):
    _write(rules_dir, "a.yaml", JOIN_RULE)
    _write(rules_dir, "b.yaml", "# the same id again\n" + JOIN_RULE)
    _assert_one_error(rules_dir, "b.yaml", 3, "duplicate", "my-join", "a.yaml:2")


# --- unknown kind -----------------------------------------------------------------------------


def test_unknown_kind(rules_dir):
    text = "rules:\n  - kind: churn-after-churn\n    id: x\n    description: y\n"
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", 2, "churn-after-churn")


def test_unknown_kind_in_the_second_rule(rules_dir):
    text = JOIN_RULE + "  - kind: sometimes\n    id: other\n    description: y\n"
    _write(rules_dir, "retention.yaml", text)
    _assert_one_error(rules_dir, "retention.yaml", _line(text, "sometimes"), "sometimes")


# --- several files, currency ------------------------------------------------------------------


def test_errors_of_every_file_are_collected(rules_dir):
    a = JOIN_RULE.replace("within_days: 30", "within_days: x")
    b = AGGREGATE_RULE + "    extra: 1\n"
    _write(rules_dir, "a.yaml", a)
    _write(rules_dir, "b.yaml", b)
    exc = _errors(rules_dir)
    a_line, b_line = _line(a, "within_days"), _line(b, "extra")
    assert (a_line, b_line) == (9, 10)
    assert [(Path(e.source).name, e.line) for e in exc.errors] == [("a.yaml", 9), ("b.yaml", 10)]
    assert "a.yaml:9:" in str(exc) and "b.yaml:10:" in str(exc)


def test_bad_currency_rate(rules_dir):
    text = "reporting_currency: USD\nrates:\n  EUR: 1.08\n  GBP: -1\n"
    _write(rules_dir, "currency.yaml", text)
    _assert_one_error(rules_dir, "currency.yaml", 4, "GBP")


def test_the_default_rule_files_are_rule_files(tmp_path):
    # Copies of the shipped files load into the same pack.
    for path in default_rules_dir().glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    pack = load_rule_pack(tmp_path)
    assert pack.rule_count == 10
    assert pack.currency.rates["EUR"] == 1.08


def test_missing_directory(tmp_path):
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(tmp_path / "nope")
    assert "nope" in str(info.value)
