"""Named lists: defined once under `lists:` in any rules file, used as {in_list: name}."""

import textwrap
from pathlib import Path

import pytest
from unit_helpers import deal_dict, run

from auditor.errors import RuleErrors
from auditor.rules.loader import load_rule_pack

LISTS = """\
lists:
  watched_teams: [t-watch, t-other]
"""

RULE = """\
rules:
  - id: watched-tcv
    kind: deal
    description: tcv deals of watched teams
    deal:
      team: {in_list: watched_teams}
      plan_id: {not_in_list: exempt_plans}
    severity: warning
    at_risk: none
lists:
  exempt_plans: [p-exempt]
"""


def _pack(tmp_path: Path, **files: str):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return load_rule_pack(tmp_path)


def test_a_list_from_another_file_filters_deals(tmp_path):
    pack = _pack(tmp_path, **{"lists.yaml": LISTS, "rules.yaml": RULE})
    deals = [deal_dict(team="t-watch", plan_id="p1", account_id="a1"),
             deal_dict(team="t-watch", plan_id="p-exempt", account_id="a2"),
             deal_dict(team="t-elsewhere", plan_id="p1", account_id="a3")]
    result = run(pack, deals)
    assert [a.account_id for a in result.of("watched-tcv")] == ["a1"]


def test_an_unknown_list_is_refused_with_file_and_line(tmp_path):
    with pytest.raises(RuleErrors) as caught:
        _pack(tmp_path, **{"rules.yaml": RULE.replace("in_list: watched_teams",
                                                     "in_list: watched_temas")})
    [error] = caught.value.errors
    assert error.source.endswith("rules.yaml")
    assert error.line == 6  # the `team:` condition
    assert "unknown list 'watched_temas'" in str(error)


def test_a_list_defined_twice_is_refused(tmp_path):
    with pytest.raises(RuleErrors) as caught:
        _pack(tmp_path, **{"a.yaml": LISTS, "b.yaml": LISTS})
    [error] = caught.value.errors
    assert error.source.endswith("b.yaml") and error.line == 2
    assert "duplicate list 'watched_teams', first defined at" in str(error)
    assert "a.yaml:2" in str(error)
