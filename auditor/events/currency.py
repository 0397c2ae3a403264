"""Conversion of event amounts into the reporting currency named in rules/currency.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CurrencyTable:
    reporting: str = "USD"
    # Value of one unit of each other currency in the reporting currency.
    rates: dict[str, float] = field(default_factory=dict)

    def rate(self, currency: str) -> float | None:
        if currency == self.reporting:
            return 1.0
        return self.rates.get(currency)
