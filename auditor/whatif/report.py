"""The what-if as a printed table with a headline per changed plan, and as JSON.

JSON (`--json OUT`; keys are stable, money in the reporting currency rounded to cents, each
figure rounded on its own from unrounded sums, so rows may differ from their totals by cents):

    {
      "currency": "USD",
      "input": {"lines": int, "deals": int, "churns": int, "invalid": int, "duplicates": int,
                "other_plans": {plan_id: deals}},       # deals of plans not in the candidate
      "plans": [                                        # every candidate plan, by plan_id
        {
          "plan_id": "hunter-2026",
          "changes": {"clawback_days": [0, 180]},       # {dotted field: [registry, candidate]};
                                                        # registry value null for a new plan
          "churn_window_days": 180,                     # which deals count as churned
          "headline": "With a 180-day clawback ..." or null (no change),
          "totals": {FIGURES},
          "rows": [{"team": str, "quarter": "2026-Q1", FIGURES}, ...]  # by team, quarter
        }
      ]
    }

    FIGURES: "paid_actual", "paid_candidate", "paid_change",
             "recovered_actual", "recovered_candidate", "recovered_change",
             "unrecovered_actual", "unrecovered_candidate", "unrecovered_change",
             "upfront_churned_actual", "upfront_churned_candidate" (paid upfront on the churned
             deals; unrecovered = that - recovered), "deals", "churned_deals"

A change is candidate - actual.
"""

from __future__ import annotations

from typing import Any

from auditor.whatif.runner import Figures, PlanResult, WhatIf


def figures_dict(f: Figures) -> dict[str, Any]:
    return {
        "paid_actual": _cents(f.paid_actual),
        "paid_candidate": _cents(f.paid_candidate),
        "paid_change": _cents(f.paid_candidate - f.paid_actual),
        "recovered_actual": _cents(f.recovered_actual),
        "recovered_candidate": _cents(f.recovered_candidate),
        "recovered_change": _cents(f.recovered_candidate - f.recovered_actual),
        "unrecovered_actual": _cents(f.unrecovered_actual),
        "unrecovered_candidate": _cents(f.unrecovered_candidate),
        "unrecovered_change": _cents(f.unrecovered_candidate - f.unrecovered_actual),
        "upfront_churned_actual": _cents(f.upfront_churned_actual),
        "upfront_churned_candidate": _cents(f.upfront_churned_candidate),
        "deals": f.deals,
        "churned_deals": f.churned_deals,
    }


def to_json(whatif: WhatIf) -> dict[str, Any]:
    h = whatif.history
    return {
        "currency": whatif.currency,
        "input": {"lines": h.lines, "deals": len(h.deals), "churns": h.churns,
                  "invalid": h.invalid, "duplicates": h.duplicates,
                  "other_plans": whatif.other_plans},
        "plans": [{
            "plan_id": plan.plan_id,
            "changes": plan.changes,
            "churn_window_days": plan.churn_window_days,
            "headline": headline(plan, whatif.currency),
            "totals": figures_dict(plan.totals),
            "rows": [{"team": team, "quarter": quarter, **figures_dict(f)}
                     for (team, quarter), f in plan.rows.items()],
        } for plan in whatif.plans],
    }


def headline(plan: PlanResult, currency: str) -> str | None:
    """One sentence on what the changes of a plan would have done; None when nothing changed."""
    if not plan.changes:
        return None
    t = plan.totals
    changed = set(plan.changes)
    pay_changed = any(name.startswith(_PAY) for name in changed)
    clauses = []
    if pay_changed:
        clauses.append(f"{compact(t.paid_candidate)} {currency} would have been paid instead "
                       f"of {compact(t.paid_actual)}")
    if plan.churn_window_days > 0 and any(name.startswith(_UPFRONT) for name in changed):
        was = compact(t.recovered_actual) if _cents(t.recovered_actual) else "none"
        clauses.append(f"{compact(t.recovered_candidate)} {currency} of the "
                       f"{compact(t.upfront_churned_candidate)} paid upfront on accounts that "
                       f"churned within {plan.churn_window_days} days would have been "
                       f"recovered ({was} as it was)")
    outcome = " and ".join(clauses) if clauses else "the figures would have been the same"
    return f"With {_describe(plan.changes)} on {plan.plan_id}, {outcome}."


# Changes that change the commission, and those that change what is paid upfront or recovered.
_PAY = ("rates.", "multi_year_basis")
_UPFRONT = (*_PAY, "paid_at_close.", "clawback_days", "clawback_share")


def _describe(changes: dict[str, list[Any]]) -> str:
    parts = []
    for name, (old, new) in changes.items():
        if name == "clawback_days":
            parts.append(f"a {new}-day clawback" if new else "no clawback")
        elif name == "clawback_share":
            parts.append(f"a clawback share of {new:.0%}")
        elif old is None:
            parts.append(f"{name} {new}")
        else:
            parts.append(f"{name} {old} -> {new}")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def compact(amount: float) -> str:
    """1.1M, 950.3K, 512.40: for sentences."""
    size = abs(amount)
    if size >= 1e6:
        return f"{amount / 1e6:.1f}M"
    if size >= 1e3:
        return f"{amount / 1e3:.1f}K"
    return f"{amount:.2f}"


_COLUMNS = ("deals", "churned", "paid was", "paid cand.", "paid chg", "recov. was",
            "recov. cand.", "unrec. was", "unrec. cand.")


def render(whatif: WhatIf) -> str:
    h = whatif.history
    lines = [f"{h.lines:,} lines: {len(h.deals):,} deals, {h.churns:,} churns, "
             f"{h.invalid:,} invalid lines skipped, {h.duplicates:,} duplicates ignored; "
             f"amounts in {whatif.currency}"]
    if whatif.other_plans:
        lines.append("not compared (plan not in the candidate): " + ", ".join(
            f"{plan_id} {count:,} deals" for plan_id, count in whatif.other_plans.items()))
    for plan in whatif.plans:
        lines.append("")
        changed = "; ".join(f"{name} {old} -> {new}" for name, (old, new) in plan.changes.items())
        lines.append(f"== {plan.plan_id}: {changed or 'no change'} "
                     f"(churned: first churn within {plan.churn_window_days} days) ==")
        sentence = headline(plan, whatif.currency)
        if sentence:
            lines.append(sentence)
        lines.append(f"{'team':<18} {'quarter':<8}" + "".join(f"{c:>13}" for c in _COLUMNS))
        for (team, quarter), figures in plan.rows.items():
            lines.append(_row(team, quarter, figures))
        lines.append(_row("total", "", plan.totals))
    return "\n".join(lines)


def _row(team: str, quarter: str, f: Figures) -> str:
    cells = [f"{f.deals:,}", f"{f.churned_deals:,}"] + [f"{_cents(v):,.2f}" for v in (
        f.paid_actual, f.paid_candidate, f.paid_candidate - f.paid_actual, f.recovered_actual,
        f.recovered_candidate, f.unrecovered_actual, f.unrecovered_candidate)]
    return f"{team:<18} {quarter:<8}" + "".join(f"{c:>13}" for c in cells)


def _cents(amount: float) -> float:
    return round(amount, 2) + 0.0  # + 0.0: no -0.0
