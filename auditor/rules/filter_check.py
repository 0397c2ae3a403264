"""Checks a filter against the event fields' domains before it is compiled: every value must be
one the field can take, and the conditions on a field must leave some value that matches.

A typo in sales ops' YAML (`deal_type: newlogo`, `discount_pct: {gte: 25}`) would otherwise load
fine and switch the rule off. All problems are returned, none raised, so a run reports them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.rules.domains import Domain
from auditor.rules.hints import did_you_mean
from auditor.rules.spec import Comparison, Condition

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # the filter's field, as written
    loc: Loc  # where in the filter: (field,), (field, 2), (field, "in", 0)
    message: str
    list_entry: tuple[str, int] | None = None  # the fault is in a named list: (name, index)


def check_filter(conditions: Mapping[str, Condition], fields: Mapping[str, str],
                 domains: Mapping[str, Domain], lists: Mapping[str, Sequence[Any]],
                 unreadable_lists: bool = False) -> list[Problem]:
    """Every problem of one filter. `unreadable_lists`: some `lists:` could not be read, so an
    unknown list name may be defined there and is not reported (that file's error is)."""
    problems: list[Problem] = []
    for name, condition in conditions.items():
        attr = fields.get(name)
        if attr is None:
            hint = did_you_mean(name, fields) or f"; known fields: {', '.join(sorted(fields))}"
            problems.append(Problem(name, (name,), f"unknown field{hint}"))
            continue
        problems.extend(_condition(name, domains[attr], condition, lists, unreadable_lists))
    return problems


def _condition(name: str, domain: Domain, condition: Condition,
               lists: Mapping[str, Sequence[Any]], unreadable_lists: bool) -> Iterator[Problem]:
    if isinstance(condition, list):
        for i, value in enumerate(condition):
            yield from _value(name, domain, value, (name, i))
        return
    if not isinstance(condition, Comparison):
        yield from _value(name, domain, condition, (name,))
        return
    given = condition.model_dump(exclude_none=True, by_alias=True)
    if not given:
        yield Problem(name, (name,), "no condition given")
    for op in ("eq", "ne"):
        if op in given:
            yield from _value(name, domain, given[op], (name, op))
    for op in ("in", "not_in"):
        for i, value in enumerate(given.get(op, ())):
            yield from _value(name, domain, value, (name, op, i))
    for op in ("in_list", "not_in_list"):
        if op in given:
            yield from _named_list(name, domain, given[op], (name, op), lists, unreadable_lists)
    bounds: dict[str, float] = {op: given[op] for op in ("gt", "gte", "lt", "lte") if op in given}
    if bounds and not domain.numeric:
        yield Problem(name, (name,), f"{name} is not a number ({domain.describe()}): use eq, "
                                     "ne, in or not_in")
    elif bounds:
        yield from _interval(name, domain, bounds, given.get("eq"))


def _value(name: str, domain: Domain, value: Any, loc: Loc,
           list_entry: tuple[str, int] | None = None) -> Iterator[Problem]:
    problem = domain.problem(value)
    if problem is not None:
        yield Problem(name, loc, problem + _hint(domain, value), list_entry)


def _hint(domain: Domain, value: Any) -> str:
    if domain.kind == "enum" and isinstance(value, str):
        return did_you_mean(value, domain.values)
    if isinstance(value, str) and domain.numeric:
        return "; write numbers without quotes or %"
    if _is_share(domain) and isinstance(value, (int, float)) and 1 < value <= 100:
        return f"; shares are written 0..1: did you mean {value / 100:g}?"
    return ""


def _is_share(domain: Domain) -> bool:
    return domain.kind == "float" and domain.low == 0 and domain.high == 1


def _named_list(name: str, domain: Domain, list_name: str, loc: Loc,
                lists: Mapping[str, Sequence[Any]], unreadable_lists: bool) -> Iterator[Problem]:
    values = lists.get(list_name)
    if values is None:
        if not unreadable_lists:
            hint = did_you_mean(list_name, lists) or (
                f" (lists: {', '.join(sorted(lists)) or 'none defined'})")
            yield Problem(name, loc, f"unknown list {list_name!r}{hint}")
        return
    for i, value in enumerate(values):
        yield from _value(name, domain, value, loc, (list_name, i))


_STRICT = {"gt": True, "gte": False, "lt": True, "lte": False}
_SYMBOL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _interval(name: str, domain: Domain, bounds: dict[str, float], eq: Any) -> Iterator[Problem]:
    """Each bound must cut into the field's range, and together they must leave a value."""
    written = "{" + ", ".join(f"{op}: {v:g}" for op, v in bounds.items()) + "}"
    low = -math.inf if domain.low is None else domain.low
    high = math.inf if domain.high is None else domain.high
    for op, bound in bounds.items():
        below = op in ("gt", "gte")  # the bound is a lower limit
        never = (bound > high or (bound == high and _STRICT[op])) if below else (
            bound < low or (bound == low and _STRICT[op]))
        always = bound < low if below else bound > high
        if never or always:
            what = "can never match" if never else "always holds (it filters nothing)"
            hint = _hint(domain, bound) if never else ""
            yield Problem(name, (name, op), f"{{{op}: {bound:g}}} {what}: {name} is "
                                            f"{domain.describe()}{hint}")
            return
    lo, lo_strict, hi, hi_strict = low, False, high, False
    for op, bound in bounds.items():
        if op in ("gt", "gte") and (bound > lo or (bound == lo and _STRICT[op])):
            lo, lo_strict = bound, _STRICT[op]
        if op in ("lt", "lte") and (bound < hi or (bound == hi and _STRICT[op])):
            hi, hi_strict = bound, _STRICT[op]
    if domain.kind == "int":  # whole numbers: x > 2.5 is x >= 3
        if math.isfinite(lo):
            lo, lo_strict = (math.floor(lo) + 1 if lo_strict else math.ceil(lo)), False
        if math.isfinite(hi):
            hi, hi_strict = (math.ceil(hi) - 1 if hi_strict else math.floor(hi)), False
    if lo > hi or (lo == hi and (lo_strict or hi_strict)):
        yield Problem(name, (name,), f"{written} can never match: no value is "
                                     + " and ".join(f"{_SYMBOL[op]} {v:g}"
                                                    for op, v in bounds.items()))
        return
    if isinstance(eq, (int, float)) and not isinstance(eq, bool) and (
            eq < lo or eq > hi or (eq == lo and lo_strict) or (eq == hi and hi_strict)):
        yield Problem(name, (name, "eq"), f"eq: {eq:g} is outside {written}: it can never match")
