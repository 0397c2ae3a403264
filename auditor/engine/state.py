"""Per-key state of the two stages: what one account and one aggregate period remember."""

from __future__ import annotations

from typing import Any

from auditor.engine.facts import DealEntry
from auditor.events.models import Churn, Deal, event_from_dict, event_to_dict

# Most accounts never have a deal-after-churn finding: they share this until their first.
NOTHING_FIRED: frozenset[str] = frozenset()


class AccountState:
    """The deals and churns of one account still inside the horizon, and what already fired."""

    __slots__ = ("churns", "deals", "event_ids", "fired")

    def __init__(self) -> None:
        self.deals: dict[str, Deal] = {}
        self.churns: list[Churn] = []
        self.event_ids: set[str] = set()
        # "rule\x1fdeal_id" of rules that fire once per deal (deal-after-churn); the shared
        # empty NOTHING_FIRED until the first (`mark_fired`).
        self.fired: set[str] | frozenset[str] = NOTHING_FIRED

    def mark_fired(self, key: str) -> None:
        fired = self.fired
        if type(fired) is set:
            fired.add(key)
        else:
            self.fired = {*fired, key}

    def prune(self, cutoff: float) -> bool:
        """Forget events older than `cutoff`; True when nothing is left."""
        deals = self.deals
        if deals:
            old = [d for d, deal in deals.items() if deal.time < cutoff]
            if old:
                event_ids = self.event_ids
                for deal_id in old:
                    event_ids.discard(deals.pop(deal_id).event_id)
                if self.fired:
                    ends = tuple("\x1f" + deal_id for deal_id in old)
                    self.fired = {key for key in self.fired if not key.endswith(ends)}
        churns = self.churns
        if churns:
            kept = [c for c in churns if c.time >= cutoff]
            if len(kept) != len(churns):
                event_ids = self.event_ids
                for churn in churns:
                    if churn.time < cutoff:
                        event_ids.discard(churn.event_id)
                self.churns = kept
        return not self.deals and not self.churns

    def to_dict(self) -> dict[str, Any]:
        return {
            "deals": [event_to_dict(d) for d in self.deals.values()],
            "churns": [event_to_dict(c) for c in self.churns],
            "fired": sorted(self.fired),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        state = cls()
        for raw in data["deals"]:
            deal = event_from_dict(raw)
            assert isinstance(deal, Deal)
            state.deals[deal.deal_id] = deal
            state.event_ids.add(deal.event_id)
        for raw in data["churns"]:
            churn = event_from_dict(raw)
            assert isinstance(churn, Churn)
            state.churns.append(churn)
            state.event_ids.add(churn.event_id)
        state.fired = set(data["fired"])
        return state


class AggregateState:
    """One (rule, group, quarter): the contributing deals by (account, deal) key (facts.member),
    so re-delivery cannot count twice, and running totals, so a live value costs O(1) per fact."""

    __slots__ = ("churned", "churned_count", "churned_upfront", "deals", "end", "fired", "group",
                 "period", "rule", "settled", "totals")

    def __init__(self, rule: str, group: str, period: str, end: float) -> None:
        self.rule = rule
        self.group = group
        self.period = period
        self.end = end
        # member key -> (deal_type, commission amount, acv, paid_upfront)
        self.deals: dict[str, DealEntry] = {}
        self.churned: set[str] = set()  # member keys of deals that count as churned early
        # deal_type -> [deals, commission, acv]
        self.totals: dict[str, list[float]] = {}
        self.churned_count = 0  # churned deals that are also in `deals`
        self.churned_upfront = 0.0
        self.settled = False
        self.fired = False

    def add_deal(self, key: str, deal_type: str, amount: float, acv: float,
                 paid_upfront: float) -> bool:
        return self.add_entry(key, (deal_type, amount, acv, paid_upfront))

    def add_entry(self, key: str, entry: DealEntry) -> bool:
        """`add_deal` with the deal's figures as one tuple, kept as given (shared, not copied)."""
        deals = self.deals
        if key in deals:
            return False
        deals[key] = entry
        deal_type, amount, acv, _ = entry
        total = self.totals.get(deal_type)
        if total is None:
            self.totals[deal_type] = [1, amount, acv]
        else:
            total[0] += 1
            total[1] += amount
            total[2] += acv
        if key in self.churned:
            self._count_churned(key)
        return True

    def add_churned(self, key: str) -> bool:
        if key in self.churned:
            return False
        self.churned.add(key)
        if key in self.deals:
            self._count_churned(key)
        return True

    def _count_churned(self, key: str) -> None:
        self.churned_count += 1
        self.churned_upfront += self.deals[key][3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "group": self.group, "period": self.period, "end": self.end,
            "deals": {k: list(v) for k, v in self.deals.items()},
            "churned": sorted(self.churned), "settled": self.settled, "fired": self.fired,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateState:
        state = cls(data["rule"], data["group"], data["period"], data["end"])
        for key in data["churned"]:
            state.add_churned(key)
        for key, (deal_type, amount, acv, upfront) in data["deals"].items():
            state.add_deal(key, deal_type, amount, acv, upfront)
        state.settled = data["settled"]
        state.fired = data["fired"]
        return state
