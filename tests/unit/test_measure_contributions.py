"""A measure's contributions, made for each shape of quantity (a count or a sum, with or without
`per` and `where`), are what the definition says: (n, sum, per-sum) of a deal the quantity
takes, (0, 0, 0) of one its `where` leaves out."""

import json

import pytest
from unit_helpers import deal_dict

from auditor.events.decode import EventDecoder
from auditor.rules.filters import DEAL_FIELDS, compile_filter
from auditor.rules.measures import MeasureSpec, compile_measure

ATTR = {"acv": "acv", "tcv": "tcv", "commission.amount": "amount"}
SHAPES = [{"count": "deals"}, {"sum": "acv"}, {"sum": "acv", "per": "tcv"}]


def _expected(quantity: dict, deal) -> tuple[float, float, float]:
    if "where" in quantity and deal.deal_type != quantity["where"]["deal_type"]:
        return (0.0, 0.0, 0.0)
    total = 1.0 if "count" in quantity else float(getattr(deal, ATTR[quantity["sum"]]))
    per = float(getattr(deal, ATTR[quantity["per"]])) if "per" in quantity else 0.0
    return (1.0, total, per)


@pytest.mark.parametrize("where", [None, {"deal_type": "renewal"}])
@pytest.mark.parametrize("shape", SHAPES)
def test_contributions_of_every_shape_of_quantity(rules, shape, where):
    numerator = {**shape, **({"where": where} if where else {})}
    denominator = {"sum": "commission.amount", "per": "acv"}
    spec = MeasureSpec.model_validate({"describe": "x", "numerator": numerator,
                                       "denominator": denominator})
    measure = compile_measure("m", spec, {}, lambda f: compile_filter(f, DEAL_FIELDS))
    decoder = EventDecoder(rules.currency)
    for deal_type in ("new_logo", "renewal"):
        line = json.dumps(deal_dict(deal_type=deal_type, acv=1200.0, tcv=3600.0))
        deal = decoder.decode(line.encode(), "t")
        assert measure.contributions(deal) == (_expected(numerator, deal)
                                               + _expected(denominator, deal))
