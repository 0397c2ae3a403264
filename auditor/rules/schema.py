"""The rule-file format, as pydantic models: what sales ops may write in rules/*.yaml.

Unknown keys are refused (a typo must not silently drop a condition) and every rule carries
metadata, so the format can grow by new kinds, measures and parameters without breaking files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["info", "warning", "critical"]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Days = Annotated[float, Field(ge=0)]
Scalar = str | int | float | bool


class _Strict(BaseModel):
    # strict: a number written as a string ("0.3", "25%") is an error, never coerced.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Comparison(_Strict):
    """A condition on one event field, written as data; every key given must hold."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    # Names of lists defined under `lists:` in any file of the rules directory.
    in_list: str | None = None
    not_in_list: str | None = None


# `field: value` means equality, `field: [a, b]` means one of, a mapping gives comparisons.
Condition = Scalar | list[Scalar] | Comparison
Filter = dict[str, Condition]


class SeverityTier(_Strict):
    max_days: Days
    severity: Severity


class SeverityByDays(_Strict):
    """Severity tiers by the days between the joined events: the first tier that holds wins."""

    tiers: list[SeverityTier] = Field(min_length=1)
    otherwise: Severity


THRESHOLD_OPS = ("above", "below", "at_least", "at_most")


class Threshold(_Strict):
    """The limit an aggregate value must cross to fire; exactly one key."""

    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Threshold:
        given = [k for k in THRESHOLD_OPS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of above, below, at_least, at_most")
        return self


MoneyClassName = Literal["unrecovered", "recoverable", "exposure", "overpaid"]


class MoneyClassByClawback(_Strict):
    """A class decided per deal: `clawback_covers` when the deal's clawback window (more than 0
    days) reaches the churn day, else `otherwise`."""

    otherwise: MoneyClassName
    clawback_covers: MoneyClassName


class _RuleBase(_Strict):
    id: RuleId
    description: str = Field(min_length=1)
    owner: str | None = None
    runbook: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    # What the rule's at_risk money is: required with an at_risk, refused without one.
    money_class: MoneyClassName | MoneyClassByClawback | None = None

    @model_validator(mode="after")
    def _money_is_stated(self) -> _RuleBase:
        at_risk = getattr(self, "at_risk", "none")
        if at_risk != "none" and self.money_class is None:
            raise ValueError("at_risk needs a money_class: unrecovered, recoverable, exposure "
                             "or overpaid (or {otherwise: ..., clawback_covers: ...})")
        if at_risk == "none" and self.money_class is not None:
            raise ValueError("money_class applies to a rule with an at_risk only")
        if isinstance(self.money_class, MoneyClassByClawback) and not self._has_churn_days():
            raise ValueError("a money_class decided by clawback needs the days from a deal to "
                             "its churn: kind churn-after-deal, or measure early_churn_share")
        return self

    def _has_churn_days(self) -> bool:
        return False


class DealRuleSpec(_RuleBase):
    """Fires on one deal by itself."""

    kind: Literal["deal"]
    deal: Filter = Field(default_factory=dict)
    # paid_upfront >= share x commission.amount
    min_upfront_share: Annotated[float, Field(ge=0, le=1)] | None = None
    severity: Severity
    at_risk: Literal["none", "paid_upfront", "commission_amount", "upfront_beyond_first_year"]


class JoinRuleSpec(_RuleBase):
    """Fires on a deal and a churn of the same account within a window, in either arrival order."""

    kind: Literal["churn-after-deal", "deal-after-churn"]
    deal: Filter = Field(default_factory=dict)
    churn: Filter = Field(default_factory=dict)
    within_days: Days
    # Skip the pair when the deal's clawback window (clawback_days > 0) reaches the churn.
    unless_clawback_covers: bool = False
    severity: Severity | SeverityByDays
    at_risk: Literal[
        "none", "paid_upfront", "paid_upfront_x_churn_share", "commission_amount"
    ]

    def _has_churn_days(self) -> bool:
        return self.kind == "churn-after-deal"


Measure = Literal["renewal_rate_ratio", "new_logo_commission_share", "early_churn_share",
                  "commission_retention"]
# Measures that count a group's deals whose account churned soon enough after the close.
CHURN_MEASURES = ("early_churn_share", "commission_retention")


class AggregateRuleSpec(_RuleBase):
    """Fires on a group (team, plan, rep) whose deals of one calendar quarter cross a threshold."""

    kind: Literal["aggregate"]
    measure: Measure
    group_by: Literal["team", "plan_id", "rep_id"]
    period: Literal["quarter"] = "quarter"
    deal: Filter = Field(default_factory=dict)
    churn: Filter = Field(default_factory=dict)
    # early_churn_share: a deal counts as churned when a matching churn comes this soon after it.
    churn_within_days: Days | None = None
    # commission_retention: ... within this many calendar months after the close (the period
    # settles that long after its end).
    churn_within_months: Annotated[int, Field(ge=1, le=120)] | None = None
    # renewal_rate_ratio counts renewal and new_logo deals apart, so it takes a mapping.
    min_deals: Annotated[int, Field(ge=0)] | dict[str, Annotated[int, Field(ge=0)]] = 0
    threshold: Threshold
    settle_days: Days = 0
    severity: Severity
    at_risk: Literal["none", "churned_paid_upfront"] = "none"

    def _has_churn_days(self) -> bool:
        return self.measure == "early_churn_share"

    @model_validator(mode="after")
    def _measure_needs(self) -> AggregateRuleSpec:
        if self.measure == "early_churn_share" and self.churn_within_days is None:
            raise ValueError("measure early_churn_share needs churn_within_days")
        if self.measure != "early_churn_share" and self.churn_within_days is not None:
            raise ValueError(f"churn_within_days does not apply to measure {self.measure}")
        if self.measure == "commission_retention" and self.churn_within_months is None:
            raise ValueError("measure commission_retention needs churn_within_months")
        if self.measure != "commission_retention" and self.churn_within_months is not None:
            raise ValueError(f"churn_within_months does not apply to measure {self.measure}")
        if self.measure == "renewal_rate_ratio":
            by_type = self.min_deals
            if not isinstance(by_type, dict) or set(by_type) - {"renewal", "new_logo"}:
                raise ValueError("renewal_rate_ratio takes min_deals: {renewal: N, new_logo: N}")
        elif isinstance(self.min_deals, dict):
            raise ValueError(f"measure {self.measure} takes min_deals as one number")
        if self.at_risk == "churned_paid_upfront" and self.measure != "early_churn_share":
            raise ValueError("at_risk churned_paid_upfront applies to early_churn_share only")
        return self


RuleSpec = Annotated[DealRuleSpec | JoinRuleSpec | AggregateRuleSpec, Field(discriminator="kind")]


ListName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class RuleFile(_Strict):
    """A rules/*.yaml file: rules, and named lists of values any rule's filter can use."""

    lists: dict[ListName, list[Scalar]] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


class CurrencyFile(_Strict):
    reporting_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[float, Field(gt=0)]] = (
        Field(default_factory=dict)
    )


def rule_file_json_schema() -> dict[str, Any]:
    """JSON Schema of a rules/*.yaml file, for editors (YAML language servers read it)."""
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "comp-auditor rule file"
    return schema
