"""`money_class` in a rule test's expectation: matched like the other fields, checked against
the alert contract's classes, and shown in the diff of a failure."""

from datetime import UTC, datetime
from typing import get_args

import pytest

from auditor.engine.alerts import MONEY_CLASSES
from auditor.errors import RuleErrors
from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.ruletest.fixtures import ExpectedAlert, MoneyClassName, RuleTest
from auditor.ruletest.runner import load_tests, run_test


def _test(money_class: str | None, clawback_days: int) -> RuleTest:
    expected = {"rule": "discount-then-churn", "deal_id": "D1", "at_risk": 1000.0}
    if money_class is not None:
        expected["money_class"] = money_class
    return RuleTest.model_validate({
        "name": "a discount, then a full churn on day 30",
        "base": datetime(2026, 1, 5, tzinfo=UTC),
        "events": [{"deal": {"deal_id": "D1", "discount_pct": 0.3,
                             "commission": {"clawback_days": clawback_days}}},
                   {"churn": {"at": "30d"}}],
        "expect": [expected],
    })


def test_the_classes_are_the_alert_contracts():
    assert set(get_args(MoneyClassName)) == set(MONEY_CLASSES)


@pytest.mark.parametrize(("clawback_days", "money_class"),
                         [(30, "recoverable"), (29, "unrecovered"), (0, "unrecovered")])
def test_an_expected_class_matches_the_alerts(clawback_days, money_class):
    pack = load_rule_pack(default_rules_dir())
    assert run_test(pack, _test(money_class, clawback_days)).passed
    assert run_test(pack, _test(None, clawback_days)).passed  # no class given: any matches


@pytest.mark.parametrize(("clawback_days", "wrong"), [(30, "unrecovered"), (29, "recoverable"),
                                                      (0, "overpaid")])
def test_another_class_fails_with_a_diff(clawback_days, wrong):
    result = run_test(load_rule_pack(default_rules_dir()), _test(wrong, clawback_days))
    assert not result.passed
    assert [e.money_class for e in result.missing] == [wrong]
    [alert] = result.unexpected
    assert alert.money_class != wrong
    assert f"money_class={wrong}" in result.diff()


def test_a_misspelt_class_is_an_error_with_file_and_line(tmp_path):
    directory = tmp_path / "rules"
    (directory / "tests").mkdir(parents=True)
    path = directory / "tests" / "money.yaml"
    path.write_text(
        "tests:\n"
        "  - name: a misspelt class\n"
        "    base: 2026-01-05T00:00:00Z\n"
        "    events:\n"
        "      - deal: {deal_id: D1}\n"
        "    expect:\n"
        "      - {rule: tcv-paid-upfront, money_class: exposures}\n")
    with pytest.raises(RuleErrors) as raised:
        load_tests(directory)
    text = str(raised.value)
    assert f"{path}:7:" in text
    assert "money_class" in text
    assert ExpectedAlert(rule="x", money_class="exposure").money_class == "exposure"
