"""Seeded synthetic event streams with plans that are aligned with retention and plans that are not.

The shape is what a revenue team sees: accounts won as new logos, renewed at term, expanded,
sometimes discounted hard; churn likelier after deep discounts and under a plan that pays at
signature with no clawback; some churned accounts sold again as "new" logos; a few duplicates.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    new_logo_rate: float
    expansion_rate: float
    renewal_rate: float
    basis_multi_year: str  # "acv" or "tcv": what a multi-year deal's rate is applied to
    upfront_share: float  # of the commission paid at close
    clawback_days: int
    churn_factor: float  # how much likelier customers sold under it leave


PLANS = (
    # Aligned: ACV basis, renewals paid about half the new-logo rate, 180-day clawback.
    Plan("steady-2026", 0.10, 0.08, 0.05, "acv", 0.5, 180, 1.0),
    # Misaligned: no clawback, renewals paid nothing, multi-year deals paid on TCV upfront.
    Plan("hunter-2026", 0.12, 0.06, 0.0, "tcv", 1.0, 0, 1.8),
)
TEAMS = {  # team -> plan
    "na-enterprise": "steady-2026",
    "emea-enterprise": "steady-2026",
    "na-midmarket": "hunter-2026",
    "apac-growth": "hunter-2026",
}
REGIONS = {"na": "amer", "emea": "emea", "apac": "apac"}  # by the team's prefix
REPS_PER_MANAGER = 5
CURRENCIES = (("USD", 0.8), ("EUR", 0.12), ("GBP", 0.08))
FX = {"USD": 1.0, "EUR": 1 / 1.08, "GBP": 1 / 1.27}  # reporting USD -> local amounts


@dataclass(slots=True)
class Rep:
    rep_id: str
    team: str
    plan: Plan
    discount_appetite: float  # mean discount this rep gives
    new_logo_bias: float  # share of effort on new logos
    region: str = ""
    manager_id: str = ""


class Simulator:
    def __init__(self, accounts: int = 2000, months: int = 24, seed: int = 7,
                 start: datetime | None = None) -> None:
        self.accounts = accounts
        self.months = months
        self.rng = random.Random(seed)
        self.start = start or datetime(2025, 1, 1, tzinfo=UTC)
        # Calendar months, so the stream ends on a quarter boundary when it starts on one and
        # its last quarter is a whole one (the live aggregate gauges show that quarter).
        index = self.start.month - 1 + months
        self.end = self.start.replace(year=self.start.year + index // 12, month=index % 12 + 1)
        self.plans = {p.plan_id: p for p in PLANS}
        self._seq = 0
        reps_per_team = max(2, accounts // 60)
        self.reps = [
            Rep(f"rep-{team.split('-')[0]}-{i:03d}", team, self.plans[plan],
                self.rng.choice((0.05, 0.1, 0.15, 0.3)), self.rng.uniform(0.5, 0.95),
                REGIONS[team.split("-")[0]], f"mgr-{team}-{i // REPS_PER_MANAGER}")
            for team, plan in TEAMS.items() for i in range(reps_per_team)
        ]

    def lines(self) -> Iterator[str]:
        """All events as JSON lines, in event-time order with a little local disorder."""
        # Events are kept serialised (a third of the memory of dicts) and sorted by their
        # timestamp text, which orders like the time itself: one format, always UTC "Z".
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        out: list[tuple[str, int, str]] = []
        for n in range(self.accounts):
            for event in self._account(f"acct-{n:06d}"):
                stamp = str(event.get("closed_at") or event.get("churned_at"))
                line = dumps(event)
                out.append((stamp, self._seq, line))
                self._seq += 1
                if self.rng.random() < 0.002:  # a producer retry: the same event again
                    retry = datetime.fromisoformat(stamp) + timedelta(minutes=5)
                    out.append((_stamp(retry), self._seq, line))
                    self._seq += 1
        out.sort()
        # Arrival is not event order: swap some neighbours, hours or days apart.
        rng = self.rng
        for i in range(len(out) - 1):
            if rng.random() < 0.05:
                out[i], out[i + 1] = out[i + 1], out[i]
        for _, _, line in out:
            yield line

    def events(self) -> Iterator[dict[str, object]]:
        """The same stream as dicts."""
        for line in self.lines():
            yield json.loads(line)

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self._seq:09d}"

    def _account(self, account_id: str) -> Iterator[dict[str, object]]:
        rng = self.rng
        span = (self.end - self.start).days
        when = self.start + DAY * rng.uniform(0, span * 0.85)
        rep = rng.choice(self.reps)
        currency = _pick(rng, CURRENCIES)
        acv = round(rng.lognormvariate(10.3, 0.8), 2)  # median ~30k
        deal_type = "new_logo"
        resold = False
        while when < self.end:
            term = rng.choice((12, 12, 12, 24, 36)) if deal_type != "expansion" else 12
            discount = min(0.6, max(0.0, rng.gauss(rep.discount_appetite, 0.08)))
            deal = self._deal(account_id, rep, deal_type, when, term, acv, discount, currency)
            yield deal
            if rng.random() < 0.001:  # a CRM re-sync: the same deal under a new event id
                yield dict(deal, event_id=self._id("evt"))
            # Churn hazard: deep discounts and the misaligned plan buy customers who leave.
            hazard = 0.10 * rep.plan.churn_factor * (1 + 3 * discount) * (1.5 if resold else 1)
            if deal_type != "renewal" and rng.random() < hazard:
                churn_at = when + DAY * rng.uniform(10, 300)
                if churn_at >= self.end:
                    return
                full = rng.random() < 0.75
                yield self._churn(account_id, churn_at, full, acv, currency)
                if not full:
                    acv = round(acv * rng.uniform(0.4, 0.8), 2)
                    when = churn_at + DAY * rng.uniform(30, 200)
                    deal_type = "expansion" if rng.random() < 0.3 else "renewal"
                    continue
                # Re-acquired: sold again as a "new" logo, often by a rep of a misaligned plan.
                if rng.random() < 0.25 * rep.plan.churn_factor:
                    when = churn_at + DAY * rng.uniform(20, 400)
                    deal_type, resold = "new_logo", True
                    rep = rng.choice(self.reps)
                    continue
                return
            if rng.random() < 0.25 * (1 - rep.new_logo_bias) + 0.05:
                when += DAY * rng.uniform(60, 200)
                deal_type = "expansion"
                acv = round(acv * rng.uniform(1.1, 1.5), 2)
            else:
                when += DAY * (term * 30.44 + rng.uniform(-15, 5))
                deal_type = "renewal"

    def _deal(self, account_id: str, rep: Rep, deal_type: str, when: datetime, term: int,
              acv_usd: float, discount: float, currency: str) -> dict[str, object]:
        plan = rep.plan
        fx = FX[currency]
        acv = round(acv_usd * (1 - discount) * fx, 2)
        tcv = round(acv * term / 12, 2)
        rate = {"new_logo": plan.new_logo_rate, "expansion": plan.expansion_rate,
                "renewal": plan.renewal_rate}[deal_type]
        basis = plan.basis_multi_year if term > 12 else "acv"
        amount = round((tcv if basis == "tcv" else acv) * rate, 2)
        upfront = round(amount * (plan.upfront_share if term > 12 else min(1.0, plan.upfront_share
                                                                          + 0.3)), 2)
        deal_id = self._id("deal")
        return {
            "event_type": "deal_closed", "event_id": self._id("evt"), "schema_version": 1,
            "deal_id": deal_id, "account_id": account_id, "rep_id": rep.rep_id,
            "team": rep.team, "plan_id": plan.plan_id, "deal_type": deal_type,
            "region": rep.region, "manager_id": rep.manager_id,
            "closed_at": _stamp(when), "term_months": term, "acv": acv, "tcv": tcv,
            "discount_pct": round(discount, 3), "currency": currency,
            "commission": {"amount": amount, "paid_upfront": min(upfront, amount),
                           "basis": basis, "rate": rate, "clawback_days": plan.clawback_days},
        }

    def _churn(self, account_id: str, when: datetime, full: bool, acv_usd: float,
               currency: str) -> dict[str, object]:
        lost = acv_usd if full else acv_usd * self.rng.uniform(0.2, 0.6)
        return {
            "event_type": "account_churned", "event_id": self._id("evt"), "schema_version": 1,
            "account_id": account_id, "churned_at": _stamp(when),
            "churn_type": "full" if full else "partial",
            "arr_lost": round(lost * FX[currency], 2), "currency": currency,
        }


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    r, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


def _stamp(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")
