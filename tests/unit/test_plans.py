"""The plan registry: static findings on the plans, deals that contradict their plan."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from unit_helpers import deal_dict, run

from auditor.errors import RuleErrors
from auditor.plans.audit import FINDINGS, audit
from auditor.plans.metrics import PlanFindingsCollector
from auditor.rules.loader import default_rules_dir, load_rule_pack

AUDITOR = str(Path(sys.executable).with_name("auditor"))


@pytest.fixture
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def test_the_misaligned_plan_has_every_finding_and_the_aligned_none():
    registry = load_rule_pack(default_rules_dir()).plans
    findings = audit(registry)
    assert {f.rule for f in findings if f.plan_id == "hunter-2026"} == set(FINDINGS)
    assert [f for f in findings if f.plan_id == "steady-2026"] == []


def test_renewals_below_the_ratio_are_a_warning_not_nothing(rules_copy):
    plans = rules_copy / "plans.yaml"
    plans.write_text(plans.read_text().replace("renewal: 0.05}", "renewal: 0.02}"))
    registry = load_rule_pack(rules_copy).plans
    [finding] = [f for f in audit(registry) if f.plan_id == "steady-2026"]
    assert (finding.rule, finding.severity) == ("plan-renewals-underpaid", "warning")


def test_a_bad_plans_file_is_refused_with_file_and_line(rules_copy):
    plans = rules_copy / "plans.yaml"
    text = plans.read_text().replace("clawback_days: 180", "clawback_dayz: 180")
    plans.write_text(text)
    with pytest.raises(RuleErrors) as caught:
        load_rule_pack(rules_copy)
    [error] = caught.value.errors
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "clawback_dayz" in row)
    assert (Path(error.source), error.line) == (plans, line)
    assert "unknown key" in str(error)


def test_the_gauge_has_one_series_per_plan_and_finding():
    registry = CollectorRegistry()
    registry.register(PlanFindingsCollector(lambda: load_rule_pack(default_rules_dir()).plans))
    text = generate_latest(registry).decode()
    assert 'auditor_plan_finding{finding="plan-no-clawback",plan="hunter-2026"} 1.0' in text
    assert 'auditor_plan_finding{finding="plan-no-clawback",plan="steady-2026"} 0.0' in text
    assert text.count("auditor_plan_finding{") == 2 * len(FINDINGS)


def _steady_deal(**overrides):
    commission = {"amount": 1000.0, "paid_upfront": 800.0, "basis": "acv", "rate": 0.10,
                  "clawback_days": 180}
    commission.update(overrides.pop("commission", {}))
    fields = {"plan_id": "steady-2026", "acv": 10000.0, "tcv": 10000.0, "term_months": 12,
              **overrides}
    return deal_dict(commission=commission, **fields)


def test_a_deal_that_follows_its_plan_is_not_a_finding():
    pack = load_rule_pack(default_rules_dir())
    result = run(pack, [_steady_deal(), deal_dict(plan_id="unregistered")])
    assert result.of("plan-contradiction") == []


def test_a_deal_paid_above_its_plan_is_a_finding_naming_every_difference():
    pack = load_rule_pack(default_rules_dir())
    deal = _steady_deal(deal_id="D-over", commission={"rate": 0.15, "amount": 1500.0,
                                                      "paid_upfront": 1500.0,
                                                      "clawback_days": 0})
    [alert] = run(pack, [deal]).of("plan-contradiction")
    assert alert.deal_id == "D-over" and alert.severity == "warning"
    differences = alert.evidence["differences"]
    assert len(differences) == 3
    assert "rate 0.15 where the plan pays 0.1 on new_logo" in differences
    assert "clawback 0 days where the plan has 180" in differences
    assert "100% paid at signature where the plan pays 80%" in differences
    assert alert.at_risk == 1500.0 - 800.0  # paid at close beyond what the plan pays then


def test_a_multi_year_deal_on_the_wrong_basis_is_a_finding():
    pack = load_rule_pack(default_rules_dir())
    deal = _steady_deal(term_months=36, tcv=30000.0,
                        commission={"basis": "tcv", "amount": 3000.0, "paid_upfront": 1500.0})
    [alert] = run(pack, [deal]).of("plan-contradiction")
    assert alert.evidence["differences"] == [
        "paid on tcv where the plan pays multi-year deals on acv"]


def test_plans_audit_command():
    done = subprocess.run([AUDITOR, "plans", "audit"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hunter-2026: 4 of 4 findings" in done.stdout
    assert "steady-2026: clean" in done.stdout
