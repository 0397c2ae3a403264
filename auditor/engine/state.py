"""Per-key state of the two stages: what one account and one aggregate period remember."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from sys import intern
from typing import Any, NamedTuple, TypeAlias

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
ZERO_VALUES = (0.0,) * MEASURE_SLOTS
Sums: TypeAlias = "array[float]"  # of MEASURE_SLOTS doubles


class Flagged:
    """The commission findings flagged on one deal, by money class: the largest amount any
    finding gives it in each, so totals count the deal once per class."""

    __slots__ = ("deal_id", "money", "plan_id", "team", "time")

    def __init__(self, deal_id: str, plan_id: str, team: str, time: float,
                 money: tuple[tuple[str, float], ...] = ()) -> None:
        self.deal_id = deal_id
        self.plan_id = plan_id
        self.team = team
        self.time = time  # the deal's
        # class, amount, class, amount...: a deal is flagged in a class or two, and a flat
        # tuple costs a fraction of a dict's memory.
        self.money: tuple[str | float, ...] = tuple(x for pair in money for x in pair)

    def amounts(self) -> dict[str, float]:
        money = self.money
        return {str(money[i]): float(money[i + 1]) for i in range(0, len(money), 2)}

    def amount(self, money_class: str) -> float:
        return self.amounts().get(money_class, 0.0)

    def flag(self, money_class: str, amount: float) -> float:
        """Record `amount` in `money_class`; what it adds to the class's total (0 if an earlier
        finding gave this deal as much or more)."""
        amounts = self.amounts()
        before = amounts.get(money_class, 0.0)
        if amount <= before:
            return 0.0
        amounts[money_class] = amount
        self.money = tuple(x for pair in amounts.items() for x in pair)
        return amount - before


class Churned(NamedTuple):
    """A deal of an aggregate period counted as churned early: days to the earliest churn that
    counts it, the class of its money by the rule, where that money belongs, and the deal's
    commission and the part of it paid upfront (the figures its churn takes back)."""

    days: float = 0.0
    money_class: str | None = None
    plan_id: str = ""
    team: str = ""
    deal_time: float = 0.0
    amount: float = 0.0
    paid_upfront: float = 0.0


class AccountState:
    """The deals and churns of one account still inside the horizon, and what already fired."""

    __slots__ = ("churns", "deals", "fired", "flagged")

    def __init__(self) -> None:
        # In arrival order. Tuples, not a dict and a list: an account holds a deal or two, and
        # those containers cost a third as much memory again as the deal itself.
        self.deals: tuple[Deal, ...] = ()
        self.churns: tuple[Churn, ...] = ()
        # "rule\x1fdeal_id" of rules that fire once per deal (deal-after-churn); the shared
        # empty NOTHING_FIRED until the first (`mark_fired`).
        self.fired: set[str] | frozenset[str] = NOTHING_FIRED
        # What findings flagged on the account's deals, a deal once (a tuple, as `deals`).
        self.flagged: tuple[Flagged, ...] = ()

    def flag(self, deal_id: str, plan_id: str, team: str, time: float) -> Flagged:
        """The deal's ledger entry, made on first use."""
        for entry in self.flagged:
            if entry.deal_id == deal_id:
                return entry
        entry = Flagged(deal_id, plan_id, team, time)
        self.flagged = (*self.flagged, entry)
        return entry

    @classmethod
    def holding(cls, deal: Deal) -> AccountState:
        """An account whose one deal is `deal`, and nothing else."""
        state = cls()
        state.deals = (deal,)
        return state

    def only_a_deal(self) -> bool:
        """It holds one deal and nothing else (no churn, no finding fired or flagged)."""
        return len(self.deals) == 1 and not self.churns and not self.fired and not self.flagged

    def deal(self, deal_id: str) -> Deal | None:
        """The account's deal of this id, if held (deal ids are unique per account)."""
        for deal in self.deals:
            if deal.deal_id == deal_id:
                return deal
        return None

    def add_deal(self, deal: Deal) -> None:
        self.deals = (*self.deals, deal)

    def add_churn(self, churn: Churn) -> None:
        self.churns = (*self.churns, churn)

    def has_event(self, event_id: str) -> bool:
        """An event of this id is held (a duplicate). A scan, not a set: an account holds a
        few events, and a set each cost more memory than the account's deals."""
        for deal in self.deals:
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
            old = [deal.deal_id for deal in deals if deal.time < cutoff]
            if old:
                self.deals = tuple(deal for deal in deals if deal.time >= cutoff)
                if self.fired:
                    ends = tuple("\x1f" + deal_id for deal_id in old)
                    self.fired = {key for key in self.fired if not key.endswith(ends)}
        churns = self.churns
        if churns:
            kept = tuple(c for c in churns if c.time >= cutoff)
            if len(kept) != len(churns):
                self.churns = kept
        flagged = self.flagged
        if flagged:
            oldest = (cutoff if ledger_cutoff is None else min(cutoff, ledger_cutoff)
                      ) - LEDGER_MARGIN
            held = tuple(f for f in flagged if f.time >= oldest)
            if len(held) != len(flagged):
                self.flagged = held
        return not self.deals and not self.churns and not self.flagged

    def revisit_at(self) -> float | None:
        """When only ledger entries are left: the time whose expiry drops the oldest of them."""
        if self.deals or self.churns or not self.flagged:
            return None
        return min(f.time for f in self.flagged) + LEDGER_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "deals": [event_to_dict(d) for d in self.deals],
            "churns": [event_to_dict(c) for c in self.churns],
            "fired": sorted(self.fired),
            "flagged": {f.deal_id: [f.plan_id, f.team, f.time, f.amounts()]
                        for f in self.flagged},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        state = cls()
        for raw in data["deals"]:
            deal = event_from_dict(raw)
            assert isinstance(deal, Deal)
            state.add_deal(deal)
        for raw in data["churns"]:
            churn = event_from_dict(raw)
            assert isinstance(churn, Churn)
            state.add_churn(churn)
        state.fired = set(data["fired"])
        state.flagged = tuple(
            Flagged(d, plan_id, team, time, tuple(dict(money).items()))
            for d, (plan_id, team, time, money) in dict(data["flagged"]).items())
        return state


# Shared by every period without a churned deal (`AggregateState.add_churned` replaces them
# at its first); never written to.
NO_CHURNED: dict[str, Churned] = {}
NO_CHURNED_SUMS: Sums = array("d", ZERO_VALUES)


class AggregateState:
    """One (rule, group, quarter) as running totals: its deals' count, sums by deal type and
    the measure's sums, so a live value costs O(1) per fact and a period costs the same memory
    with ten deals or ten thousand. Only the deals counted as churned are kept one by one (the
    evidence names them, and of two churns that count one the earlier decides its class).

    Counting a deal is not idempotent: each deal fact must be applied once. Replay applies
    each once; the worker skips facts it applied before by their source offsets
    (auditor/worker/pipeline.py)."""

    __slots__ = ("changes", "churned", "churned_amount", "churned_sums", "churned_upfront",
                 "count", "end", "figures", "fired", "group", "legacy", "period", "rule",
                 "settled", "types")

    def __init__(self, rule: str, group: str, period: str, end: float) -> None:
        self.rule = rule
        self.group = group
        self.period = period
        self.end = end
        self.count = 0  # deals counted
        # The measure's sums over the deals (`sums`, measures.py), then per deal type, in the
        # order first seen (`types`), its deals, commission and ACV (`totals`): doubles in one
        # array, not float objects in lists (an array's header alone is 80 bytes).
        self.figures = _sums()
        self.types: tuple[str, ...] = ()
        self.churned_upfront = 0.0
        self.churned_amount = 0.0  # their commission
        # The measure's sums over the deals counted as churned, and the member key
        # (facts.member) -> Churned of each, the earliest churn that counts it: shared empty
        # ones until the first churned deal.
        self.churned_sums = NO_CHURNED_SUMS
        self.churned: dict[str, Churned] = NO_CHURNED
        # The deals' entries of a period written by a version that kept them but not the
        # measure's sums (format 1): the sums are recomputed from them when next read
        # (`measure_sums`), then they are dropped. None otherwise.
        self.legacy: dict[str, DealEntry] | None = None
        self.settled = False
        self.fired = False
        # Keys of the churned entries added since `take_changes`, once a store that logs
        # changes asks for them (`track_changes`); None otherwise, so nothing is kept.
        self.changes: list[str] | None = None

    def track_changes(self) -> None:
        """From now on, remember what is added, for `take_changes`."""
        self.changes = []

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since tracking began or the last call, as a patch of `to_dict`'s form
        (`merge_changes` applies it): every scalar and the churned entries added. None when
        not tracking. A period's churned deals can be thousands; a batch adds a few."""
        changes = self.changes
        if changes is None:
            return None
        self.changes = []
        patch = self.to_dict(entries=False)
        patch["+churned"] = {k: tuple(self.churned[k]) for k in changes}
        return patch

    @staticmethod
    def merge_changes(data: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        """`to_dict`'s form of a state, with `take_changes`'s patch applied."""
        merged = {k: v for k, v in patch.items() if k[0] != "+"}
        merged["churned"] = {**data["churned"], **patch["+churned"]}
        return merged

    def add_deal(self, deal_type: str, amount: float, acv: float,
                 values: Sequence[float]) -> None:
        """A deal counted in the period, with its contributions to the measure."""
        self.count += 1
        figures = self.figures
        _add(figures, values)
        types = self.types
        try:
            at = MEASURE_SLOTS + types.index(deal_type) * 3
        except ValueError:  # the period's first deal of this type
            self.types = _shared_types(deal_type, types)
            figures.extend((1.0, amount, acv))
        else:
            figures[at] += 1
            figures[at + 1] += amount
            figures[at + 2] += acv

    @property
    def churned_count(self) -> int:
        """The period's deals counted as churned."""
        return len(self.churned)

    @property
    def sums(self) -> Sums:
        """The measure's sums over the period's deals (a copy)."""
        return self.figures[:MEASURE_SLOTS]

    def totals(self) -> dict[str, tuple[float, float, float]]:
        """deal_type -> (deals, commission, ACV), in the order the types were first seen."""
        figures = self.figures
        return {t: (figures[at], figures[at + 1], figures[at + 2])
                for t, at in zip(self.types, range(MEASURE_SLOTS, len(figures), 3),
                                 strict=True)}

    def add_churned(self, key: str, churned: Churned, values: Sequence[float]) -> bool:
        """One of the period's deals counted as churned; of two churns that count it, the
        earlier decides its class, whatever the order they arrive in. False: it was counted
        with a churn as early already."""
        known = self.churned.get(key)
        if known is not None and churned.days >= known.days:
            return False
        if self.changes is not None:
            self.changes.append(key)
        if self.churned is NO_CHURNED:
            self.churned, self.churned_sums = {}, _sums()
        # One key string for the deal in every period that counts it churned.
        self.churned[intern(key) if known is None else key] = churned
        if known is None:
            self.churned_amount += churned.amount
            self.churned_upfront += churned.paid_upfront
            _add(self.churned_sums, values)
        return True

    def measure_sums(self, contributions: Callable[[DealEntry], Sequence[float]]
                     ) -> tuple[Sums, Sums]:
        """(sums, churned sums) of the measure; recomputed first from the entries of a period
        of format 1 (`legacy`), with `contributions` of an entry (raising LookupError when it
        cannot tell: the entries are kept, and it raises again on the next read)."""
        legacy = self.legacy
        if legacy is not None:
            sums, churned = _sums(), _sums()
            for key, entry in legacy.items():
                values = contributions(entry)
                _add(sums, values)
                if key in self.churned:
                    _add(churned, values)
            self.figures[:MEASURE_SLOTS] = sums
            self.churned_sums, self.legacy = churned, None
        return self.sums, self.churned_sums

    def to_dict(self, entries: bool = True) -> dict[str, Any]:
        """Its JSON form (tuples as lists); without the churned entries when not `entries`.
        A period of format 1 whose sums are not recomputed yet keeps its deals' entries."""
        data: dict[str, Any] = {
            "rule": self.rule, "group": self.group, "period": self.period, "end": self.end,
            "settled": self.settled, "fired": self.fired, "count": self.count,
            "totals": self.totals(), "churned_count": self.churned_count,
            "churned_amount": self.churned_amount, "churned_upfront": self.churned_upfront,
        }
        if entries:
            data["churned"] = {k: tuple(v) for k, v in self.churned.items()}
        if self.legacy is None:
            data["sums"], data["churned_sums"] = list(self.sums), list(self.churned_sums)
        else:
            data["deals"] = self.legacy
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateState:
        state = cls(data["rule"], data["group"], data["period"], data["end"])
        if "count" in data:
            state.count = int(data["count"])
            for deal_type, (deals, commission, acv) in dict(data["totals"]).items():
                state.types = _shared_types(str(deal_type), state.types)
                state.figures.extend((float(deals), float(commission), float(acv)))
            churned = {k: Churned(*v) for k, v in dict(data["churned"]).items()}
            if churned:
                state.churned, state.churned_sums = churned, _sums()
            state.churned_amount = float(data["churned_amount"])
            state.churned_upfront = float(data["churned_upfront"])
            if "deals" in data:  # of format 1, its sums not recomputed yet
                state.legacy = _entries(data["deals"])
        else:  # formats 1 and 2 kept every deal's entry: counted here in their order
            churned = dict(data["churned"])
            deals = _entries(data["deals"])
            for key, (deal_type, amount, acv, upfront) in deals.items():
                state.add_deal(deal_type, amount, acv, ZERO_VALUES)
                if key in churned:
                    days, money_class, plan_id, team, deal_time = churned[key][:5]
                    state.add_churned(key, Churned(days, money_class, plan_id, team, deal_time,
                                                   amount, upfront), ZERO_VALUES)
            if "sums" not in data:
                state.legacy = deals
        if "sums" in data:
            state.figures[:MEASURE_SLOTS] = array("d", data["sums"])
            if state.churned is not NO_CHURNED:
                state.churned_sums = array("d", data["churned_sums"])
        state.settled = data["settled"]
        state.fired = data["fired"]
        return state


# The deal types of periods, in the order first seen: a few distinct tuples, shared by all.
_TYPES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared_types(deal_type: str, types: tuple[str, ...]) -> tuple[str, ...]:
    grown = (*types, deal_type)
    shared = _TYPES.get(grown)
    if shared is None:
        if len(_TYPES) >= 1024:  # bounded, whatever the deal types
            _TYPES.clear()
        shared = _TYPES[grown] = grown
    return shared


def _entries(raw: Any) -> dict[str, DealEntry]:
    return {k: (str(t), float(amount), float(acv), float(upfront))
            for k, (t, amount, acv, upfront) in dict(raw).items()}


def _sums() -> Sums:
    return array("d", ZERO_VALUES)


def _add(sums: Sums, values: Sequence[float]) -> None:
    """sums += values, for a measure's MEASURE_SLOTS sums (unrolled: once per fact)."""
    sums[0] += values[0]
    sums[1] += values[1]
    sums[2] += values[2]
    sums[3] += values[3]
    sums[4] += values[4]
    sums[5] += values[5]
