"""`auditor replay` on input that is not exactly the contract: every such line is one dead letter
with its reason, each dead letter fits the size limit, valid lines are still audited, and the run
exits 0."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import auditor

from auditor.events.deadletter import DEADLETTER_MAX_BYTES

_DEAL: dict[str, Any] = {
    "event_type": "deal_closed", "event_id": "evt-ok-deal", "schema_version": 1,
    "deal_id": "deal-ok", "account_id": "acct-ok", "rep_id": "rep-1", "team": "team-a",
    "plan_id": "plan-a", "deal_type": "new_logo", "closed_at": "2026-01-05T10:00:00Z",
    "term_months": 12, "acv": 12000.0, "tcv": 12000.0, "discount_pct": 0.1, "currency": "USD",
    "commission": {"amount": 1200.0, "paid_upfront": 1200.0, "basis": "acv", "rate": 0.1,
                   "clawback_days": 0},
}
_CHURN: dict[str, Any] = {
    "event_type": "account_churned", "event_id": "evt-ok-churn", "schema_version": 1,
    "account_id": "acct-ok", "churned_at": "2026-01-20T10:00:00+05:30", "churn_type": "full",
    "arr_lost": 12000.0, "currency": "USD",
}


def _bad(event: dict[str, Any], n: int, **fields: Any) -> bytes:
    changed = {**event, "event_id": f"evt-bad-{n}", "account_id": f"acct-bad-{n}", **fields}
    return json.dumps(changed).encode()


def _raw_field(event: dict[str, Any], n: int, field: str, text: bytes) -> bytes:
    """The event with `field` written as the raw JSON text given."""
    line = _bad(event, n, **{field: "@@"})
    return line.replace(b'"@@"', text)


_TIMESTAMPS = ["1767225600", "2026-01-05T10:00Z", "2026-01-05T10:00:00+0530",
               "2026-01-05T10:00:00,5Z", "2026-01-05T10:00:00", "2026-01-05",
               "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]

# (line, reason, a text the detail must hold)
BAD_LINES: list[tuple[bytes, str, str]] = [
    *[(_bad(_DEAL, n, closed_at=stamp), "schema", "closed_at")
      for n, stamp in enumerate(_TIMESTAMPS)],
    *[(_bad(_CHURN, 20 + n, churned_at=stamp), "schema", "churned_at")
      for n, stamp in enumerate(_TIMESTAMPS)],
    (_raw_field(_DEAL, 40, "schema_version", b"true"), "schema", "schema_version"),
    (_raw_field(_CHURN, 41, "schema_version", b"1.0"), "schema", "schema_version"),
    (_raw_field(_DEAL, 42, "note", b"NaN"), "bad_json", "NaN"),
    (_raw_field(_CHURN, 43, "extra", b'{"deep": [Infinity]}'), "bad_json", "Infinity"),
    (_raw_field(_DEAL, 44, "note", b"-Infinity"), "bad_json", "-Infinity"),
    (b"\xff" * (900 * 1024), "bad_json", "original truncated"),
    (b"\x00" * (200 * 1024), "bad_json", "original truncated"),
    (b'{"pad": "' + b"\\" * (2 << 20) + b'"}', "too_large", "over the limit"),
]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, list[bytes], subprocess.CompletedProcess[bytes]]:
    """The valid deal, every bad line, then the valid churn, replayed with every output."""
    folder = tmp_path_factory.mktemp("bad-input")
    lines = [json.dumps(_DEAL).encode(), *(line for line, _, _ in BAD_LINES),
             json.dumps(_CHURN).encode(),
             # A string that holds the words is not a NaN: this one is valid.
             json.dumps({**_DEAL, "event_id": "evt-ok-2", "deal_id": "deal-ok-2",
                         "rep_id": "NaN-Infinity", "closed_at": "2026-01-06t10:00:00.5z",
                         "note": "NaN"}).encode()]
    assert all(b"\n" not in line for line in lines)
    events = folder / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    done = auditor("replay", str(events), "--alerts-out", str(folder / "alerts.jsonl"),
                   "--deadletter-out", str(folder / "dead.jsonl"),
                   "--metrics-out", str(folder / "metrics.prom"))
    return folder, lines, done


def test_replay_exits_0_without_a_traceback(replayed):
    _, _, done = replayed
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    summary = done.stdout.decode()
    assert f"{len(BAD_LINES) + 3:,} read" in summary
    assert f"3 processed, 0 late, 0 duplicate, {len(BAD_LINES)} invalid" in summary


def test_each_bad_line_is_one_bounded_dead_letter_with_its_reason(replayed):
    folder, _, _ = replayed
    raw_letters = (folder / "dead.jsonl").read_bytes().split(b"\n")[:-1]
    letters = [json.loads(line) for line in raw_letters]
    assert [d["reason"] for d in letters] == [reason for _, reason, _ in BAD_LINES]
    for n, (raw, letter, (line, _, text)) in enumerate(
            zip(raw_letters, letters, BAD_LINES, strict=True), 2):
        assert len(raw) <= DEADLETTER_MAX_BYTES
        assert letter["source"].endswith(f"events.jsonl:{n}")
        assert text in letter["detail"], letter["detail"]
        full = line.decode("utf-8", errors="replace")
        if len(line) > 100_000:
            assert letter["truncated"] is True
            assert letter["original_bytes"] == len(line)
            assert full.startswith(letter["original"])
            assert letter["original"]
        else:
            assert set(letter) == {"reason", "detail", "source", "original"}
            assert letter["original"] == full


def test_valid_lines_are_still_audited(replayed):
    folder, _, _ = replayed
    alerts = [json.loads(line) for line in (folder / "alerts.jsonl").read_text().splitlines()]
    early = [a for a in alerts if a["rule"] == "early-churn-unrecovered"]
    # The second deal arrives after the churn; the join is symmetric, so it fires too.
    assert sorted((a["deal_id"], a["account_id"]) for a in early) == [
        ("deal-ok", "acct-ok"), ("deal-ok-2", "acct-ok")]
    assert {a["evidence"]["churned_at"] for a in early} == {"2026-01-20T04:30:00Z"}
    assert {a["evidence"]["closed_at"] for a in early} == {"2026-01-05T10:00:00Z",
                                                           "2026-01-06T10:00:00.500000Z"}
    assert not any(a.get("account_id", "").startswith("acct-bad") for a in alerts)
    assert {a["deal_id"] for a in alerts if a["rule"] == "tcv-paid-upfront"} <= {"deal-ok",
                                                                               "deal-ok-2"}


def test_dead_letters_are_counted_by_reason_in_the_metrics(replayed):
    folder, _, _ = replayed
    metrics = (folder / "metrics.prom").read_text()
    wanted = {"schema": 18, "bad_json": 5, "too_large": 1}
    for reason, count in wanted.items():
        assert f'auditor_deadletters_total{{reason="{reason}"}} {count}.0' in metrics, reason
