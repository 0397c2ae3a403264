"""The rules in force: every compiled rule of the rules directory, its currency table and plan
registry, and the order the join stage runs them in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from auditor.engine.plan_check import PlanCheck
from auditor.events.currency import CurrencyTable
from auditor.rules.compiled import CompiledRule
from auditor.rules.exceptions import RuleException, expired
from auditor.rules.kinds.aggregate import AggregateRule
from auditor.rules.plans import PlanRegistry

# Group-by fields whose values become metric labels when no rule file declares any.
DEFAULT_BOUNDED = ("team", "plan_id")


@dataclass(frozen=True, slots=True)
class RulePack:
    rules: tuple[CompiledRule, ...] = ()  # in file order
    currency: CurrencyTable = field(default_factory=CurrencyTable)
    sources: tuple[str, ...] = ()  # the files it was loaded from
    plans: PlanRegistry | None = None  # rules/plans.yaml: deals are checked against it
    disabled_ids: tuple[str, ...] = ()  # rules written with `enabled: false`, not run
    # Group-by fields whose values may become metric labels (`bounded_dimensions:`).
    bounded_dimensions: tuple[str, ...] = DEFAULT_BOUNDED
    # What the join stage runs for each event: the rules by CompiledRule.ORDER, then file
    # order, with the plan check when there is a registry.
    account_rules: tuple[CompiledRule, ...] = field(init=False)
    # The rules with a second stage, keyed by (rule, group, period).
    aggregate_rules: tuple[AggregateRule, ...] = field(init=False)

    def __post_init__(self) -> None:
        run = [*self.rules, *([PlanCheck(self.plans)] if self.plans is not None else [])]
        object.__setattr__(self, "account_rules",
                           tuple(sorted(run, key=lambda r: r.ORDER)))
        object.__setattr__(self, "aggregate_rules",
                           tuple(r for r in self.rules if isinstance(r, AggregateRule)))

    @property
    def rule_count(self) -> int:
        return len(self.rules)

    def longest_window_days(self) -> float:
        """How far back in event time any rule looks: join windows and aggregate settle times."""
        return max((r.window_days() for r in self.rules), default=0.0)

    def by_id(self) -> dict[str, CompiledRule]:
        return {r.meta.id: r for r in self.rules}

    def exceptions(self) -> list[tuple[str, RuleException]]:
        """(rule id, exception) of every exception of the rules, in file order."""
        return [(r.meta.id, e) for r in self.rules for e in r.meta.exceptions]

    def expired_exceptions(self, today: date) -> list[tuple[str, RuleException]]:
        return [(rule_id, e) for rule_id, e in self.exceptions() if expired(e, today)]
