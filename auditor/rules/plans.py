"""rules/plans.yaml: the compensation plans, as sales ops registers them.

    plans:
      - id: steady-2026
        name: Steady 2026 (retention-aligned)
        rates: {new_logo: 0.10, expansion: 0.08, renewal: 0.05}
        multi_year_basis: acv            # what a multi-year deal's rate applies to: acv or tcv
        paid_at_close: {multi_year: 0.5, single_year: 0.8}   # share of commission at signature
        clawback_days: 180               # 0: no clawback
        clawback_share: 1.0              # optional, default 1: share of the upfront pay recovered
        accelerators:
          - {applies_to: [new_logo], above_quota: 1.0, multiplier: 1.5}
    audit:
      min_renewal_to_new_logo_ratio: 0.3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from auditor.rules.validation import validate_document
from auditor.rules.yaml_source import load_yaml

PLANS_FILE = "plans.yaml"
DealType = Literal["new_logo", "expansion", "renewal"]
Share = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Accelerator(_Strict):
    applies_to: list[DealType] = Field(min_length=1)
    above_quota: Annotated[float, Field(ge=0)] = 1.0  # attainment from which it applies
    multiplier: Annotated[float, Field(gt=0)]


class PaidAtClose(_Strict):
    multi_year: Share
    single_year: Share


class PlanSpec(_Strict):
    id: Annotated[str, Field(min_length=1)]
    name: str = ""
    rates: dict[DealType, Annotated[float, Field(ge=0, le=1)]]
    multi_year_basis: Literal["acv", "tcv"]
    paid_at_close: PaidAtClose
    clawback_days: Annotated[int, Field(ge=0)]
    # The share of a deal's upfront pay its clawback recovers (what-if; deals do not carry it).
    clawback_share: Share = 1.0
    accelerators: list[Accelerator] = Field(default_factory=list)


class AuditSettings(_Strict):
    min_renewal_to_new_logo_ratio: Annotated[float, Field(ge=0)] = 0.3
    # How far a deal's figures may be from its plan's before they contradict it.
    rate_tolerance: Annotated[float, Field(ge=0)] = 1e-6
    paid_at_close_tolerance: Annotated[float, Field(ge=0)] = 0.01


class PlansFile(_Strict):
    plans: list[PlanSpec] = Field(min_length=1)
    audit: AuditSettings = Field(default_factory=AuditSettings)


@dataclass(frozen=True)
class PlanRegistry:
    plans: dict[str, PlanSpec] = field(default_factory=dict)
    audit: AuditSettings = field(default_factory=AuditSettings)
    source: str = ""


def load_plans(directory: Path) -> PlanRegistry | None:
    """The registry in `directory`/plans.yaml, None when there is none; RuleError if invalid."""
    path = directory / PLANS_FILE
    if not path.exists():
        return None
    return load_plans_file(path)


def load_plans_file(path: Path) -> PlanRegistry:
    """A registry from any file with the schema of plans.yaml; RuleError if invalid."""
    doc = load_yaml(path)
    spec = validate_document(doc, PlansFile)
    seen: dict[str, int] = {}
    for index, plan in enumerate(spec.plans):
        if plan.id in seen:
            raise doc.error(f"duplicate plan id {plan.id!r}, first at line {seen[plan.id]}",
                            ("plans", index, "id"))
        seen[plan.id] = doc.line_of(("plans", index))
        if set(plan.rates) != {"new_logo", "expansion", "renewal"}:
            raise doc.error("rates must give new_logo, expansion and renewal",
                            ("plans", index, "rates"))
    return PlanRegistry({p.id: p for p in spec.plans}, spec.audit, str(path))
