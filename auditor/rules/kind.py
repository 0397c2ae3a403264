"""What a rule kind is: its YAML spec (a pydantic model whose `kind` is a Literal of its name)
and how a checked spec compiles to the rule the engine runs. Each kind is one module of
auditor/rules/kinds/ exposing `KIND`; the loader, the schema and the engine find kinds there.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from auditor.rules.compiled import CompiledRule, MoneyClass, RuleMeta
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS, Predicate, compile_filter
from auditor.rules.spec import Filter, MoneyClassByClawback, RuleSpecBase

S = TypeVar("S", bound=RuleSpecBase)

# The fields each filter side tests, by the event it is written for.
FIELDS_OF: dict[str, dict[str, str]] = {"deal": DEAL_FIELDS, "churn": CHURN_FIELDS}


@dataclass(frozen=True)
class CompileContext:
    """What compiling one checked rule needs beyond its spec."""

    meta: RuleMeta
    lists: Mapping[str, Sequence[Any]]  # the directory's named lists
    measures: Mapping[str, Any]  # the directory's named measures (aggregates)

    def filter(self, conditions: Filter, event: str = "deal") -> Predicate | None:
        """A filter on `event` ("deal" or "churn") as one predicate; None when empty."""
        return compile_filter(conditions, FIELDS_OF[event], self.lists)

    @staticmethod
    def money(spec: RuleSpecBase) -> MoneyClass | None:
        stated = spec.money_class
        if stated is None:
            return None
        if isinstance(stated, MoneyClassByClawback):
            return MoneyClass(stated.otherwise, stated.clawback_covers)
        return MoneyClass(stated)


@dataclass(frozen=True)
class RuleKind(Generic[S]):
    spec: type[S]
    compile: Callable[[S, CompileContext], CompiledRule]

    @property
    def name(self) -> str:
        """The `kind:` a rule file writes: the one value of the spec's `kind` Literal."""
        (name,) = typing.get_args(self.spec.model_fields["kind"].annotation)
        return str(name)


class SpecError(ValueError):
    """A rule that passed its schema but cannot compile (e.g. a named measure it refers to does
    not fit it); `loc` is the place in the rule it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
