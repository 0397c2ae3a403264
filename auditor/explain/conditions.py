"""A rule's filter, condition by condition, with the values compared.

Each check (one key of a comparison, a list, or a plain value) is compiled on its own by the
filter compiler, `compile_filter`, with the field lookup it uses (DEAL_FIELDS, CHURN_FIELDS),
so every verdict here is the engine's own. The closures on the engine's hot path are left as
they are: this runs once per question, not per event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from auditor.rules.filters import FilterError, NamedLists, compile_filter
from auditor.rules.spec import Comparison, Condition, Filter

# The keys of a comparison, in the order the compiler tests them.
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "in_list", "not_in_list")
# How an event's value of a field it left out (region, manager_id) is shown.
MISSING = "(missing)"
SYMBOLS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
           "in": "in", "not_in": "not in", "in_list": "in", "not_in_list": "not in"}


def number(value: float) -> str:
    """A whole number as one (`12`, `365`); else two decimals when they say the value exactly,
    else as many as it takes (up to 6): a 0.195 discount is not shown as 0.20 beside a 0.20
    bound."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.2f}"
    if float(text) == value:
        return text
    return f"{value:.6f}".rstrip("0")


def show(value: Any) -> str:
    """A value as a rule file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison of a condition, and whether the event's value passes it."""

    op: str
    expected: Any  # the bound, or the values of a list
    list_name: str | None  # in_list / not_in_list: the list's name
    holds: bool

    def text(self) -> str:
        """`>= 0.25`, `in [new_logo, expansion]`, `in acquisition_deal_types [new_logo, ...]`."""
        named = f"{self.list_name} " if self.list_name is not None else ""
        return f"{SYMBOLS[self.op]} {named}{show(self.expected)}"


@dataclass(frozen=True, slots=True)
class ConditionResult:
    field: str  # as the rule file names it (`commission.basis`)
    value: Any  # the event's value of it; None when the event left an optional field out
    checks: tuple[Check, ...]

    @property
    def holds(self) -> bool:
        return all(c.holds for c in self.checks)


@dataclass(frozen=True, slots=True)
class FilterResult:
    side: str  # deal or churn
    conditions: tuple[ConditionResult, ...]

    @property
    def holds(self) -> bool:
        return all(c.holds for c in self.conditions)

    @property
    def empty(self) -> bool:
        return not self.conditions

    def lines(self, indent: str = "    ") -> list[str]:
        """One line a check; the first that fails is where the engine stops."""
        if self.empty:
            return [f"{indent}(no condition: every {self.side} passes)"]
        out: list[str] = []
        stopped = False
        for condition in self.conditions:
            value = MISSING if condition.value is None else show(condition.value)
            for check in condition.checks:
                line = (f"{indent}{condition.field} {value} {check.text()} ... "
                        f"{'yes' if check.holds else 'no'}")
                if not check.holds and not stopped:
                    stopped = True
                    line += "   <- stops here"
                out.append(line)
        return out


def split_condition(condition: Condition) -> list[tuple[str, Condition]]:
    """(op, a condition of that one check) for each check of `condition`, in compiler order."""
    if isinstance(condition, list):  # `field: [a, b]`: one of
        return [("in", condition)]
    if not isinstance(condition, Comparison):  # `field: value`: equal to
        return [("eq", condition)]
    parts: list[tuple[str, Condition]] = []
    for op in OPS:
        value = getattr(condition, "in_" if op == "in" else op)
        if value is not None:
            parts.append((op, Comparison.model_validate({op: value})))
    return parts


def explain_filter(side: str, conditions: Filter, fields: Mapping[str, str], record: Any,
                   lists: NamedLists | None = None) -> FilterResult:
    """Each condition of a rule's `deal:` or `churn:` filter on `record` (a Deal or a Churn),
    each check compiled by `compile_filter`; `holds` is what the rule's compiled predicate
    says of the record."""
    named = lists or {}
    fields = dict(fields)
    results: list[ConditionResult] = []
    for name, condition in conditions.items():
        attr = fields.get(name)
        if attr is None:  # the loader refuses such a rule; the compiler's own message
            known = ", ".join(sorted(fields))
            raise FilterError(name, f"unknown field {name!r}; known fields: {known}")
        checks: list[Check] = []
        for op, single in split_condition(condition):
            predicate = compile_filter({name: single}, fields, named)
            assert predicate is not None  # one condition: something to test
            expected, list_name = _expected(op, single, named)
            checks.append(Check(op, expected, list_name, bool(predicate(record))))
        results.append(ConditionResult(name, attrgetter(attr)(record), tuple(checks)))
    return FilterResult(side, tuple(results))


def filter_text(conditions: Filter, lists: NamedLists | None = None) -> str:
    """A filter on one line, as its checks read: `deal_type == renewal and acv > 5000`."""
    named = lists or {}
    parts: list[str] = []
    for name, condition in conditions.items():
        for op, single in split_condition(condition):
            expected, list_name = _expected(op, single, named)
            parts.append(f"{name} {Check(op, expected, list_name, True).text()}")
    return " and ".join(parts)


def _expected(op: str, single: Condition, lists: NamedLists) -> tuple[Any, str | None]:
    if not isinstance(single, Comparison):
        return single, None
    if op in ("in_list", "not_in_list"):
        name = getattr(single, op)
        return list(lists.get(name, ())), name
    return getattr(single, "in_" if op == "in" else op), None
