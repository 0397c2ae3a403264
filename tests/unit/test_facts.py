"""Facts are rows: the hot path's `fact_of`, the named constructor and the wire form agree."""

from __future__ import annotations

import orjson
import pytest

from auditor.engine.facts import CHURNED, DEAL, FIELDS, AggregateFact, fact_of


def _churned() -> AggregateFact:
    return AggregateFact(CHURNED, "rep-early-churn-rate", "rep-1", "2026-Q1", 1.7e9, "acct-1",
                         "deal-9", "new_logo", 1200.0, 10000.0, 600.0, days=30.0,
                         money_class="recoverable", plan_id="hunter", team="emea",
                         deal_time=1.69e9, values=(1.0, 1.0, 0.0, 1.0, 1.0, 0.0))


def test_fact_of_makes_the_fact_the_named_constructor_makes() -> None:
    named = AggregateFact(DEAL, "r", "g", "2026-Q1", 1.7e9, "a", "d", "renewal", 1.0, 2.0, 0.5,
                          values=(1.0, 2.0, 0.0, 1.0, 1.0, 0.0))
    made = fact_of((DEAL, "r", "g", "2026-Q1", 1.7e9, "a", "d", "renewal", 1.0, 2.0, 0.5,
                    0.0, None, "", "", 0.0, (1.0, 2.0, 0.0, 1.0, 1.0, 0.0)))
    assert type(made) is AggregateFact
    assert made == named
    assert made.key == "r\x1fg\x1f2026-Q1"
    assert made.member == "a\x1fd"
    assert made.entry == ("renewal", 1.0, 2.0, 0.5)


def test_a_row_read_back_from_json_is_the_same_fact() -> None:
    fact = _churned()
    row = orjson.loads(orjson.dumps(fact.to_row()))  # values come back as a list
    again = AggregateFact.from_row(row)
    assert again == fact
    assert type(again.values) is tuple
    assert list(fact.to_dict()) == list(FIELDS)
    assert AggregateFact.from_dict(orjson.loads(orjson.dumps(fact.to_dict()))) == fact


@pytest.mark.parametrize("cut", [1, -1])
def test_a_row_of_another_length_is_refused(cut: int) -> None:
    row = list(_churned().to_row())
    row = row[:-1] if cut == 1 else [*row, "extra"]
    with pytest.raises(ValueError, match="a fact has 17 fields"):
        AggregateFact.from_row(row)
