"""The rule-test file format: rules/tests/*.yaml, written by whoever tunes the rules.

    tests:
      - name: churn 45 days after a new logo with no clawback is critical
        base: 2026-01-05T00:00:00Z          # `at` offsets count from here
        events:                              # in arrival order
          - deal: {deal_id: D1, at: 0d, commission: {paid_upfront: 1000}}
          - churn: {at: 45d}
        expect:                              # the alerts by the end (replay flushes aggregates)
          - {rule: early-churn-unrecovered, severity: critical, deal_id: D1, at_risk: 1000}

Event fields are those of the event contract (a misspelt one is an error, not ignored), plus
`at`. Every event field not given takes a default (see DEAL_DEFAULTS, CHURN_DEFAULTS): one account,
one rep, team and plan, USD, a 10,000 ACV twelve-month new-logo deal with 1,000 commission paid
upfront and no clawback, a full churn. Ids are generated unless given.

An expectation gives any of the fields of ExpectedAlert (`money_class: recoverable`, too); a field
not given matches any value.

Which alerts are compared: those of the rules listed in `rules:` if given, else those of the
rules named in `expect` or `excepted`; a test with none expects no alert from any rule. Every
compared alert must match exactly one expectation and every expectation one alert.

`excepted:` gives the findings a rule's exceptions kept from being alerts, by the end:
`{rule: R, exception: NAME, findings: 2}` (1 when not given). The compared rules' excepted
findings must be exactly those: an exception not listed must have excepted none.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasPath,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from auditor.events.models import Churn, Deal
from auditor.rules.hints import did_you_mean

_OFFSET = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([dhm]?)\s*$")
_UNIT_DAYS = {"d": 1.0, "": 1.0, "h": 1 / 24, "m": 1 / 1440}


def offset_days(value: str | float | int) -> float:
    """`45d`, `12h`, `30m`, `90.5d` or a plain number of days."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _OFFSET.match(value)
    if match is None:
        raise ValueError(f"not an offset: {value!r} (write e.g. 45d, 12h or 30m)")
    return float(match.group(1)) * _UNIT_DAYS[match.group(2)]


class _Strict(BaseModel):
    # strict: `at_risk: "1000"` is an error, as in rule files.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Offset = Annotated[str | float | int, Field(description="days after base: 45d, 12h, 30m")]
# The money classes of the alert contract (auditor.engine.alerts.MONEY_CLASSES).
MoneyClassName = Literal["unrecovered", "recoverable", "overpaid", "exposure"]


class EventFixture(_Strict):
    """One input event: `deal:` or `churn:` with any contract fields to override, plus `at`."""

    deal: dict[str, Any] | None = None
    churn: dict[str, Any] | None = None

    @field_validator("deal", "churn")
    @classmethod
    def _has_time(cls, fields: dict[str, Any] | None) -> dict[str, Any] | None:
        if fields is not None:
            offset_days(fields.get("at", 0))
        return fields

    @model_validator(mode="after")
    def _one_event(self) -> EventFixture:
        if (self.deal is None) == (self.churn is None):
            raise ValueError("give exactly one of deal or churn")
        return self


class ExpectedAlert(_Strict):
    rule: str
    severity: str | None = None
    deal_id: str | None = None
    account_id: str | None = None
    rep_id: str | None = None
    team: str | None = None
    plan_id: str | None = None
    group: str | None = None
    period: str | None = None
    at_risk: float | None = None  # compared to the cent
    # The class of the money at risk (DESIGN.md, Alert contract); null matches any.
    money_class: MoneyClassName | None = None
    value: float | None = None  # compared to 1e-6
    summary_contains: str | None = None


class ExpectedExcepted(_Strict):
    rule: str
    exception: str
    findings: int = Field(default=1, ge=1)


class RuleTest(_Strict):
    name: str = Field(min_length=1)
    base: AwareDatetime
    allowed_lateness_days: float = Field(default=30.0, ge=0)
    rules: list[str] | None = None
    events: list[EventFixture] = Field(min_length=1)
    expect: list[ExpectedAlert] = Field(default_factory=list)
    excepted: list[ExpectedExcepted] = Field(default_factory=list)

    def compared_rules(self) -> set[str] | None:
        """The rules whose alerts this test checks; None means every rule."""
        if self.rules is not None:
            return set(self.rules)
        if self.expect or self.excepted:
            return {e.rule for e in self.expect} | {e.rule for e in self.excepted}
        return None


class RuleTestFile(_Strict):
    tests: list[RuleTest] = Field(min_length=1)


DEAL_DEFAULTS: dict[str, Any] = {
    "event_type": "deal_closed", "schema_version": 1, "account_id": "acct-1",
    "rep_id": "rep-1", "team": "team-1", "plan_id": "plan-1", "deal_type": "new_logo",
    "term_months": 12, "acv": 10000.0, "discount_pct": 0.0, "currency": "USD",
}
COMMISSION_DEFAULTS: dict[str, Any] = {
    "amount": 1000.0, "paid_upfront": 1000.0, "basis": "acv", "rate": 0.1, "clawback_days": 0,
}
CHURN_DEFAULTS: dict[str, Any] = {
    "event_type": "account_churned", "schema_version": 1, "account_id": "acct-1",
    "churn_type": "full", "arr_lost": 10000.0, "currency": "USD",
}


def _contract_keys(model: type[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(top-level keys, keys under `commission`) of an event, read from the contract."""
    top, nested = {"at"}, set()
    fields = getattr(model, "__pydantic_fields__")  # noqa: B009 (no typed accessor)
    for name, info in fields.items():
        if getattr(info, "init", None) is False:
            continue
        alias = info.validation_alias
        if isinstance(alias, AliasPath):
            top.add(str(alias.path[0]))
            nested.add(str(alias.path[-1]))
        else:
            top.add(name)
    return frozenset(top), frozenset(nested)


EVENT_KEYS = {"deal": _contract_keys(Deal), "churn": _contract_keys(Churn)}


def unknown_event_fields(kind: str, fields: dict[str, Any]
                         ) -> list[tuple[tuple[str, ...], str]]:
    """(path within the event, message) for each field the contract does not have: a fixture
    must not silently test a default instead of the value its author meant."""
    top, nested = EVENT_KEYS[kind]
    problems: list[tuple[tuple[str, ...], str]] = []
    for key, value in fields.items():
        if key not in top:
            problems.append(((key,), f"unknown {kind} field {key!r}{did_you_mean(key, top)}"))
        elif nested and key == "commission":
            if not isinstance(value, dict):
                problems.append(((key,), "commission must be a mapping"))
                continue
            problems.extend(((key, k), f"unknown commission field {k!r}"
                             f"{did_you_mean(k, nested)}") for k in value if k not in nested)
    return problems
