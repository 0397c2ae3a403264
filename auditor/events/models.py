"""Event contract v1: `deal_closed` and `account_churned`, validated straight from raw bytes.

These pydantic dataclasses are also the engine's records: validation builds them once, with
`__slots__`, and nothing copies them afterwards (one is made per event on the hot path).
Strict on purpose: a string "12" is not a number and 12.0 is not an int, so a producer bug shows
up as a dead letter instead of a silently coerced value.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AliasPath, AwareDatetime, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

NonEmpty = Annotated[str, Field(min_length=1)]
Amount = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

_STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


def _commission(field: str) -> Any:
    # The contract nests these under `commission`; the record keeps them flat.
    return Field(validation_alias=AliasPath("commission", field))


@dataclass(config=_STRICT, slots=True)
class Deal:
    """A `deal_closed` event. Amounts are in the reporting currency once decoded."""

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
    amount: Annotated[float, Field(ge=0)] = _commission("amount")
    paid_upfront: Annotated[float, Field(ge=0)] = _commission("paid_upfront")
    basis: Literal["acv", "tcv"] = _commission("basis")
    rate: Annotated[float, Field(ge=0, le=1)] = _commission("rate")
    clawback_days: Annotated[int, Field(ge=0)] = _commission("clawback_days")
    time: float = dataclasses.field(init=False, default=0.0)  # closed_at, UTC epoch seconds

    def __post_init__(self) -> None:
        if self.paid_upfront > self.amount:
            raise ValueError("commission.paid_upfront must not exceed commission.amount")
        self.time = self.closed_at.timestamp()

    def __repr__(self) -> str:
        return f"Deal({self.deal_id!r}, {self.deal_type}, account={self.account_id!r})"


@dataclass(config=_STRICT, slots=True)
class Churn:
    """An `account_churned` event."""

    event_type: Literal["account_churned"]
    event_id: NonEmpty
    schema_version: Literal[1]
    account_id: NonEmpty
    churned_at: AwareDatetime
    churn_type: Literal["full", "partial"]
    arr_lost: Amount
    currency: Currency
    time: float = dataclasses.field(init=False, default=0.0)  # churned_at, UTC epoch seconds

    def __post_init__(self) -> None:
        self.time = self.churned_at.timestamp()

    def __repr__(self) -> str:
        return f"Churn({self.event_id!r}, {self.churn_type}, account={self.account_id!r})"


Event = Deal | Churn
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(
    Annotated[Deal | Churn, Field(discriminator="event_type")]
)
_COMMISSION = ("amount", "paid_upfront", "basis", "rate", "clawback_days")
_FIELDS = {
    cls: [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _COMMISSION]
    for cls in (Deal, Churn)
}
_TIMES = ("closed_at", "churned_at")


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event in contract shape (commission nested), for a state store; amounts as converted."""
    data = {name: getattr(event, name) for name in _FIELDS[type(event)]}
    for name in _TIMES:
        if name in data:
            data[name] = data[name].isoformat()
    if isinstance(event, Deal):
        data["commission"] = {name: getattr(event, name) for name in _COMMISSION}
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of `event_to_dict`, through the same (strict, JSON) validation as the wire."""
    return EVENT_ADAPTER.validate_json(json.dumps(data))


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with a `Z`, the form every alert carries."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


EVENT_TYPES = ("deal_closed", "account_churned")
