"""One mistake, one error: a broken part of a rules directory is reported where it is, and adds
no errors to the parts that use it."""

import textwrap
from pathlib import Path

import pytest

from auditor.errors import RuleError, RuleErrors
from auditor.rules.loader import load_rule_pack

LISTS = """\
lists:
  acquisition: [new_logo, expnasion]
"""

USERS = """\
rules:
  - id: first-user
    kind: deal
    description: uses the list
    deal:
      deal_type: {in_list: acquisition}
    severity: warning
    at_risk: none
  - id: second-user
    kind: aggregate
    description: uses the list too
    measure: new_logo_commission_share
    group_by: team
    deal:
      deal_type: {not_in_list: acquisition}
    threshold: {above: 0.85}
    severity: warning
"""


def _errors(directory: Path, **files: str) -> list[RuleError]:
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(directory)
    return info.value.errors


def test_a_bad_list_entry_is_one_error_however_many_rules_use_it(rules_dir):
    [error] = _errors(rules_dir, **{"lists.yaml": LISTS, "rules.yaml": USERS})
    assert error.source == str(rules_dir / "lists.yaml") and error.line == 2
    assert str(error).endswith(
        ":2: list acquisition: 'expnasion' is not one of new_logo, expansion, renewal; did you "
        "mean 'expansion'? (the list is used for deal.deal_type by first-user)")


def test_a_list_that_fails_its_schema_does_not_make_its_users_unknown(rules_dir):
    lists = "lists:\n  acquisition: [new_logo, {type: expansion}]\n"
    [error] = _errors(rules_dir, **{"lists.yaml": lists, "rules.yaml": USERS})
    assert error.source == str(rules_dir / "lists.yaml") and error.line == 2
    assert str(error).startswith(f"{rules_dir / 'lists.yaml'}:2: list acquisition: 1:")
    assert "unknown list" not in str(error)


def test_a_file_that_is_not_yaml_does_not_make_its_lists_unknown(rules_dir):
    broken = LISTS.replace("[new_logo, expnasion]", "[new_logo, expansion")
    [error] = _errors(rules_dir, **{"lists.yaml": broken, "rules.yaml": USERS})
    assert error.source == str(rules_dir / "lists.yaml")
    assert "not valid YAML" in str(error)


def test_an_unknown_list_is_still_reported_when_every_file_was_read(rules_dir):
    text = USERS.replace("{in_list: acquisition}", "{in_list: acquisiton}")
    errors = _errors(rules_dir, **{"rules.yaml": text})
    assert [(e.line, str(e).split(": ", 1)[1]) for e in errors] == [
        (6, "first-user: deal.deal_type: unknown list 'acquisiton' (lists: none defined)"),
        (15, "second-user: deal.deal_type: unknown list 'acquisition' (lists: none defined)"),
    ]


def test_a_near_list_name_is_suggested(rules_dir):
    lists = LISTS.replace("expnasion", "expansion")
    text = USERS.replace("{in_list: acquisition}", "{in_list: acquisiton}")
    [error] = _errors(rules_dir, **{"lists.yaml": lists, "rules.yaml": text})
    assert str(error) == (f"{rules_dir / 'rules.yaml'}:6: first-user: deal.deal_type: unknown "
                          "list 'acquisiton'; did you mean 'acquisition'?")


def test_a_rule_failing_its_schema_causes_no_other_error(rules_dir):
    """A misspelt key is one error (not also "severity missing"), and the rule being left out
    does not make a later rule with its id a duplicate or its filter unchecked."""
    text = USERS.replace("    severity: warning\n    at_risk: none\n",
                         "    severty: warning\n    at_risk: none\n")
    lists = LISTS.replace("expnasion", "expansion")
    [error] = _errors(rules_dir, **{"lists.yaml": lists, "rules.yaml": text})
    assert str(error) == (f"{rules_dir / 'rules.yaml'}:7: first-user: severty: unknown key; "
                          "did you mean 'severity'?")


def test_the_filters_of_a_rule_failing_its_schema_are_still_checked(rules_dir):
    text = USERS.replace("severty", "severity").replace(
        "    threshold: {above: 0.85}", "    threshold: {above: high}").replace(
        "{not_in_list: acquisition}", "renewl")
    lists = LISTS.replace("expnasion", "expansion")
    errors = _errors(rules_dir, **{"lists.yaml": lists, "rules.yaml": text})
    assert [(e.line, str(e).split(": ", 1)[1]) for e in errors] == [
        (15, "second-user: deal.deal_type: 'renewl' is not one of new_logo, expansion, "
             "renewal; did you mean 'renewal'?"),
        (16, "second-user: threshold.above: 'high' is text, not a number (write numbers "
             "without quotes or %; rule files are not coerced)"),
    ]


def test_a_union_mismatch_is_one_error_not_one_per_member(rules_dir):
    text = USERS.replace("{in_list: acquisition}", "{greater: 5}")
    lists = LISTS.replace("expnasion", "expansion")
    [error] = _errors(rules_dir, **{"lists.yaml": lists, "rules.yaml": text})
    assert str(error) == (f"{rules_dir / 'rules.yaml'}:6: first-user: deal.deal_type.greater: "
                          "unknown key; did you mean 'gte'?")
