"""`auditor rules explain` as a user runs it, on `auditor simulate --accounts 300 --seed 7`:
for rules of each kind, a deal it fires on and one it does not, the last line agreeing with
what `auditor replay` wrote for that deal; exit 0 either way, 2 on bad input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import auditor

from auditor.engine.periods import quarter_of

# Whether a deal counts in the aggregate rules' periods (their deal filters).
AGGREGATE = {
    "new-logo-payout-share": ("team", lambda deal: True),
    "commission-retention-plan": ("plan_id", lambda deal: True),
    "renewal-rate-gap": ("plan_id", lambda deal: True),
    "rep-early-churn-rate": ("rep_id",
                             lambda deal: deal["deal_type"] in ("new_logo", "expansion")),
}
RULES = ["discount-then-churn", "early-churn-unrecovered", "churn-and-resell",
         "tcv-paid-upfront", *AGGREGATE]


class Simulated:
    def __init__(self, events: Path, alerts: list[dict[str, Any]]) -> None:
        self.events = events
        self.alerts = alerts
        self.deals: list[tuple[int, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for number, line in enumerate(events.read_text().splitlines(), 1):
            event = json.loads(line)
            key = (event.get("account_id"), event.get("deal_id"))
            if event["event_type"] == "deal_closed" and key not in seen:  # not a duplicate
                seen.add(key)
                self.deals.append((number, event))

    def fires(self, rule: str, deal: dict[str, Any]) -> bool:
        """What the replay wrote about this deal and rule."""
        if rule not in AGGREGATE:
            return any(a["rule"] == rule and a["account_id"] == deal["account_id"]
                       and a["deal_id"] == deal["deal_id"] for a in self.alerts)
        group_by, counts = AGGREGATE[rule]
        closed = datetime.fromisoformat(deal["closed_at"].replace("Z", "+00:00"))
        period = quarter_of(closed.timestamp())[0]
        return counts(deal) and any(
            a["rule"] == rule and a["group"] == deal[group_by] and a["period"] == period
            for a in self.alerts)

    def one(self, rule: str, fires: bool) -> tuple[int, dict[str, Any]]:
        for number, deal in self.deals:
            if self.fires(rule, deal) is fires:
                return number, deal
        raise AssertionError(f"the simulation has no deal {rule} {'fires' if fires else 'skips'}")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    out = tmp_path_factory.mktemp("explain")
    events, alerts = out / "events.jsonl", out / "alerts.jsonl"
    done = auditor("simulate", "--accounts", "300", "--seed", "7", "--out", str(events))
    assert done.returncode == 0, done.stderr.decode()
    done = auditor("replay", str(events), "--alerts-out", str(alerts))
    assert done.returncode == 0, done.stderr.decode()
    return Simulated(events, [json.loads(line) for line in alerts.read_text().splitlines()])


def explain(*args: str) -> tuple[int, str, str]:
    done = auditor("rules", "explain", *args)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize("fires", [True, False])
@pytest.mark.parametrize("rule", RULES)
def test_the_last_line_is_what_the_replay_found(sim: Simulated, rule: str, fires: bool):
    number, deal = sim.one(rule, fires)
    code, out, err = explain(rule, "--event", f"{sim.events}:{number}")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{rule} (") and f"on deal {deal['deal_id']} of account " \
        f"{deal['account_id']} ({sim.events}:{number}):" in lines[0]
    assert lines[1] == "  deal filter:"
    verdict = "  => fires: " if fires else "  => does not fire: "
    assert lines[-1].startswith(verdict), out
    assert "note:" not in out, out  # the conditions say what the replay did
    # the same deal by its id, within its account
    code, by_id, err = explain(rule, "--deal", deal["deal_id"], str(sim.events),
                               "--account", deal["account_id"])
    assert code == 0, err
    assert by_id == out


def test_a_join_rule_lists_the_accounts_churns(sim: Simulated):
    number, _ = sim.one("early-churn-unrecovered", True)
    code, out, _ = explain("early-churn-unrecovered", "--event", f"{sim.events}:{number}")
    assert code == 0
    assert "  churns of account " in out
    assert "    days from the deal to the churn: " in out
    assert "    -> this churn raises an alert: severity " in out


def test_a_deal_after_deal_rule_tries_the_accounts_other_deals(sim: Simulated):
    rule = "renewal-discount-after-new-logo"
    accounts: dict[str, int] = {}
    for _, deal in sim.deals:
        accounts[deal["account_id"]] = accounts.get(deal["account_id"], 0) + 1
    number, deal = next((n, d) for n, d in sim.deals
                        if d["deal_type"] == "renewal" and d["discount_pct"] >= 0.3
                        and accounts[d["account_id"]] > 1)
    code, out, err = explain(rule, "--event", f"{sim.events}:{number}")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1:3] == ["  as the second deal:", "    second filter:"]
    assert f"    other deals of account {deal['account_id']} in {sim.events}: " in out
    assert "  as the first deal:" in lines
    fires = any(a["rule"] == rule and a["account_id"] == deal["account_id"]
                and deal["deal_id"] in (a["deal_id"], a["evidence"]["first_deal_id"])
                for a in sim.alerts)
    assert lines[-1].startswith("  => fires: " if fires else "  => does not fire: "), out
    assert "note:" not in out, out


def test_a_rules_directory_is_taken(sim: Simulated, tmp_path: Path):
    number, _ = sim.one("discount-then-churn", False)
    code, _, err = explain("discount-then-churn", "--event", f"{sim.events}:{number}",
                           "--rules", str(tmp_path / "missing"))
    assert code == 2
    assert "rules directory not found" in err


@pytest.mark.parametrize(("args", "message"), [
    (["discount-then-chrun", "--event", "{events}:1"],
     "unknown rule 'discount-then-chrun'; did you mean 'discount-then-churn'?"),
    (["discount-then-churn", "--event", "{events}"], "expected FILE:LINE"),
    (["discount-then-churn", "--event", "{events}:100000"], "the file has"),
    (["discount-then-churn", "--event", "{events}.missing:1"], "cannot read"),
    (["discount-then-churn", "--deal", "no-such-deal", "{events}"],
     "no valid deal_closed event of deal no-such-deal"),
    (["discount-then-churn", "--event", "{events}:1", "--account", "acct-nobody"],
     "not acct-nobody"),
    (["discount-then-churn"], "one of the arguments --event --deal is required"),
])
def test_bad_input_exits_2(sim: Simulated, args: list[str], message: str):
    code, out, err = explain(*(a.format(events=sim.events) for a in args))
    assert code == 2
    assert message in err
    assert out == ""


def test_a_churn_line_is_bad_input(sim: Simulated):
    lines = sim.events.read_text().splitlines()
    number = next(n for n, line in enumerate(lines, 1) if '"account_churned"' in line)
    code, _, err = explain("discount-then-churn", "--event", f"{sim.events}:{number}")
    assert code == 2
    assert "an account_churned event; explain takes a deal_closed line" in err
