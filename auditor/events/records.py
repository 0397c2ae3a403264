"""Validated events as the engine sees them: amounts in the reporting currency, times as UTC epoch
seconds. Plain `__slots__` classes because one is made per event on the hot path."""

from __future__ import annotations

from datetime import UTC, datetime


class Deal:
    __slots__ = (
        "account_id",
        "acv",
        "amount",
        "basis",
        "clawback_days",
        "closed_at",
        "currency",
        "deal_id",
        "deal_type",
        "discount_pct",
        "event_id",
        "paid_upfront",
        "plan_id",
        "rate",
        "rep_id",
        "tcv",
        "team",
        "term_months",
    )
    event_type = "deal_closed"

    def __init__(
        self,
        *,
        event_id: str,
        deal_id: str,
        account_id: str,
        rep_id: str,
        team: str,
        plan_id: str,
        deal_type: str,
        closed_at: float,
        term_months: int,
        acv: float,
        tcv: float,
        discount_pct: float,
        currency: str,
        amount: float,
        paid_upfront: float,
        basis: str,
        rate: float,
        clawback_days: int,
    ) -> None:
        self.event_id = event_id
        self.deal_id = deal_id
        self.account_id = account_id
        self.rep_id = rep_id
        self.team = team
        self.plan_id = plan_id
        self.deal_type = deal_type
        self.closed_at = closed_at
        self.term_months = term_months
        self.acv = acv
        self.tcv = tcv
        self.discount_pct = discount_pct
        self.currency = currency
        self.amount = amount
        self.paid_upfront = paid_upfront
        self.basis = basis
        self.rate = rate
        self.clawback_days = clawback_days

    @property
    def time(self) -> float:
        return self.closed_at

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Deal:
        return cls(**data)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Deal({self.deal_id!r}, {self.deal_type}, account={self.account_id!r})"


class Churn:
    __slots__ = ("account_id", "arr_lost", "churn_type", "churned_at", "currency", "event_id")
    event_type = "account_churned"

    def __init__(
        self,
        *,
        event_id: str,
        account_id: str,
        churned_at: float,
        churn_type: str,
        arr_lost: float,
        currency: str,
    ) -> None:
        self.event_id = event_id
        self.account_id = account_id
        self.churned_at = churned_at
        self.churn_type = churn_type
        self.arr_lost = arr_lost
        self.currency = currency

    @property
    def time(self) -> float:
        return self.churned_at

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Churn:
        return cls(**data)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Churn({self.event_id!r}, {self.churn_type}, account={self.account_id!r})"


Event = Deal | Churn


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with a `Z`, the form every alert carries."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
