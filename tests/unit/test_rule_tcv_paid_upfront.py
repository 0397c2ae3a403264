"""tcv-paid-upfront: term > 12 months, basis tcv, paid_upfront >= 0.9 x commission.amount."""

import pytest
from unit_helpers import deal_dict, run, ts

RULE = "tcv-paid-upfront"


def _deal(term=36, basis="tcv", amount=1000.0, paid=1000.0, **kw):
    return deal_dict(term_months=term,
                     commission={"basis": basis, "amount": amount, "paid_upfront": paid}, **kw)


def _alerts(rules, deal):
    return run(rules, [deal]).of(RULE)


def test_fires_on_a_multi_year_tcv_deal_paid_upfront(rules):
    deal = _deal(term=24, amount=1000.0, paid=1000.0, days=3.25)
    [alert] = _alerts(rules, deal)
    assert alert.severity == "warning"
    assert alert.kind == "deal"
    assert alert.at_risk == 500.0
    assert alert.deal_id == deal["deal_id"]
    assert alert.event_time == ts(3.25)
    assert alert.period is None


@pytest.mark.parametrize(("term", "fires"), [(12, False), (13, True), (1, False), (60, True)])
def test_term_must_exceed_twelve_months(rules, term, fires):
    assert len(_alerts(rules, _deal(term=term))) == (1 if fires else 0)


def test_basis_acv_does_not_fire(rules):
    assert _alerts(rules, _deal(basis="acv")) == []


def test_paid_upfront_exactly_nine_tenths_fires(rules):
    amount = 1000.0
    assert 0.9 * amount == 900.0
    assert len(_alerts(rules, _deal(amount=amount, paid=0.9 * amount))) == 1


def test_paid_upfront_nine_tenths_of_an_odd_amount_fires(rules):
    amount = 1234.56
    assert len(_alerts(rules, _deal(amount=amount, paid=0.9 * amount))) == 1


@pytest.mark.parametrize("paid", [899.99, 899.0, 0.0])
def test_paid_upfront_below_nine_tenths_does_not_fire(rules, paid):
    assert _alerts(rules, _deal(amount=1000.0, paid=paid)) == []


@pytest.mark.parametrize(
    ("term", "amount", "paid", "expected"),
    [
        (24, 1000.0, 1000.0, 500.0),
        (36, 1000.0, 1000.0, 666.67),  # 1000 - 333.333... rounded to cents
        (36, 1000.0, 900.0, 566.67),
        (13, 1000.0, 1000.0, 76.92),  # 1000 - 923.0769...
        (13, 1000.0, 900.0, 0.0),  # 900 - 923.08 < 0 -> 0
        (48, 0.0, 0.0, 0.0),  # nothing paid, nothing at risk (0 >= 0.9 x 0 holds)
    ],
)
def test_at_risk_is_upfront_beyond_the_first_year(rules, term, amount, paid, expected):
    [alert] = _alerts(rules, _deal(term=term, amount=amount, paid=paid))
    assert alert.at_risk == expected


def test_deal_type_does_not_matter(rules):
    for deal_type in ("new_logo", "expansion", "renewal"):
        assert len(_alerts(rules, _deal(deal_type=deal_type))) == 1
