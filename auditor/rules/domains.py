"""The values each event field can take, read from the event contract (auditor/events/models.py)
so a filter can be checked against them: a value outside them is a typo that would switch the
condition off (never true) or make it meaningless (always true).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from auditor.events.models import Churn, Deal


@dataclass(frozen=True, slots=True)
class Domain:
    kind: Literal["enum", "text", "int", "float"]
    values: tuple[str, ...] = ()  # enum
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    pattern: str | None = None  # text
    # The field may be left out of an event: its value is then None, which no filter value
    # equals (filters.py says what each condition makes of it).
    optional: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def describe(self) -> str:
        if self.kind == "enum":
            return "one of " + ", ".join(self.values)
        if self.kind == "text":
            return f"text matching {self.pattern}" if self.pattern else "text"
        what = "a whole number" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        if self.low is not None:
            return f"{what} >= {_num(self.low)}"
        return what

    def problem(self, value: Any) -> str | None:
        """Why `value` can never be this field's value, or None when it can."""
        if self.kind in ("enum", "text"):
            if not isinstance(value, str):
                return f"{value!r} is not text (the field is {self.describe()})"
            if self.kind == "enum" and value not in self.values:
                return f"{value!r} is not one of {', '.join(self.values)}"
            if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
                return f"{value!r} does not match {self.pattern}"
            if not value:
                return "an empty text never matches"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number (the field is {self.describe()})"
        if self.kind == "int" and value != int(value):
            return f"{_num(value)} is not a whole number"
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            return f"{_num(value)} is outside the field's values ({self.describe()})"
        return None


def _num(value: float) -> str:
    return f"{value:g}"


def field_domains(model: type[Any]) -> dict[str, Domain]:
    """Domain of each field of a pydantic dataclass of the event contract, by attribute name."""
    fields = getattr(model, "__pydantic_fields__")  # noqa: B009 (no typed accessor)
    return {name: _domain(info.annotation, info.metadata) for name, info in fields.items()
            if getattr(info, "init", None) is not False}


def _domain(annotation: Any, metadata: list[Any]) -> Domain:
    args = typing.get_args(annotation)
    if type(None) in args and typing.get_origin(annotation) in (types.UnionType, typing.Union):
        # `X | None`: a field that may be missing, whose values when present are X's.
        (present,) = [a for a in args if a is not type(None)]
        return dataclasses.replace(_domain(present, metadata), optional=True)
    if typing.get_origin(annotation) is Literal:
        return Domain("enum", tuple(str(v) for v in typing.get_args(annotation)))
    # Field(ge=..., le=...) arrives as annotated_types.Ge / Le objects in the metadata.
    low = next((float(m.ge) for m in metadata if getattr(m, "ge", None) is not None), None)
    high = next((float(m.le) for m in metadata if getattr(m, "le", None) is not None), None)
    if annotation is int:
        return Domain("int", low=low, high=high)
    if annotation is float:
        return Domain("float", low=low, high=high)
    pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
    return Domain("text", pattern=pattern)


DEAL_DOMAINS = field_domains(Deal)
CHURN_DOMAINS = field_domains(Churn)
