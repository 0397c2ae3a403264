"""Compiles a rule's field conditions (data in YAML) into one predicate, once, at load time.

The loader checks each filter first (filter_check.py); the errors raised here are a backstop."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from operator import attrgetter, ge, gt, le, lt
from typing import Any

from auditor.rules.domains import CHURN_DOMAINS, DEAL_DOMAINS
from auditor.rules.spec import Comparison, Condition

Predicate = Callable[[Any], bool]

# Event-contract field names -> attributes of the engine's records.
DEAL_FIELDS: dict[str, str] = {
    name: name
    for name in (
        "event_id", "deal_id", "account_id", "rep_id", "team", "plan_id", "deal_type",
        "term_months", "acv", "tcv", "discount_pct", "currency", "region", "manager_id",
    )
} | {
    "commission.amount": "amount",
    "commission.paid_upfront": "paid_upfront",
    "commission.basis": "basis",
    "commission.rate": "rate",
    "commission.clawback_days": "clawback_days",
}
CHURN_FIELDS: dict[str, str] = {
    name: name for name in ("event_id", "account_id", "churn_type", "arr_lost", "currency")
}
# Read from the event contract, as filter_check.py does with each field's domain.
NUMERIC = {attr for attr, domain in (DEAL_DOMAINS | CHURN_DOMAINS).items() if domain.numeric}
# Fields an event may leave out (region, manager_id): their value is then None, a value of its
# own that no filter value equals. So `field: x`, `eq`, `in` and `in_list` do not hold for a
# missing field, and `ne`, `not_in` and `not_in_list` do (each the negation of its positive
# form, as for any value); an ordered comparison (gt, gte, lt, lte) does not hold either.
OPTIONAL = {attr for attr, domain in (DEAL_DOMAINS | CHURN_DOMAINS).items() if domain.optional}


_FLIPPED = {"gt": lt, "gte": le, "lt": gt, "lte": ge}


class FilterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


NamedLists = Mapping[str, Sequence[Any]]


def compile_filter(conditions: dict[str, Condition], fields: dict[str, str],
                   lists: NamedLists | None = None) -> Predicate | None:
    """None when there is nothing to test, so the hot path can skip the call."""
    tests: list[tuple[Callable[[Any], Any], Callable[[Any], bool]]] = []
    for name, condition in conditions.items():
        attr = fields.get(name)
        if attr is None:
            known = ", ".join(sorted(fields))
            raise FilterError(name, f"unknown field {name!r}; known fields: {known}")
        tests.append((attrgetter(attr), _compile_condition(name, attr, condition, lists or {})))
    if not tests:
        return None
    predicate: Predicate | None = None
    for get, test in reversed(tests):
        predicate = _and(get, test, predicate)
    return predicate


def _and(get: Callable[[Any], Any], test: Callable[[Any], bool], rest: Predicate | None
         ) -> Predicate:
    """One test, then the rest: a chain of closures is cheaper than all() over a generator."""
    if rest is None:
        return lambda record: test(get(record))
    return lambda record: test(get(record)) and rest(record)


def _compile_condition(name: str, attr: str, condition: Condition, lists: NamedLists
                       ) -> Callable[[Any], bool]:
    if isinstance(condition, list):
        allowed = frozenset(condition)
        return allowed.__contains__
    if not isinstance(condition, Comparison):
        target = condition
        return lambda v: v == target
    checks: list[Callable[[Any], bool]] = []
    ordered = {"gt": condition.gt, "gte": condition.gte, "lt": condition.lt, "lte": condition.lte}
    if any(v is not None for v in ordered.values()) and attr not in NUMERIC:
        raise FilterError(name, f"{name} is not a number: use eq, ne, in or not_in")
    if condition.eq is not None:
        eq = condition.eq
        checks.append(lambda v: v == eq)
    if condition.ne is not None:
        ne = condition.ne
        checks.append(lambda v: v != ne)
    for op, bound in ordered.items():
        if bound is not None:
            # partial(lt, bound)(v) is bound < v, i.e. v > bound.
            compare = partial(_FLIPPED[op], bound)
            checks.append(_present(compare) if attr in OPTIONAL else compare)
    if condition.in_ is not None:
        checks.append(frozenset(condition.in_).__contains__)
    if condition.not_in is not None:
        excluded = frozenset(condition.not_in)
        checks.append(lambda v: v not in excluded)
    if condition.in_list is not None:
        checks.append(frozenset(_named(name, condition.in_list, lists)).__contains__)
    if condition.not_in_list is not None:
        excluded_list = frozenset(_named(name, condition.not_in_list, lists))
        checks.append(lambda v: v not in excluded_list)
    if not checks:
        raise FilterError(name, f"no condition given for {name}")
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _present(compare: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """An ordered comparison that is false for a missing value (None orders against nothing)."""
    return lambda v: v is not None and compare(v)


def _named(field: str, list_name: str, lists: NamedLists) -> Sequence[Any]:
    values = lists.get(list_name)
    if values is None:
        known = ", ".join(sorted(lists)) or "none defined"
        raise FilterError(field, f"unknown list {list_name!r} (lists: {known})")
    return values
