"""Raw bytes in, a validated event or a dead letter out -- never an exception."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from auditor.events.currency import CurrencyTable
from auditor.events.deadletter import DeadLetter
from auditor.events.models import EVENT_ADAPTER, Deal, Event

MAX_EVENT_BYTES = 1024 * 1024
TOO_LARGE_KEPT_BYTES = 4096

# pydantic error types that say what kind of bad input this is, before any field is looked at.
_WHOLE_INPUT_REASONS = {
    "json_invalid": "bad_json",
    "json_type": "bad_json",
    "dict_type": "not_object",
    "model_type": "not_object",
    "dataclass_type": "not_object",
    "model_attributes_type": "not_object",
    "union_tag_invalid": "unknown_event_type",
}


class EventDecoder:
    """Validates one event (pydantic, strict) and converts its amounts to the reporting currency."""

    def __init__(self, currency: CurrencyTable, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.currency = currency
        self.reporting = currency.reporting
        self.max_bytes = max_bytes
        # The adapter's core validator itself: TypeAdapter.validate_json only passes its
        # defaults on to it, for a tenth of the cost of validating a deal.
        self._validate: Callable[[bytes], Event] = EVENT_ADAPTER.validator.validate_json

    def set_currency(self, currency: CurrencyTable) -> None:
        """Hot reload: rates from the next event on."""
        self.currency, self.reporting = currency, currency.reporting

    def decode(self, raw: bytes, source: str) -> Event | DeadLetter:
        if len(raw) > self.max_bytes:
            # Only the head: the dead letter itself must fit where dead letters go (a Kafka
            # message is 1 MB at most by default).
            return DeadLetter(
                "too_large",
                f"event is {len(raw)} bytes, over the limit of {self.max_bytes}; "
                f"original cut to its first {TOO_LARGE_KEPT_BYTES} bytes",
                source,
                _text(raw[:TOO_LARGE_KEPT_BYTES]) + "...",
            )
        try:
            event = self._validate(raw)
        except ValidationError as error:
            return _dead_letter(error, raw, source)
        if event.currency != self.reporting:
            rate = self.currency.rate(event.currency)
            if rate is None:
                return DeadLetter(
                    "unsupported_currency",
                    f"currency: no rate for {event.currency} in currency.yaml",
                    source, _text(raw), event.event_type,
                )
            _convert(event, rate)
        return event


def _convert(event: Event, rate: float) -> None:
    if type(event) is Deal:
        event.acv *= rate
        event.tcv *= rate
        event.amount *= rate
        event.paid_upfront *= rate
    else:
        event.arr_lost *= rate  # type: ignore[union-attr]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _dead_letter(error: ValidationError, raw: bytes, source: str) -> DeadLetter:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    if first["type"] == "union_tag_not_found":
        return DeadLetter("schema", "event_type: field required", source, _text(raw))
    reason = _WHOLE_INPUT_REASONS.get(first["type"]) if not first["loc"] else None
    if reason is not None:
        return DeadLetter(reason, first["msg"], source, _text(raw))
    # Errors inside a union member are located as (event_type, field, ...).
    event_type = str(first["loc"][0])
    details = []
    for problem in problems[:5]:
        field = ".".join(str(part) for part in problem["loc"][1:]) or "event"
        details.append(f"{field}: {problem['msg'].removeprefix('Value error, ')}")
    return DeadLetter("schema", "; ".join(details), source, _text(raw), event_type)
