"""Rules as the engine runs them: frozen, checked, their conditions already compiled.

Every rule kind compiles to a `CompiledRule` (auditor/rules/kinds/ has one module per kind);
the join stage calls each rule with each event of an account, never asking which kind it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from auditor.engine.alerts import Alert
from auditor.engine.facts import AggregateFact
from auditor.engine.state import AccountState
from auditor.events.models import Churn, Deal
from auditor.rules.exceptions import RuleException


@dataclass(frozen=True, slots=True)
class RuleMeta:
    id: str
    kind: str
    description: str
    runbook: str
    labels: dict[str, str]  # with `status` for a rule that is not stable
    source: str  # file:line where the rule is defined
    status: str = "stable"  # experimental, stable or deprecated
    exceptions: tuple[RuleException, ...] = ()  # in file order: the first that applies names it


@dataclass(frozen=True, slots=True)
class MoneyClass:
    """Which money a finding's amount is (unrecovered, recoverable, exposure, overpaid): fixed,
    or `clawback_covers` for a deal whose clawback window (> 0 days) reaches the churn day."""

    otherwise: str
    clawback_covers: str | None = None

    def of(self, clawback_days: int, days: float) -> str:
        if self.clawback_covers is not None and clawback_days > 0 and days <= clawback_days:
            return self.clawback_covers
        return self.otherwise

    def classes(self) -> tuple[str, ...]:
        return tuple(sorted({self.otherwise, self.clawback_covers or self.otherwise}))


class Found:
    """What one event's rules found: alerts, and facts for the aggregate stage."""

    __slots__ = ("alerts", "currency", "facts")

    def __init__(self, currency: str) -> None:
        self.currency = currency  # the reporting currency, for the alerts' sentences
        self.alerts: list[Alert] = []
        self.facts: list[AggregateFact] = []


class CompiledRule:
    """A rule as the join stage (keyed by account) runs it. A kind overrides what its rule
    reacts to; both default to nothing, so a rule costs nothing on events it ignores."""

    __slots__ = ()
    meta: RuleMeta
    money: MoneyClass | None
    # When a deal's rules run, by this, then file order: what the deal alone shows (0), the
    # plan check (1), joins with the account's other events (2), aggregate facts (3). It keeps
    # the order of an event's alerts stable whatever order the files list the rules in.
    ORDER: ClassVar[int] = 2

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        """A new deal of the account; `state` holds its other deals and churns (not it)."""

    def on_churn(self, churn: Churn, state: AccountState, found: Found) -> None:
        """A new churn of the account; `state` holds its deals and other churns (not it)."""

    def window_days(self) -> float:
        """How far back in event time the rule looks (the state horizon is the longest)."""
        return 0.0

    def severities(self) -> tuple[str, ...]:
        """Every severity its findings can have (metrics are exported at 0 for each)."""
        raise NotImplementedError

    def team_known(self) -> bool:
        """Its findings carry a sales team (the `team` label), not known in advance."""
        return True

    def money_classes(self) -> tuple[str, ...]:
        """The money classes its findings can put at risk."""
        return self.money.classes() if self.money is not None else ()
