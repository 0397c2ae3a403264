"""`auditor rules test`: the shipped fixtures pass, and a wrong expectation or a changed rule
makes them fail with a readable diff."""

import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.ruletest.runner import load_tests

AUDITOR = str(Path(sys.executable).with_name("auditor"))


def _rules_test(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AUDITOR, "rules", "test", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def test_every_shipped_rule_ships_with_tests():
    pack = load_rule_pack(default_rules_dir())
    shipped = {r.meta.id for r in pack.rules}
    tested = set()
    for _, _, test in load_tests(default_rules_dir()):
        tested |= {e.rule for e in test.expect}
    assert shipped <= tested


def test_the_shipped_tests_pass():
    done = _rules_test()
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout


def test_a_wrong_expectation_fails_with_a_diff(rules_copy):
    tests = rules_copy / "tests" / "retention.yaml"
    tests.write_text(tests.read_text().replace(
        "{rule: early-churn-unrecovered, severity: critical, deal_id: D1, at_risk: 1000}",
        "{rule: early-churn-unrecovered, severity: warning, deal_id: D1, at_risk: 1000}", 1))
    done = _rules_test(str(rules_copy))
    assert done.returncode == 1
    assert "FAIL churn 90 days after a new logo" in done.stdout
    out = done.stdout
    assert "- missing:    rule=early-churn-unrecovered, severity=warning, deal_id=D1" in out
    assert "+ unexpected: rule=early-churn-unrecovered, severity=critical, deal_id=D1" in out


def test_changing_a_threshold_fails_the_test_at_its_edge(rules_copy):
    retention = rules_copy / "retention.yaml"
    retention.write_text(retention.read_text().replace("within_days: 180", "within_days: 181"))
    done = _rules_test(str(rules_copy))
    assert done.returncode == 1
    assert "FAIL churn 90.5 days after is a warning, and 180.5 days after is nothing" in done.stdout
    assert "unexpected: rule=early-churn-unrecovered, severity=warning, deal_id=D2" in done.stdout


def test_an_unknown_key_in_a_test_file_is_refused_with_file_and_line(rules_copy):
    tests = rules_copy / "tests" / "payout.yaml"
    text = tests.read_text().replace("    rules: [tcv-", "    rulez: [tcv-")
    tests.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "rulez:" in row)
    done = _rules_test(str(rules_copy))
    assert done.returncode == 2
    assert f"{tests}:{line}:" in done.stderr and "unknown key" in done.stderr


def test_an_invalid_fixture_event_is_an_error_not_a_pass(rules_copy):
    tests = rules_copy / "tests" / "retention.yaml"
    tests.write_text(tests.read_text().replace("- churn: {at: 90d}",
                                               "- churn: {at: 90d, churn_type: total}", 1))
    done = _rules_test(str(rules_copy))
    assert done.returncode == 1
    assert "event 2 is not a valid event (schema)" in done.stdout


def test_junit_xml_records_each_test_and_the_failure(rules_copy, tmp_path):
    retention = rules_copy / "retention.yaml"
    retention.write_text(retention.read_text().replace("within_days: 180", "within_days: 181"))
    report = tmp_path / "junit.xml"
    assert _rules_test(str(rules_copy), "--junit", str(report)).returncode == 1
    suite = ET.parse(report).getroot()
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == len(load_tests(rules_copy))
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("failures")) == len(failed) == 1
    assert "deal_id=D2" in failed[0].find("failure").text


# --- issue 9: no test error hidden, no rule untested unnoticed --------------------------------

BROKEN_TESTS = """\
tests:
  - name: a misspelt event field
    base: 2026-01-05T00:00:00Z
    events:
      - deal: {deal_id: D1, discount: 0.3, commission: {rat: 0.1}}
      - churn: {at: 30d, churn_typ: full}
    expect: []
    rules: [discount-then-churn]
  - name: a misspelt rule and a quoted number
    base: 2026-01-05T00:00:00Z
    rules: [discount-then-chrun]
    events:
      - deal: {deal_id: D1}
    expect:
      - {rule: discount-then-churn, at_risk: "1000"}
"""


def _line_of(text: str, needle: str) -> int:
    return next(n for n, row in enumerate(text.splitlines(), 1) if needle in row)


def test_every_error_of_a_test_file_is_reported_in_one_run(rules_copy):
    from auditor.errors import RuleErrors

    path = rules_copy / "tests" / "broken.yaml"
    path.write_text(BROKEN_TESTS)
    with pytest.raises(RuleErrors) as info:
        load_tests(rules_copy, load_rule_pack(rules_copy))
    first, second = "test 'a misspelt event field'", "test 'a misspelt rule and a quoted number'"
    assert [str(e) for e in info.value.errors] == [
        f"{path}:5: {first}: events.0.deal.discount: unknown deal field 'discount'; did you "
        "mean 'discount_pct'?",
        f"{path}:5: {first}: events.0.deal.commission.rat: unknown commission field 'rat'; did "
        "you mean 'rate'?",
        f"{path}:6: {first}: events.1.churn.churn_typ: unknown churn field 'churn_typ'; did you "
        "mean 'churn_type'?",
        f"{path}:11: {second}: rules.0: unknown rule 'discount-then-chrun'; did you mean "
        "'discount-then-churn'?",
        f"{path}:15: {second}: expect.0.at_risk: '1000' is text, not a number (write numbers "
        "without quotes or %; rule files are not coerced)",
    ]
    assert _line_of(BROKEN_TESTS, "discount-then-chrun") == 11


def test_the_cli_prints_every_test_file_error_and_exits_2(rules_copy):
    path = rules_copy / "tests" / "broken.yaml"
    path.write_text(BROKEN_TESTS)
    done = _rules_test(str(rules_copy))
    assert done.returncode == 2
    assert f"{path}:5: test 'a misspelt event field': events.0.deal.discount:" in done.stderr
    assert f"{path}:15: test 'a misspelt rule and a quoted number':" in done.stderr
    assert "5 error(s)" in done.stderr


def _without_tests_of(rules_copy: Path, rule_id: str) -> None:
    """Drop every test naming `rule_id` from the copied payout tests."""
    import yaml

    tests_path = rules_copy / "tests" / "payout.yaml"
    data = yaml.safe_load(tests_path.read_text())
    data["tests"] = [t for t in data["tests"]
                     if rule_id not in {*(t.get("rules") or []), *(e["rule"] for e in t["expect"])}]
    tests_path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_an_untested_rule_is_a_warning_and_with_strict_an_error(rules_copy):
    _without_tests_of(rules_copy, "tcv-paid-upfront")
    payout = rules_copy / "payout.yaml"
    line = _line_of(payout.read_text(), "- id: tcv-paid-upfront")
    message = (f"{payout}:{line}: tcv-paid-upfront: {{}}: no test names this rule (add one "
               f"under {rules_copy / 'tests'})")
    done = _rules_test(str(rules_copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert message.format("warning") in done.stderr.splitlines()
    strict = _rules_test(str(rules_copy), "--strict")
    assert strict.returncode == 1
    assert message.format("error") in strict.stderr.splitlines()
    assert " 0 failed" in strict.stdout  # the tests themselves passed


def test_the_shipped_rules_pass_strict():
    done = _rules_test("--strict", str(default_rules_dir()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no test names" not in done.stderr
