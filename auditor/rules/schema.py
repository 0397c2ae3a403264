"""The rule-file format, as pydantic models: what sales ops may write in rules/*.yaml.

A rule's keys depend on its `kind`; the kinds are the modules of auditor/rules/kinds/, so the
file model is built from that registry (a kind added there is known here, in the loader and in
the JSON Schema without another change).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter, create_model

from auditor.rules.kinds import kinds
from auditor.rules.kinds.aggregate import Groupable
from auditor.rules.measures import MeasureSpec
from auditor.rules.spec import Scalar, Strict

ListName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
MeasureName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
# Top-level keys of a rule file, besides `rules`.
TOP_KEYS = ("lists", "measures", "bounded_dimensions", "rules")


def rule_spec_type() -> Any:
    """Any rule, by its `kind`: the union of every registered kind's spec."""
    return _rule_spec_type(tuple(k.spec for k in kinds().values()))


@cache
def _rule_spec_type(specs: tuple[type[BaseModel], ...]) -> Any:
    return Annotated[Union[specs], Field(discriminator="kind")]  # noqa: UP007


def rule_adapter() -> TypeAdapter[Any]:
    return _rule_adapter(rule_spec_type())


@cache
def _rule_adapter(spec_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(spec_type)


def rule_file_model() -> type[BaseModel]:
    """A rules/*.yaml file: named lists of values any rule's filter can use, named measures any
    aggregate can use, the group-by fields that may become metric labels, and rules."""
    return _rule_file_model(rule_spec_type())


@cache
def _rule_file_model(spec_type: Any) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        "RuleFile", __base__=Strict,
        lists=(dict[ListName, list[Scalar]], Field(default_factory=dict)),
        measures=(dict[MeasureName, MeasureSpec], Field(default_factory=dict)),
        bounded_dimensions=(list[Groupable] | None, None),
        rules=(list[spec_type], Field(default_factory=list)),
    )
    return model


class CurrencyFile(Strict):
    reporting_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[float, Field(gt=0)]] = (
        Field(default_factory=dict)
    )


def rule_file_json_schema() -> dict[str, Any]:
    """JSON Schema of a rules/*.yaml file, for editors (YAML language servers read it)."""
    schema = rule_file_model().model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "comp-auditor rule file"
    return schema

