"""The what-if candidate: `--set` overrides read as YAML scalars and validated strictly, and
candidate files validated by the registry's own code."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.errors import RuleError
from auditor.rules.loader import default_rules_dir
from auditor.rules.plans import PlanRegistry, load_plans_file
from auditor.whatif.candidate import CandidateError, build_candidate, changes, settable_fields

REGISTRY = load_plans_file(default_rules_dir() / "plans.yaml")


def candidate(*sets: str) -> PlanRegistry:
    return build_candidate(REGISTRY, None, sets)


def test_the_registry_plans_default_to_a_full_clawback_share():
    assert {p.clawback_share for p in REGISTRY.plans.values()} == {1.0}


@pytest.mark.parametrize(("text", "field", "value"), [
    ("hunter-2026.clawback_days=180", "clawback_days", 180),
    ("hunter-2026.clawback_share=0.5", "clawback_share", 0.5),
    ("hunter-2026.clawback_share=0", "clawback_share", 0.0),
    ("hunter-2026.rates.renewal=0.05", "rates.renewal", 0.05),
    ("hunter-2026.multi_year_basis=acv", "multi_year_basis", "acv"),
    ("hunter-2026.paid_at_close.multi_year=0.5", "paid_at_close.multi_year", 0.5),
])
def test_an_override_changes_one_value_of_one_plan(text, field, value):
    after = candidate(text)
    assert changes(REGISTRY.plans["hunter-2026"], after.plans["hunter-2026"]) == {
        field: [changes_old(field), value]}
    assert after.plans["steady-2026"] == REGISTRY.plans["steady-2026"]


def changes_old(field: str) -> object:
    value: object = REGISTRY.plans["hunter-2026"].model_dump()
    for part in field.split("."):
        assert isinstance(value, dict)
        value = value[part]
    return value


def test_overrides_apply_in_turn():
    after = candidate("hunter-2026.clawback_days=90", "hunter-2026.clawback_days=180",
                      "steady-2026.rates.renewal=0.06")
    assert after.plans["hunter-2026"].clawback_days == 180
    assert after.plans["steady-2026"].rates["renewal"] == 0.06


@pytest.mark.parametrize(("text", "said"), [
    ("huntr-2026.clawback_days=180", "unknown plan 'huntr-2026'; did you mean 'hunter-2026'?"),
    ("nobody.clawback_days=180", "unknown plan 'nobody' (plans: hunter-2026, steady-2026)"),
    ("hunter-2026.clawbak_days=180", "unknown field 'clawbak_days'; did you mean "
                                     "'clawback_days'?"),
    ("hunter-2026.rates.renewals=0.1", "did you mean 'rates.renewal'?"),
    ("hunter-2026.accelerators=[]", "cannot be set here"),
    ("hunter-2026.id=other", "cannot be set here"),
    ("hunter-2026.clawback_days", "expected PLAN.FIELD=VALUE"),
    ("clawback_days=180", "expected PLAN.FIELD=VALUE"),
    ('hunter-2026.clawback_days="180"', "'180' is text, not a number"),
    ("hunter-2026.clawback_days=1.5", "clawback_days:"),
    ("hunter-2026.clawback_days=-1", "clawback_days: Input should be greater than or equal"),
    ("hunter-2026.clawback_days=", "no value after '='"),
    ("hunter-2026.clawback_days=~", "clawback_days: Input should be a valid integer"),
    ("hunter-2026.clawback_days=: :", "not a YAML value: expected <block end>"),
    ("hunter-2026.clawback_share=1.5", "clawback_share: Input should be less than or equal"),
    ("hunter-2026.rates.renewal=5%", "rates.renewal: '5%' is text"),
    ("hunter-2026.multi_year_basis=TCV", "multi_year_basis: Input should be 'acv' or 'tcv'"),
    ("hunter-2026.rates.renewal=[0.1]", "a single value is expected"),
    ("hunter-2026.clawback_days=!!python/object:os.system 1",
     "YAML tag !!python/object:os.system is not allowed"),
])
def test_a_bad_override_is_refused_with_what_is_wrong(text, said):
    with pytest.raises(CandidateError) as error:
        candidate(text)
    assert said in str(error.value)
    assert str(error.value).startswith(f"--set {text}")


def test_every_single_value_of_a_plan_is_settable():
    assert set(settable_fields()) == {
        "name", "rates.new_logo", "rates.expansion", "rates.renewal", "multi_year_basis",
        "paid_at_close.multi_year", "paid_at_close.single_year", "clawback_days",
        "clawback_share"}


def test_a_candidate_file_is_validated_like_the_registry(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text((default_rules_dir() / "plans.yaml").read_text().replace(
        "clawback_days: 0", "clawback_days: 180\n    clawback_share: 0.5"))
    after = build_candidate(REGISTRY, good, ["hunter-2026.rates.renewal=0.02"])
    assert changes(REGISTRY.plans["hunter-2026"], after.plans["hunter-2026"]) == {
        "rates.renewal": [0.0, 0.02], "clawback_days": [0, 180], "clawback_share": [1.0, 0.5]}

    bad = tmp_path / "bad.yaml"
    bad.write_text("plans:\n  - id: x\n    rates: {new_logo: 0.1, expansion: 0.1, renewal: 0}\n"
                   "    multi_year_basis: acv\n"
                   "    paid_at_close: {multi_year: 1, single_year: 1}\n"
                   "    clawback_days: 0\n    clawback_shares: 1\n")
    with pytest.raises(RuleError) as error:
        build_candidate(REGISTRY, bad, [])
    assert str(error.value) == (f"{bad}:7: plans.0.clawback_shares: unknown key; did you mean "
                                "'clawback_share'?")


def test_a_new_plan_in_the_candidate_has_no_old_values(tmp_path: Path):
    path = tmp_path / "new.yaml"
    path.write_text("plans:\n  - id: x\n    rates: {new_logo: 0.1, expansion: 0.1, renewal: 0}\n"
                    "    multi_year_basis: acv\n"
                    "    paid_at_close: {multi_year: 1, single_year: 1}\n"
                    "    clawback_days: 30\n")
    after = build_candidate(None, path, [])
    assert changes(None, after.plans["x"])["clawback_days"] == [None, 30]


def test_overrides_need_plans_to_change():
    with pytest.raises(CandidateError, match="no plans to compare"):
        build_candidate(None, None, ["hunter-2026.clawback_days=180"])
