"""`auditor plans whatif` as a user runs it, on `auditor simulate --accounts 400 --seed 7`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import ROOT, auditor

MONEY = ("paid_actual", "paid_candidate", "paid_change", "recovered_actual",
         "recovered_candidate", "recovered_change", "unrecovered_actual",
         "unrecovered_candidate", "unrecovered_change", "upfront_churned_actual",
         "upfront_churned_candidate")


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("whatif") / "events.jsonl"
    done = auditor("simulate", "--accounts", "400", "--seed", "7", "--out", str(path))
    assert done.returncode == 0, done.stderr.decode()
    return path


def whatif(events: Path, out: Path, *args: str) -> tuple[dict[str, Any], str]:
    done = auditor("plans", "whatif", str(events), "--json", str(out), *args)
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, Any] = json.loads(out.read_text())
    return report, done.stdout.decode()


def plans(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {plan["plan_id"]: plan for plan in report["plans"]}


def assert_consistent(report: dict[str, Any]) -> None:
    assert report["currency"] == "USD"
    for plan in report["plans"]:
        rows, totals = plan["rows"], plan["totals"]
        assert rows
        for key in ("deals", "churned_deals"):
            assert sum(row[key] for row in rows) == totals[key]
        for key in MONEY:  # each figure rounded on its own: rows may be off by a cent each
            assert abs(sum(row[key] for row in rows) - totals[key]) <= 0.01 * len(rows), key
        for row in [*rows, totals]:
            for side in ("actual", "candidate"):
                assert row[f"unrecovered_{side}"] == pytest.approx(
                    row[f"upfront_churned_{side}"] - row[f"recovered_{side}"], abs=0.011)
                assert row[f"recovered_{side}"] >= 0 and row[f"unrecovered_{side}"] >= -0.01
            assert row["paid_change"] == pytest.approx(
                row["paid_candidate"] - row["paid_actual"], abs=0.011)
            assert 0 <= row["churned_deals"] <= row["deals"]
    assert len({(r["team"], r["quarter"]) for p in report["plans"] for r in p["rows"]}) == sum(
        len(p["rows"]) for p in report["plans"])


def test_the_registry_itself_pays_what_was_paid(events: Path, tmp_path: Path):
    report, stdout = whatif(events, tmp_path / "same.json")
    assert_consistent(report)
    assert report["input"]["duplicates"] > 0 and report["input"]["invalid"] == 0
    found = plans(report)
    assert set(found) == {"hunter-2026", "steady-2026"}
    for plan in found.values():  # the simulated deals follow their plans
        t = plan["totals"]
        assert plan["changes"] == {} and plan["headline"] is None
        assert t["deals"] > 100
        # the events' amounts are rounded to cents in their own currency
        assert abs(t["paid_change"]) <= 0.01 * t["deals"]
        assert abs(t["recovered_change"]) <= 0.01 * t["deals"]
    assert found["steady-2026"]["churn_window_days"] == 180
    assert found["steady-2026"]["totals"]["recovered_actual"] > 0
    assert found["hunter-2026"]["churn_window_days"] == 0
    assert found["hunter-2026"]["totals"]["recovered_actual"] == 0
    assert "== hunter-2026: no change" in stdout


def test_a_180_day_clawback_on_the_misaligned_plan(events: Path, tmp_path: Path):
    report, stdout = whatif(events, tmp_path / "clawback.json",
                            "--set", "hunter-2026.clawback_days=180")
    assert_consistent(report)
    hunter, steady = plans(report)["hunter-2026"], plans(report)["steady-2026"]
    assert hunter["changes"] == {"clawback_days": [0, 180]}
    t = hunter["totals"]
    assert t["recovered_actual"] == 0 and t["recovered_candidate"] > 0
    assert t["churned_deals"] > 0
    assert t["unrecovered_candidate"] < t["unrecovered_actual"] == t["upfront_churned_actual"]
    assert hunter["headline"] in stdout
    assert hunter["headline"].startswith("With a 180-day clawback on hunter-2026, ")
    assert steady["changes"] == {} and steady["headline"] is None


def test_a_candidate_file_with_a_half_share(events: Path, tmp_path: Path):
    candidate = tmp_path / "plans.yaml"
    candidate.write_text((ROOT / "rules" / "plans.yaml").read_text().replace(
        "clawback_days: 180", "clawback_days: 180\n    clawback_share: 0.5"))
    report, _ = whatif(events, tmp_path / "half.json", "--candidate", str(candidate))
    assert_consistent(report)
    steady = plans(report)["steady-2026"]
    assert steady["changes"] == {"clawback_share": [1.0, 0.5]}
    t = steady["totals"]
    assert t["recovered_candidate"] == pytest.approx(t["recovered_actual"] / 2, abs=0.01 * t[
        "deals"])


def test_an_unknown_field_is_refused_with_a_hint(events: Path):
    done = auditor("plans", "whatif", str(events), "--set", "hunter-2026.clawbak_days=180")
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "error: --set hunter-2026.clawbak_days=180: unknown field 'clawbak_days'; "
        "did you mean 'clawback_days'?")
    done = auditor("plans", "whatif", str(events), "--set", "huntr-2026.clawback_days=180")
    assert done.returncode == 2
    assert "did you mean 'hunter-2026'?" in done.stderr.decode()


def test_a_missing_file_is_an_error(tmp_path: Path):
    done = auditor("plans", "whatif", str(tmp_path / "none.jsonl"))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("error: ")
