"""Raw bytes in, a validated event or a dead letter out -- never an exception."""

from __future__ import annotations

import re
from collections.abc import Callable
from sys import intern

from pydantic import ValidationError

from auditor.events.currency import CurrencyTable
from auditor.events.deadletter import DeadLetter
from auditor.events.models import EVENT_ADAPTER, Churn, Deal, Event

MAX_EVENT_BYTES = 1024 * 1024
# The head of a too_large input kept in its dead letter (which says `"truncated": true`).
TOO_LARGE_KEPT_BYTES = 4096

# The JSON parser takes NaN, Infinity and -Infinity, which are not JSON: outside a string, they
# make a line bad_json even in a field that is ignored. A JSON string (one left open runs to the
# end, so no quote is scanned from twice: linear time), or either token.
_STRING_OR_CONSTANT = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|(NaN|Infinity)', re.DOTALL)

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
            # Only the head, decoded: the input may be far larger than any dead letter.
            head = _head(raw, TOO_LARGE_KEPT_BYTES)
            return DeadLetter(
                "too_large",
                f"event is {len(raw)} bytes, over the limit of {self.max_bytes}; "
                f"original cut to its first {len(head)} bytes",
                source, _text(head), original_bytes=len(raw), truncated=True,
            )
        # NaN or Infinity: first a memchr for their first letters (an int operand: a tenth of
        # the cost of a bytes one), then the substrings, and only then the careful scan.
        if (78 in raw or 73 in raw) and (b"NaN" in raw or b"Infinity" in raw):  # N, I
            constant = non_json_constant(raw)
            if constant is not None:
                return DeadLetter("bad_json", constant, source, _text(raw),
                                  original_bytes=len(raw))
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
                    source, _text(raw), event.event_type, len(raw),
                )
            _convert(event, rate)
        _share_values(event)
        return event


# Texts most events repeat (an account's id in each of its events, a few teams, plans, reps):
# each event's own copy is swapped for one shared string. Interned strings are freed with
# their last holder, so this keeps nothing alive; about 50 bytes of every retained deal.
# Written out field by field: a loop of getattr and setattr cost twice as much, per event.
def _share_deal_texts(deal: Deal) -> None:
    deal.account_id = intern(deal.account_id)
    deal.rep_id = intern(deal.rep_id)
    deal.team = intern(deal.team)
    deal.plan_id = intern(deal.plan_id)
    deal.deal_type = intern(deal.deal_type)  # type: ignore[assignment]
    deal.currency = intern(deal.currency)
    deal.basis = intern(deal.basis)  # type: ignore[assignment]
    if deal.region is not None:
        deal.region = intern(deal.region)
    if deal.manager_id is not None:
        deal.manager_id = intern(deal.manager_id)


# Numbers many deals repeat (a discount, a commission rate), or that repeat another number of
# the deal (a one-year deal's TCV is its ACV; a commission paid upfront whole): one float object
# for all, where each was 24 bytes of every retained deal. A zero is left as it is (sharing
# one could change its sign).
_NUMBERS: dict[float, float] = {}


def _shared(value: float) -> float:
    if not value:
        return value
    shared = _NUMBERS.get(value)
    if shared is None:
        if len(_NUMBERS) >= 4096:  # bounded, whatever the input
            _NUMBERS.clear()
        shared = _NUMBERS[value] = value
    return shared


def _share_deal_numbers(deal: Deal) -> None:
    deal.discount_pct = _shared(deal.discount_pct)
    deal.rate = _shared(deal.rate)
    if deal.tcv == deal.acv and deal.acv:
        deal.tcv = deal.acv
    if deal.paid_upfront == deal.amount and deal.amount:
        deal.paid_upfront = deal.amount


def _share_churn_texts(churn: Churn) -> None:
    churn.account_id = intern(churn.account_id)
    churn.churn_type = intern(churn.churn_type)  # type: ignore[assignment]
    churn.currency = intern(churn.currency)


def _share_values(event: Event) -> None:
    """Repeated texts and numbers of a decoded event swapped for shared ones."""
    if type(event) is Deal:
        _share_deal_texts(event)
        _share_deal_numbers(event)
    else:
        _share_churn_texts(event)  # type: ignore[arg-type]


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


def _head(raw: bytes, size: int) -> bytes:
    """At most `size` bytes of `raw`, not ending inside a UTF-8 character."""
    if len(raw) <= size:
        return raw
    end = size
    # raw[end], the first byte left out, continues a character (of 4 bytes at most): back to
    # the character's first byte, and leave it out too.
    while end > size - 3 and 0x80 <= raw[end] < 0xC0:
        end -= 1
    return raw[:end] if raw[end] >= 0xC0 else raw[:size]


def non_json_constant(raw: bytes) -> str | None:
    """The bad_json detail if NaN, Infinity or -Infinity stands outside a string in `raw`."""
    for match in _STRING_OR_CONSTANT.finditer(raw):
        if match.group(1) is not None:
            name = match.group(1).decode()
            start = match.start(1)
            if name == "Infinity" and start > 0 and raw[start - 1:start] == b"-":
                name, start = "-Infinity", start - 1
            return f"Invalid JSON: {name} is not a JSON value, at byte {start + 1}"
    return None


def _dead_letter(error: ValidationError, raw: bytes, source: str) -> DeadLetter:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    if first["type"] == "union_tag_not_found":
        return DeadLetter("schema", "event_type: field required", source, _text(raw),
                          original_bytes=len(raw))
    reason = _WHOLE_INPUT_REASONS.get(first["type"]) if not first["loc"] else None
    if reason is not None:
        return DeadLetter(reason, first["msg"], source, _text(raw), original_bytes=len(raw))
    # Errors inside a union member are located as (event_type, field, ...).
    event_type = str(first["loc"][0])
    details = []
    for problem in problems[:5]:
        field = ".".join(str(part) for part in problem["loc"][1:])
        message = problem["msg"].removeprefix("Value error, ")
        # A check of the whole event (in __post_init__) names its fields in its message.
        details.append(f"{field}: {message}" if field else message)
    return DeadLetter("schema", "; ".join(details), source, _text(raw), event_type, len(raw))
