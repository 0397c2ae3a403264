"""The vocabulary every rule kind's YAML spec is written in: ids, severities, filters,
thresholds, money classes, and the keys every rule has (`RuleSpecBase`).

Unknown keys are refused (a typo must not silently drop a condition) and nothing is coerced (a
number written as a string is an error).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Severity = Literal["info", "warning", "critical"]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Days = Annotated[float, Field(ge=0)]
Scalar = str | int | float | bool


class Strict(BaseModel):
    # strict: a number written as a string ("0.3", "25%") is an error, never coerced.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Comparison(Strict):
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


class SeverityTier(Strict):
    max_days: Days
    severity: Severity


class SeverityByDays(Strict):
    """Severity tiers by the days between the joined events: the first tier that holds wins."""

    tiers: list[SeverityTier] = Field(min_length=1)
    otherwise: Severity


THRESHOLD_OPS = ("above", "below", "at_least", "at_most")


class Threshold(Strict):
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


class MoneyClassByClawback(Strict):
    """A class decided per deal: `clawback_covers` when the deal's clawback window (more than 0
    days) reaches the churn day, else `otherwise`."""

    otherwise: MoneyClassName
    clawback_covers: MoneyClassName


# The fields of a finding an exception may name, each with one value or a list of values.
EXCEPTION_KEYS = ("account_id", "deal_id", "rep_id", "team", "plan_id")
ExceptionName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Value = Annotated[str, Field(min_length=1)]
Values = Value | Annotated[list[Value], Field(min_length=1)]


class RuleExceptionSpec(Strict):
    """Findings of the rule that are not alerts, for a stated reason, until a date. Every key
    given must hold. A finding about a deal is matched by its fields and by `deal:` (a deal
    filter on it); an aggregate's only by its group, with the key its rule groups by."""

    name: ExceptionName
    reason: str
    owner: str
    # A finding on or before this day (UTC) is excepted; for an aggregate, by its period's
    # last day. Compared with the finding's time, not the clock: replays stay deterministic.
    expires: date
    account_id: Values | None = None
    deal_id: Values | None = None
    rep_id: Values | None = None
    team: Values | None = None
    plan_id: Values | None = None
    deal: Filter | None = None

    @field_validator("reason", "owner")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _matches_something(self) -> RuleExceptionSpec:
        if not self.values() and not self.deal:
            raise ValueError("say which findings it excepts: give any of "
                             + ", ".join(EXCEPTION_KEYS) + " or deal (a deal filter)")
        return self

    def values(self) -> dict[str, tuple[str, ...]]:
        """The keys given, each with its values."""
        given = {key: getattr(self, key) for key in EXCEPTION_KEYS}
        return {key: (value,) if isinstance(value, str) else tuple(value)
                for key, value in given.items() if value is not None}


RuleStatus = Literal["experimental", "stable", "deprecated"]
# The alert label a rule's status is shown by (stable rules' alerts carry none).
STATUS_LABEL = "status"


class RuleSpecBase(Strict):
    """The keys every rule has, whatever its kind. A kind's spec adds `kind` (a Literal of its
    name) and its own keys; FILTERS names its filter keys and the event each one tests."""

    # filter key -> the event it tests ("deal" or "churn"): checked against that event's fields
    FILTERS: ClassVar[dict[str, str]] = {}

    id: RuleId
    description: str = Field(min_length=1)
    owner: str | None = None
    runbook: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    # experimental: its findings are alerts marked `labels.status: experimental`, kept out of
    # the money metrics and totals (and so out of finance's alert rules) until it is stable;
    # deprecated: it still runs, `rules check` warns.
    status: RuleStatus = "stable"
    # What the rule's at_risk money is: required with an at_risk, refused without one.
    money_class: MoneyClassName | MoneyClassByClawback | None = None
    exceptions: list[RuleExceptionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _money_is_stated(self) -> RuleSpecBase:
        at_risk = getattr(self, "at_risk", "none")
        if at_risk != "none" and self.money_class is None:
            raise ValueError("at_risk needs a money_class: unrecovered, recoverable, exposure "
                             "or overpaid (or {otherwise: ..., clawback_covers: ...})")
        if at_risk == "none" and self.money_class is not None:
            raise ValueError("money_class applies to a rule with an at_risk only")
        if STATUS_LABEL in self.labels:
            raise ValueError(f"labels: {STATUS_LABEL} is set from the rule's status; write "
                             "status: experimental | stable | deprecated")
        if isinstance(self.money_class, MoneyClassByClawback) and not self.has_churn_days():
            raise ValueError("a money_class decided by clawback needs the days from a deal to "
                             "its churn: kind churn-after-deal, or an aggregate counting "
                             "churned deals within churn_within_days")
        return self

    def has_churn_days(self) -> bool:
        """Its findings know the days from a deal to a churn of its account."""
        return False

    def grouped_by(self) -> str | None:
        """The field its findings are groups of (an aggregate's); None: each is about a deal."""
        return None

