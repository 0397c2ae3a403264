"""Static findings on the plans themselves: what a plan rewards before any deal is closed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from auditor.engine.alerts import Alert, alert_id
from auditor.rules.plans import PlanRegistry, PlanSpec

FINDINGS = ("plan-renewals-underpaid", "plan-no-clawback", "plan-tcv-upfront",
            "plan-new-logo-accelerators-only")


@dataclass(frozen=True)
class PlanFinding:
    rule: str
    plan_id: str
    severity: str
    summary: str


def audit_plan(plan: PlanSpec, registry: PlanRegistry) -> Iterator[PlanFinding]:
    rates = plan.rates
    new_logo, renewal = rates["new_logo"], rates["renewal"]
    floor = registry.audit.min_renewal_to_new_logo_ratio
    if renewal == 0 and new_logo > 0:
        yield PlanFinding("plan-renewals-underpaid", plan.id, "critical",
                          f"Plan {plan.id} pays nothing on renewals and {new_logo:.0%} on new "
                          "logos: keeping a customer earns a rep nothing.")
    elif new_logo > 0 and renewal / new_logo < floor:
        yield PlanFinding("plan-renewals-underpaid", plan.id, "warning",
                          f"Plan {plan.id} pays renewals {renewal / new_logo:.0%} of the "
                          f"new-logo rate, below {floor:.0%}.")
    if plan.clawback_days == 0:
        yield PlanFinding("plan-no-clawback", plan.id, "warning",
                          f"Plan {plan.id} has no clawback: commission on a customer who leaves "
                          "the next week is kept.")
    if plan.multi_year_basis == "tcv" and plan.paid_at_close.multi_year >= 0.9:
        yield PlanFinding("plan-tcv-upfront", plan.id, "warning",
                          f"Plan {plan.id} pays multi-year deals on total contract value, "
                          f"{plan.paid_at_close.multi_year:.0%} at signature.")
    if plan.accelerators and all(a.applies_to == ["new_logo"] for a in plan.accelerators):
        yield PlanFinding("plan-new-logo-accelerators-only", plan.id, "warning",
                          f"Plan {plan.id} accelerates new logos only: past quota, retention "
                          "pays relatively less still.")


def audit(registry: PlanRegistry) -> list[PlanFinding]:
    return [f for plan_id in sorted(registry.plans)
            for f in audit_plan(registry.plans[plan_id], registry)]


def as_alert(finding: PlanFinding, currency: str) -> Alert:
    """A finding in the alert contract (kind `plan`, grouped by plan_id)."""
    return Alert(alert_id=alert_id(finding.rule, finding.plan_id), rule=finding.rule,
                 kind="plan", severity=finding.severity, event_time=None,
                 summary=finding.summary, at_risk=0.0, money_class=None, currency=currency,
                 plan_id=finding.plan_id, group_by="plan_id", group=finding.plan_id,
                 labels={"area": "plan"})
