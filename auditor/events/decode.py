"""Raw bytes in, a validated engine record or a dead letter out -- never an exception."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from auditor.events.currency import CurrencyTable
from auditor.events.deadletter import DeadLetter
from auditor.events.models import AccountChurned, DealClosed, EventModel
from auditor.events.records import Churn, Deal, Event

MAX_EVENT_BYTES = 1024 * 1024

_ADAPTER: TypeAdapter[DealClosed | AccountChurned] = TypeAdapter(EventModel)

# pydantic error types that say what kind of bad input this is, before any field is looked at.
_WHOLE_INPUT_REASONS = {
    "json_invalid": "bad_json",
    "json_type": "bad_json",
    "dict_type": "not_object",
    "model_type": "not_object",
    "model_attributes_type": "not_object",
    "union_tag_invalid": "unknown_event_type",
}


class EventDecoder:
    """Validates one event (pydantic, strict) and converts its amounts to the reporting currency."""

    def __init__(self, currency: CurrencyTable, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.currency = currency
        self.max_bytes = max_bytes

    def decode(self, raw: bytes, source: str) -> Event | DeadLetter:
        if len(raw) > self.max_bytes:
            return DeadLetter(
                "too_large",
                f"event is {len(raw)} bytes, over the limit of {self.max_bytes}",
                source,
                _text(raw[: self.max_bytes]) + "...",
            )
        try:
            model = _ADAPTER.validate_json(raw)
        except ValidationError as error:
            return _dead_letter(error, raw, source)
        if isinstance(model, DealClosed):
            return self._deal(model, raw, source)
        return self._churn(model, raw, source)

    def _deal(self, m: DealClosed, raw: bytes, source: str) -> Deal | DeadLetter:
        rate = self.currency.rate(m.currency)
        if rate is None:
            return _unsupported(m.currency, raw, source, m.event_type)
        c = m.commission
        return Deal(
            event_id=m.event_id,
            deal_id=m.deal_id,
            account_id=m.account_id,
            rep_id=m.rep_id,
            team=m.team,
            plan_id=m.plan_id,
            deal_type=m.deal_type,
            closed_at=m.closed_at.timestamp(),
            term_months=m.term_months,
            acv=m.acv * rate,
            tcv=m.tcv * rate,
            discount_pct=m.discount_pct,
            currency=m.currency,
            amount=c.amount * rate,
            paid_upfront=c.paid_upfront * rate,
            basis=c.basis,
            rate=c.rate,
            clawback_days=c.clawback_days,
        )

    def _churn(self, m: AccountChurned, raw: bytes, source: str) -> Churn | DeadLetter:
        rate = self.currency.rate(m.currency)
        if rate is None:
            return _unsupported(m.currency, raw, source, m.event_type)
        return Churn(
            event_id=m.event_id,
            account_id=m.account_id,
            churned_at=m.churned_at.timestamp(),
            churn_type=m.churn_type,
            arr_lost=m.arr_lost * rate,
            currency=m.currency,
        )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _unsupported(currency: str, raw: bytes, source: str, event_type: str) -> DeadLetter:
    return DeadLetter(
        "unsupported_currency",
        f"currency: no rate for {currency} in currency.yaml",
        source,
        _text(raw),
        event_type,
    )


def _dead_letter(error: ValidationError, raw: bytes, source: str) -> DeadLetter:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    reason = _WHOLE_INPUT_REASONS.get(first["type"]) if not first["loc"] else None
    if first["type"] == "union_tag_not_found":
        return DeadLetter("schema", "event_type: field required", source, _text(raw))
    if reason is not None:
        return DeadLetter(reason, first["msg"], source, _text(raw))
    # Errors inside a union member are located as (event_type, field, ...).
    event_type = str(first["loc"][0])
    details = []
    for problem in problems[:5]:
        field = ".".join(str(part) for part in problem["loc"][1:]) or "event"
        details.append(f"{field}: {problem['msg']}")
    return DeadLetter("schema", "; ".join(details), source, _text(raw), event_type)
