"""Per-key state of the two stages: what one account and one aggregate period remember."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from auditor.engine.facts import DealEntry
from auditor.events.models import Churn, Deal, event_from_dict, event_to_dict

# Most accounts never have a deal-after-churn finding: they share this until their first.
NOTHING_FIRED: frozenset[str] = frozenset()
# How much longer than its deal a ledger entry is kept: a deal's quarter ends at most 92 days
# after it, and an aggregate period's money can be claimed until the period leaves the
# horizon (replay evaluates it then at the latest).
LEDGER_MARGIN = 2 * 92 * 86400.0
# A measure's sums: n, sum and per-sum of its numerator and denominator (rules/measures.py).
MEASURE_SLOTS = 6


class Flagged:
    """The commission findings flagged on one deal, by money class: the largest amount any
    finding gives it in each, so totals count the deal once per class."""

    __slots__ = ("money", "plan_id", "team", "time")

    def __init__(self, plan_id: str, team: str, time: float,
                 money: dict[str, float] | None = None) -> None:
        self.plan_id = plan_id
        self.team = team
        self.time = time  # the deal's
        self.money: dict[str, float] = money if money is not None else {}

    def flag(self, money_class: str, amount: float) -> float:
        """Record `amount` in `money_class`; what it adds to the class's total (0 if an earlier
        finding gave this deal as much or more)."""
        before = self.money.get(money_class, 0.0)
        if amount <= before:
            return 0.0
        self.money[money_class] = amount
        return amount - before


class Churned(NamedTuple):
    """A deal of an aggregate period counted as churned early: days to the earliest churn that
    counts it, the class of its money by the rule, and where that money belongs."""

    days: float = 0.0
    money_class: str | None = None
    plan_id: str = ""
    team: str = ""
    deal_time: float = 0.0


class AccountState:
    """The deals and churns of one account still inside the horizon, and what already fired."""

    __slots__ = ("churns", "deals", "fired", "flagged")

    def __init__(self) -> None:
        self.deals: dict[str, Deal] = {}
        self.churns: list[Churn] = []
        # "rule\x1fdeal_id" of rules that fire once per deal (deal-after-churn); the shared
        # empty NOTHING_FIRED until the first (`mark_fired`).
        self.fired: set[str] | frozenset[str] = NOTHING_FIRED
        # deal_id -> what findings flagged on it; None until the first.
        self.flagged: dict[str, Flagged] | None = None

    def flag(self, deal_id: str, plan_id: str, team: str, time: float) -> Flagged:
        """The deal's ledger entry, made on first use."""
        flagged = self.flagged
        if flagged is None:
            flagged = self.flagged = {}
        entry = flagged.get(deal_id)
        if entry is None:
            entry = flagged[deal_id] = Flagged(plan_id, team, time)
        return entry

    def has_event(self, event_id: str) -> bool:
        """An event of this id is held (a duplicate). A scan, not a set: an account holds a
        few events, and a set each cost more memory than the account's deals."""
        for deal in self.deals.values():
            if deal.event_id == event_id:
                return True
        return any(churn.event_id == event_id for churn in self.churns)

    def mark_fired(self, key: str) -> None:
        fired = self.fired
        if type(fired) is set:
            fired.add(key)
        else:
            self.fired = {*fired, key}

    def prune(self, cutoff: float, ledger_cutoff: float | None = None) -> bool:
        """Forget events older than `cutoff` and ledger entries of deals older than
        `ledger_cutoff` (default `cutoff`) less LEDGER_MARGIN; True when nothing is left."""
        deals = self.deals
        if deals:
            old = [d for d, deal in deals.items() if deal.time < cutoff]
            if old:
                for deal_id in old:
                    del deals[deal_id]
                if self.fired:
                    ends = tuple("\x1f" + deal_id for deal_id in old)
                    self.fired = {key for key in self.fired if not key.endswith(ends)}
        churns = self.churns
        if churns:
            kept = [c for c in churns if c.time >= cutoff]
            if len(kept) != len(churns):
                self.churns = kept
        flagged = self.flagged
        if flagged:
            oldest = (cutoff if ledger_cutoff is None else min(cutoff, ledger_cutoff)
                      ) - LEDGER_MARGIN
            for deal_id in [d for d, f in flagged.items() if f.time < oldest]:
                del flagged[deal_id]
        return not self.deals and not self.churns and not flagged

    def revisit_at(self) -> float | None:
        """When only ledger entries are left: the time whose expiry drops the oldest of them."""
        if self.deals or self.churns or not self.flagged:
            return None
        return min(f.time for f in self.flagged.values()) + LEDGER_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "deals": [event_to_dict(d) for d in self.deals.values()],
            "churns": [event_to_dict(c) for c in self.churns],
            "fired": sorted(self.fired),
            "flagged": {d: [f.plan_id, f.team, f.time, f.money]
                        for d, f in (self.flagged or {}).items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        state = cls()
        for raw in data["deals"]:
            deal = event_from_dict(raw)
            assert isinstance(deal, Deal)
            state.deals[deal.deal_id] = deal
        for raw in data["churns"]:
            churn = event_from_dict(raw)
            assert isinstance(churn, Churn)
            state.churns.append(churn)
        state.fired = set(data["fired"])
        if data["flagged"]:
            state.flagged = {d: Flagged(plan_id, team, time, dict(money))
                             for d, (plan_id, team, time, money) in data["flagged"].items()}
        return state


class AggregateState:
    """One (rule, group, quarter): the contributing deals by (account, deal) key (facts.member),
    so re-delivery cannot count twice, and running totals, so a live value costs O(1) per fact."""

    __slots__ = ("changes", "churned", "churned_amount", "churned_count", "churned_sums",
                 "churned_upfront", "deals", "end", "fired", "group", "period", "rule",
                 "settled", "stale_sums", "sums", "totals")

    def __init__(self, rule: str, group: str, period: str, end: float) -> None:
        self.rule = rule
        self.group = group
        self.period = period
        self.end = end
        # member key -> (deal_type, commission amount, acv, paid_upfront)
        self.deals: dict[str, DealEntry] = {}
        # member key -> Churned: the earliest churn that counts the deal, and its money
        self.churned: dict[str, Churned] = {}
        # deal_type -> [deals, commission, acv]
        self.totals: dict[str, list[float]] = {}
        self.churned_count = 0  # churned deals that are also in `deals`
        self.churned_upfront = 0.0
        self.churned_amount = 0.0  # their commission
        # The measure's sums over the deals, and over those counted as churned (measures.py).
        self.sums: list[float] = [0.0] * MEASURE_SLOTS
        self.churned_sums: list[float] = [0.0] * MEASURE_SLOTS
        # A fact or record of the previous format came without contributions: the sums are
        # recomputed from the deals' entries when next read (`measure_sums`).
        self.stale_sums = False
        self.settled = False
        self.fired = False
        # Keys of the deals and churned entries added since `take_changes`, once a store that
        # logs changes asks for them (`track_changes`); None otherwise, so nothing is kept.
        self.changes: tuple[list[str], list[str]] | None = None

    def track_changes(self) -> None:
        """From now on, remember what is added, for `take_changes`."""
        self.changes = ([], [])

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since tracking began or the last call, as a patch of `to_dict`'s form
        (`merge_changes` applies it): the entries added and every scalar. None when not
        tracking. A period holds thousands of deals and gains a few per batch."""
        changes = self.changes
        if changes is None:
            return None
        deals, churned = changes
        self.changes = ([], [])
        patch = self.to_dict(entries=False)
        patch["+deals"] = {k: self.deals[k] for k in deals}
        patch["+churned"] = {k: tuple(self.churned[k]) for k in churned}
        return patch

    @staticmethod
    def merge_changes(data: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        """`to_dict`'s form of a state, with `take_changes`'s patch applied."""
        merged = {k: v for k, v in patch.items() if k[0] != "+"}
        merged["deals"] = {**data["deals"], **patch["+deals"]}
        merged["churned"] = {**data["churned"], **patch["+churned"]}
        return merged

    def add_deal(self, key: str, deal_type: str, amount: float, acv: float,
                 paid_upfront: float, values: Sequence[float] = ()) -> bool:
        return self.add_entry(key, (deal_type, amount, acv, paid_upfront), values)

    def add_entry(self, key: str, entry: DealEntry, values: Sequence[float] = ()) -> bool:
        """`add_deal` with the deal's figures as one tuple, kept as given (shared, not copied),
        and its contributions to the measure."""
        deals = self.deals
        if key in deals:
            return False
        deals[key] = entry
        if self.changes is not None:
            self.changes[0].append(key)
        if values:
            _add(self.sums, values)
        else:
            self.stale_sums = True
        deal_type, amount, acv, _ = entry
        total = self.totals.get(deal_type)
        if total is None:
            self.totals[deal_type] = [1, amount, acv]
        else:
            total[0] += 1
            total[1] += amount
            total[2] += acv
        if key in self.churned:
            self._count_churned(key, values)
        return True

    def add_churned(self, key: str, churned: Churned | None = None,
                    values: Sequence[float] = ()) -> bool:
        """A deal counted as churned; of two churns that count it, the earlier decides its
        class, whatever the order they arrive in."""
        churned = churned or Churned()
        known = self.churned.get(key)
        if known is not None and churned.days >= known.days:
            return False
        if self.changes is not None:
            self.changes[1].append(key)
        self.churned[key] = churned
        if known is not None:
            return True
        if key in self.deals:
            self._count_churned(key, values)
        return True

    def _count_churned(self, key: str, values: Sequence[float]) -> None:
        entry = self.deals[key]
        self.churned_count += 1
        self.churned_amount += entry[1]
        self.churned_upfront += entry[3]
        if values:
            _add(self.churned_sums, values)
        else:
            self.stale_sums = True

    def measure_sums(self, contributions: Callable[[DealEntry], Sequence[float]]
                     ) -> tuple[list[float], list[float]]:
        """(sums, churned sums) of the measure; recomputed from the deals' entries first when
        stale, with `contributions` of an entry (raising LookupError when it cannot tell)."""
        if self.stale_sums:
            sums, churned = [0.0] * MEASURE_SLOTS, [0.0] * MEASURE_SLOTS
            for key, entry in self.deals.items():
                values = contributions(entry)
                _add(sums, values)
                if key in self.churned:
                    _add(churned, values)
            self.sums, self.churned_sums, self.stale_sums = sums, churned, False
        return self.sums, self.churned_sums

    def to_dict(self, entries: bool = True) -> dict[str, Any]:
        """Its JSON form (tuples as lists); without the deals and churned entries when not
        `entries`."""
        data: dict[str, Any] = {
            "rule": self.rule, "group": self.group, "period": self.period, "end": self.end,
            "settled": self.settled, "fired": self.fired,
        }
        if entries:
            data["deals"] = dict(self.deals)
            data["churned"] = {k: tuple(v) for k, v in self.churned.items()}
        if not self.stale_sums:
            data["sums"], data["churned_sums"] = self.sums, self.churned_sums
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateState:
        state = cls(data["rule"], data["group"], data["period"], data["end"])
        for key, churned in data["churned"].items():
            state.add_churned(key, Churned(*churned))
        for key, (deal_type, amount, acv, upfront) in data["deals"].items():
            state.add_deal(key, deal_type, amount, acv, upfront)
        if "sums" in data:
            state.sums = list(data["sums"])
            state.churned_sums = list(data["churned_sums"])
            state.stale_sums = False
        else:  # written by the previous format
            state.stale_sums = True
        state.settled = data["settled"]
        state.fired = data["fired"]
        return state


def _add(sums: list[float], values: Sequence[float]) -> None:
    """sums += values, for a measure's MEASURE_SLOTS sums (unrolled: once per fact)."""
    sums[0] += values[0]
    sums[1] += values[1]
    sums[2] += values[2]
    sums[3] += values[3]
    sums[4] += values[4]
    sums[5] += values[5]
