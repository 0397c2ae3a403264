"""Amounts are converted to the reporting currency on input, at the rates of currency.yaml."""

import pytest
import yaml
from unit_helpers import churn_dict, deal_dict, raw, run

from auditor.events.currency import CurrencyTable
from auditor.events.decode import EventDecoder
from auditor.events.models import Deal
from auditor.rules.loader import default_rules_dir


@pytest.fixture(scope="module")
def rates():
    data = yaml.safe_load((default_rules_dir() / "currency.yaml").read_text())
    assert data["reporting_currency"] == "USD"
    return data["rates"]


def test_the_pack_loads_the_rates_of_currency_yaml(rules, rates):
    assert rules.currency.reporting == "USD"
    assert rules.currency.rates == rates


def test_eur_deal_amounts_are_multiplied_by_the_rate(decoder, rates):
    event = deal_dict(currency="EUR", acv=1000.0, tcv=3000.0,
                      commission={"amount": 200.0, "paid_upfront": 150.0, "rate": 0.1})
    deal = decoder.decode(raw(event), "s")
    assert isinstance(deal, Deal)
    r = rates["EUR"]
    assert (deal.acv, deal.tcv, deal.amount, deal.paid_upfront) == (
        1000.0 * r, 3000.0 * r, 200.0 * r, 150.0 * r)
    assert deal.rate == 0.1  # a rate is not money
    assert deal.discount_pct == event["discount_pct"]


def test_usd_amounts_are_unchanged(decoder):
    deal = decoder.decode(raw(deal_dict(acv=1234.5, commission={"amount": 99.99})), "s")
    assert (deal.acv, deal.amount, deal.paid_upfront) == (1234.5, 99.99, 99.99)


def test_churn_arr_lost_is_converted(decoder, rates):
    churn = decoder.decode(raw(churn_dict(currency="GBP", arr_lost=500.0)), "s")
    assert churn.arr_lost == 500.0 * rates["GBP"]


def test_eur_deal_alert_is_in_usd(rules, rates):
    deal = deal_dict(currency="EUR", commission={"amount": 1000.0, "paid_upfront": 1000.0})
    [alert] = run(rules, [deal, churn_dict(days=3.0)]).of("early-churn-unrecovered")
    assert alert.currency == "USD"
    assert alert.at_risk == round(1000.0 * rates["EUR"], 2) == 1080.0


def test_partial_churn_share_compares_converted_amounts(rules, rates):
    # acv 1000 EUR = 1080 USD; 540 USD lost is half of it.
    deal = deal_dict(currency="EUR", acv=1000.0,
                     commission={"amount": 1000.0, "paid_upfront": 1000.0})
    churn = churn_dict(days=3.0, churn_type="partial", currency="USD", arr_lost=540.0)
    [alert] = run(rules, [deal, churn]).of("early-churn-unrecovered")
    assert alert.at_risk == round(1000.0 * rates["EUR"] * 0.5, 2) == 540.0


def test_jpy_tcv_alert_rounds_converted_money_to_cents(rules, rates):
    deal = deal_dict(currency="JPY", term_months=36,
                     commission={"basis": "tcv", "amount": 123457.0, "paid_upfront": 123457.0})
    [alert] = run(rules, [deal]).of("tcv-paid-upfront")
    amount = 123457.0 * rates["JPY"]
    assert alert.currency == "USD"
    assert alert.at_risk == round(amount - amount * 12 / 36, 2)


def test_aggregates_sum_converted_commission(rules, rates):
    # Four new logos in USD and one renewal in EUR: 4 x 100 / (400 + 60 x 1.08) = 0.86 > 0.85.
    deals = [deal_dict(team="t", account_id=f"a{i}", commission={"amount": 100.0})
             for i in range(4)]
    deals.append(deal_dict(team="t", account_id="e", deal_type="renewal", currency="EUR",
                           commission={"amount": 60.0}))
    [alert] = run(rules, deals).of("new-logo-payout-share")
    assert alert.currency == "USD"
    assert alert.value == pytest.approx(400.0 / (400.0 + 60.0 * rates["EUR"]), abs=1e-6)
    # Unconverted, 400 / 460 = 0.8696 would also fire: check the converted value apart from it.
    assert alert.value != pytest.approx(400.0 / 460.0, abs=1e-6)


def test_a_custom_reporting_currency():
    decoder = EventDecoder(CurrencyTable("EUR", {"USD": 0.5}))
    deal = decoder.decode(raw(deal_dict(currency="USD", acv=100.0)), "s")
    assert deal.acv == 50.0
    same = decoder.decode(raw(deal_dict(currency="EUR", acv=100.0)), "s")
    assert same.acv == 100.0
    letter = decoder.decode(raw(deal_dict(currency="GBP")), "s")
    assert letter.reason == "unsupported_currency"
