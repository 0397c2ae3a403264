"""Event contract v1: `deal_closed` and `account_churned`, validated straight from raw bytes.

These pydantic dataclasses are also the engine's records: validation builds them once, with
`__slots__`, and nothing copies them afterwards (one is made per event on the hot path).
Strict on purpose: a string "12" is not a number and 12.0 or `true` is not an int, so a producer
bug shows up as a dead letter instead of a silently coerced value. Timestamps are RFC 3339
date-times exactly (seconds, a zone), within the years a datetime can hold once in UTC.
A deal's `region` and `manager_id` are optional (added within v1): left out they are None;
given, they are non-empty strings like the ids, and `null` is refused like any other non-string.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AliasPath, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic.dataclasses import dataclass
from pydantic_core import CoreSchema, core_schema

NonEmpty = Annotated[str, Field(min_length=1)]
Amount = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

_STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

# RFC 3339 date-time: seconds required, an optional dot fraction, `Z` or a `+hh:mm` offset.
# ASCII digits only ([0-9], not \d, which the regex engine takes as any Unicode digit).
RFC3339 = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
           r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")
# The UTC epoch seconds a datetime can hold: 0001-01-01T00:00:00Z to the end of 9999.
FIRST_TIME = datetime(1, 1, 1, tzinfo=UTC).timestamp()
END_TIME = datetime(9999, 12, 31, tzinfo=UTC).timestamp() + 86400.0  # exclusive


class _Rfc3339:
    """The text of an RFC 3339 date-time, matched against RFC3339 in pydantic-core; the event's
    __post_init__ then parses it with `datetime.fromisoformat`, which reads that form exactly
    (and, with a plain `timezone`, makes a datetime whose timestamp() is faster to take than
    one from pydantic's own parser). Anything else is one error that says what is expected."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return core_schema.custom_error_schema(
            core_schema.str_schema(pattern=RFC3339, strict=True),
            "timestamp_format",
            custom_error_message="Input should be an RFC 3339 date-time with seconds and a zone, "
            "like 2026-01-05T10:00:00Z or 2026-01-05T10:00:00.5+05:30",
        )


class _PresentText:
    """A field that may be left out (then None, its default, which is never validated) but, when
    present, is a non-empty string like the ids: `null`, a number or `""` is a schema error."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return core_schema.str_schema(min_length=1, strict=True)


class _JsonIntOne:
    """`1` as a JSON integer: a Literal alone also takes `true`, `1.0` and `1e0`."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return core_schema.chain_schema(
            [core_schema.int_schema(strict=True), core_schema.literal_schema([1])])


Timestamp = Annotated[datetime, _Rfc3339]
OptionalText = Annotated[str | None, _PresentText]
SchemaVersion = Annotated[Literal[1], _JsonIntOne]


def _event_time(text: str, field: str) -> tuple[datetime, float]:
    """The datetime and UTC epoch seconds of an event's RFC 3339 text (already matched)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        # A lower-case `z` (read from Python 3.11 on only as `Z`), else a value no datetime
        # holds (a month 13, a leap second, an offset of 24 hours).
        try:
            when = datetime.fromisoformat(text.upper())
        except ValueError as error:
            raise ValueError(f"{field}: {error}") from None
    seconds = when.timestamp()
    if not FIRST_TIME <= seconds < END_TIME:
        # A datetime holds 9999-12-31T23:59:59-01:00, but not its UTC value, which
        # format_time writes.
        raise ValueError(f"{field}: {when.isoformat()} is outside the years 1 to 9999 in UTC")
    return when, seconds


def _commission(field: str) -> Any:
    # The contract nests these under `commission`; the record keeps them flat.
    return Field(validation_alias=AliasPath("commission", field))


@dataclass(config=_STRICT, slots=True)
class Deal:
    """A `deal_closed` event. Amounts are in the reporting currency once decoded."""

    event_type: Literal["deal_closed"]
    event_id: NonEmpty
    schema_version: SchemaVersion
    deal_id: NonEmpty
    account_id: NonEmpty
    rep_id: NonEmpty
    team: NonEmpty
    plan_id: NonEmpty
    deal_type: Literal["new_logo", "expansion", "renewal"]
    closed_at: Timestamp
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
    # Optional in contract v1 (an event without them is valid and reads them as None).
    region: OptionalText = None  # e.g. emea, amer, apac
    manager_id: OptionalText = None  # the rep's manager
    time: float = dataclasses.field(init=False, default=0.0)  # closed_at, UTC epoch seconds

    def __post_init__(self) -> None:
        if self.paid_upfront > self.amount:
            raise ValueError("commission.paid_upfront must not exceed commission.amount")
        text: str = self.closed_at  # type: ignore[assignment]  # RFC 3339 text until here
        self.closed_at, self.time = _event_time(text, "closed_at")

    def __repr__(self) -> str:
        return f"Deal({self.deal_id!r}, {self.deal_type}, account={self.account_id!r})"


@dataclass(config=_STRICT, slots=True)
class Churn:
    """An `account_churned` event."""

    event_type: Literal["account_churned"]
    event_id: NonEmpty
    schema_version: SchemaVersion
    account_id: NonEmpty
    churned_at: Timestamp
    churn_type: Literal["full", "partial"]
    arr_lost: Amount
    currency: Currency
    time: float = dataclasses.field(init=False, default=0.0)  # churned_at, UTC epoch seconds

    def __post_init__(self) -> None:
        text: str = self.churned_at  # type: ignore[assignment]  # RFC 3339 text until here
        self.churned_at, self.time = _event_time(text, "churned_at")

    def __repr__(self) -> str:
        return f"Churn({self.event_id!r}, {self.churn_type}, account={self.account_id!r})"


Event = Deal | Churn
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(
    Annotated[Deal | Churn, Field(discriminator="event_type")]
)
_COMMISSION = ("amount", "paid_upfront", "basis", "rate", "clawback_days")
# A deal's optional fields (default None) are written only when present, so a deal without
# them is stored exactly as before they existed. (Churn has none.)
_OPTIONAL = tuple(f.name for f in dataclasses.fields(Deal) if f.init and f.default is None)
_FIELDS = {
    cls: [f.name for f in dataclasses.fields(cls)
          if f.init and f.name not in _COMMISSION and f.name not in _OPTIONAL]
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
        for name in _OPTIONAL:
            value = getattr(event, name)
            if value is not None:
                data[name] = value
        data["commission"] = {name: getattr(event, name) for name in _COMMISSION}
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of `event_to_dict`, through the same (strict, JSON) validation as the wire."""
    return EVENT_ADAPTER.validate_json(json.dumps(data))


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with a `Z`, the form every alert carries."""
    if epoch == END_TIME:  # the exclusive end of 9999-Q4, an aggregate's event_time
        return "10000-01-01T00:00:00Z"
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


EVENT_TYPES = ("deal_closed", "account_churned")
