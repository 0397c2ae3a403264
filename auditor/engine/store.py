"""The engine's state behind two small interfaces; the memory stores back `replay` and tests.

The worker backs the same interfaces with faust tables (auditor/worker/tables.py).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Protocol

from auditor.engine.periods import DAY
from auditor.engine.state import AccountState, AggregateState
from auditor.events.models import Deal


class AccountStore(Protocol):
    watermark: float

    @property
    def ledger_watermark(self) -> float:
        """How far every stage that can claim money on these accounts' deals has got."""
        ...

    def get(self, account_id: str) -> AccountState | None: ...

    def put(self, account_id: str, state: AccountState, event_time: float) -> None: ...

    def expire(self, cutoff: float, ledger_cutoff: float | None = None) -> None:
        """Forget every event older than `cutoff`, ledger entries of deals older than
        `ledger_cutoff` (default `cutoff`) less the ledger's margin, and accounts left empty."""
        ...

    def __len__(self) -> int: ...


class AggregateStore(Protocol):
    watermark: float

    def get(self, key: str) -> AggregateState | None: ...

    def put(self, key: str, state: AggregateState) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, AggregateState]]: ...

    def __len__(self) -> int: ...


class MemoryAccountStore:
    """Accounts in a dict, with an index by event day so expiry touches only what it drops.

    In its own dict, an account that holds one deal and nothing else is kept as that deal
    (`get` wraps it in an AccountState again): most accounts are one deal inside the horizon,
    and the state object and its tuple cost a fifth of the deal's memory again."""

    def __init__(self, accounts: MutableMapping[str, AccountState] | None = None) -> None:
        """`accounts`: where the states live (a dict by default; the worker passes a table view,
        whose recovered states are indexed here, and which holds states only)."""
        self.watermark = 0.0  # no event seen yet
        self._compact = accounts is None
        self._accounts: MutableMapping[str, AccountState | Deal] = (
            {} if accounts is None else accounts)  # type: ignore[assignment]
        # Accounts by the days of their events: lists, not sets (a set's entry costs several
        # times a list's); an account listed twice in a day is pruned twice, which is harmless.
        self._by_day: dict[int, list[str]] = {}
        self._expired_through = -(2**62)  # last day whose bucket was swept
        for account_id, state in list(accounts.items() if accounts is not None else ()):
            for deal in state.deals:
                self._bucket(account_id, deal.time)
            for churn in state.churns:
                self._bucket(account_id, churn.time)
            revisit = state.revisit_at()
            if revisit is not None:
                self._bucket(account_id, revisit)

    def get(self, account_id: str) -> AccountState | None:
        state = self._accounts.get(account_id)
        if type(state) is Deal:
            return AccountState.holding(state)
        return state  # type: ignore[return-value]

    def deals_held(self) -> int:
        held = 0
        for state in self._accounts.values():
            held += 1 if isinstance(state, Deal) else len(state.deals)
        return held

    @property
    def ledger_watermark(self) -> float:
        # In one process the aggregate stage sees the same watermark.
        return self.watermark

    def put(self, account_id: str, state: AccountState, event_time: float) -> None:
        self._write(account_id, state)
        self._bucket(account_id, event_time)

    def _write(self, account_id: str, state: AccountState) -> None:
        self._accounts[account_id] = (
            state.deals[0] if self._compact and state.only_a_deal() else state)

    def _bucket(self, account_id: str, event_time: float) -> None:
        # An event older than what was already swept goes in the next bucket to be swept.
        day = max(int(event_time // DAY), self._expired_through + 1)
        bucket = self._by_day.get(day)
        if bucket is None:
            self._by_day[day] = [account_id]
        elif bucket[-1] != account_id:  # an account's events often come together
            bucket.append(account_id)

    def expire(self, cutoff: float, ledger_cutoff: float | None = None) -> None:
        last_day = int(cutoff // DAY) - 1  # days wholly before the cutoff
        if last_day <= self._expired_through:
            return
        for day in sorted(d for d in self._by_day if d <= last_day):
            for account_id in self._by_day.pop(day):
                state = self.get(account_id)
                if state is None:
                    continue
                if state.prune(cutoff, ledger_cutoff):
                    del self._accounts[account_id]
                else:  # written back, so a table-backed mapping records the pruned state
                    self._write(account_id, state)
                    revisit = state.revisit_at()  # its ledger outlives its events
                    if revisit is not None:
                        self._bucket(account_id, revisit)
        self._expired_through = last_day

    def __len__(self) -> int:
        return len(self._accounts)


class MemoryAggregateStore:
    def __init__(self, states: MutableMapping[str, AggregateState] | None = None) -> None:
        self.watermark = 0.0  # no event seen yet
        self._states: MutableMapping[str, AggregateState] = {} if states is None else states

    def get(self, key: str) -> AggregateState | None:
        return self._states.get(key)

    def put(self, key: str, state: AggregateState) -> None:
        self._states[key] = state

    def delete(self, key: str) -> None:
        self._states.pop(key, None)

    def items(self) -> Iterable[tuple[str, AggregateState]]:
        return list(self._states.items())

    def __len__(self) -> int:
        return len(self._states)
