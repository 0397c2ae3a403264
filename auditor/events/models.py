"""Event contract v1: the pydantic models of `deal_closed` and `account_churned`.

Strict on purpose: a string "12" is not a number and 12.0 is not an int, so a producer bug shows
up as a dead letter instead of a silently coerced value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

NonEmpty = Annotated[str, Field(min_length=1)]
Amount = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class Commission(BaseModel):
    model_config = _STRICT

    amount: Amount
    paid_upfront: Amount
    basis: Literal["acv", "tcv"]
    rate: Fraction
    clawback_days: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _upfront_within_amount(self) -> Commission:
        if self.paid_upfront > self.amount:
            raise ValueError("commission.paid_upfront must not exceed commission.amount")
        return self


class DealClosed(BaseModel):
    model_config = _STRICT

    event_type: Literal["deal_closed"]
    event_id: NonEmpty
    schema_version: Literal[1]
    deal_id: NonEmpty
    account_id: NonEmpty
    rep_id: NonEmpty
    team: NonEmpty
    plan_id: NonEmpty
    deal_type: Literal["new_logo", "expansion", "renewal"]
    closed_at: AwareDatetime
    term_months: Annotated[int, Field(ge=1)]
    acv: Amount
    tcv: Amount
    discount_pct: Fraction
    currency: Currency
    commission: Commission


class AccountChurned(BaseModel):
    model_config = _STRICT

    event_type: Literal["account_churned"]
    event_id: NonEmpty
    schema_version: Literal[1]
    account_id: NonEmpty
    churned_at: AwareDatetime
    churn_type: Literal["full", "partial"]
    arr_lost: Amount
    currency: Currency


EventModel = Annotated[DealClosed | AccountChurned, Field(discriminator="event_type")]
EVENT_TYPES = ("deal_closed", "account_churned")
