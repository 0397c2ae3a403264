"""`auditor replay --jobs N` as a user runs it: every output the same as with `--jobs 1` -- the
alerts and dead-letter files byte for byte, the printed summary, `--summary-out`, the metrics
but for timings -- on `make demo`'s stream and on a simulated one with bad lines, from a file
or stdin; and `auditor backtest --jobs N`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import AUDITOR, auditor, stop, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

DEMO = ("--accounts", "5000", "--months", "24", "--seed", "7")  # make demo's stream
SMALL = ("--accounts", "1500", "--months", "24", "--seed", "22")
_BAD_CHURN = {"event_type": "account_churned", "event_id": "bad-churn", "schema_version": 1,
              "account_id": "acct-000003", "churned_at": "2031-06-01T00:00:00Z",
              "churn_type": "full", "arr_lost": -100.0, "currency": "USD"}
BAD_LINES = [
    b"{not json", b"\xff\xfe not UTF-8", b"[1, 2]", b"",
    b'{"event_type": "deal_reopened", "event_id": "bad-type", "schema_version": 1}',
    json.dumps(_BAD_CHURN).encode(),  # invalid, and from the future: moves nothing
    json.dumps({**_BAD_CHURN, "arr_lost": 1.0, "currency": "XTS"}).encode(),
    b'{"event_type": "deal_closed", "pad": "' + b"x" * (1 << 20) + b'"}',
]
# Of the metrics, those of time rather than of the input.
TIMING = ("auditor_event_processing_seconds", "auditor_event_lag_seconds",
          "auditor_last_alert_timestamp_seconds", "auditor_rules_last_reload_timestamp_seconds")


def _simulate(folder: Path, args: tuple[str, ...], bad: bool) -> Path:
    path = folder / "events.jsonl"
    done = auditor("simulate", *args, "--out", str(path))
    assert done.returncode == 0, done.stderr.decode()
    if bad:
        lines = path.read_bytes().split(b"\n")
        for n, line in enumerate(BAD_LINES):  # along the stream, not only at its end
            lines.insert((n + 1) * len(lines) // (len(BAD_LINES) + 2), line)
        path.write_bytes(b"\n".join(lines))
    return path


def _replay(source: str, out: Path, jobs: int, stdin: bytes | None = None
            ) -> dict[str, bytes | list[str]]:
    out.mkdir(parents=True)
    done = auditor("replay", source, "--jobs", str(jobs), "--alerts-out", str(out / "a.jsonl"),
                   "--deadletter-out", str(out / "d.jsonl"), "--summary-out",
                   str(out / "s.json"), "--metrics-out", str(out / "m.prom"), stdin=stdin)
    assert done.returncode == 0, done.stderr.decode()
    metrics = (out / "m.prom").read_text().splitlines()
    return {"stdout": done.stdout, "alerts": (out / "a.jsonl").read_bytes(),
            "dead": (out / "d.jsonl").read_bytes(), "summary": (out / "s.json").read_bytes(),
            "metrics": [line for line in metrics if not line.startswith(TIMING)]}


@pytest.mark.parametrize(("args", "bad"), [(DEMO, False), (SMALL, True)],
                         ids=["demo", "bad-lines"])
def test_more_jobs_write_what_one_writes(tmp_path: Path, args: tuple[str, ...],
                                         bad: bool) -> None:
    events = _simulate(tmp_path, args, bad)
    one = _replay(str(events), tmp_path / "one", 1)
    assert one["alerts"] and (one["dead"] if bad else not one["dead"])
    for jobs in (2, 3):
        assert _replay(str(events), tmp_path / f"jobs{jobs}", jobs) == one


def test_stdin_with_jobs_writes_what_one_writes(tmp_path: Path) -> None:
    events = _simulate(tmp_path, SMALL, True).read_bytes()
    one = _replay("-", tmp_path / "one", 1, stdin=events)
    assert b"<stdin>:" in one["dead"]  # type: ignore[operator]
    assert _replay("-", tmp_path / "two", 2, stdin=events) == one


def test_backtest_with_jobs_reports_what_one_reports(tmp_path: Path) -> None:
    events = _simulate(tmp_path, SMALL, False)
    candidate = tmp_path / "candidate"
    rules = Path(__file__).resolve().parents[2] / "rules"
    candidate.mkdir()
    for source in rules.glob("*.yaml"):
        text = source.read_text()
        (candidate / source.name).write_text(text.replace("within_days: 180", "within_days: 90"))
    reports = []
    for jobs in ("1", "2"):
        done = auditor("backtest", "--baseline", str(rules), "--candidate", str(candidate),
                       "--jobs", jobs, "--json", str(tmp_path / f"report{jobs}.json"),
                       str(events))
        assert done.returncode == 0, done.stderr.decode()
        reports.append((done.stdout, (tmp_path / f"report{jobs}.json").read_text()))
    assert b"early-churn-unrecovered" in reports[0][0]
    assert reports[1] == reports[0]


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    done = auditor("replay", "--jobs", "0", str(tmp_path / "none.jsonl"))
    assert done.returncode == 2
    assert b"must be at least 1" in done.stderr


def test_serving_and_reloading_rules_runs_in_one_process(tmp_path: Path) -> None:
    """Reloaded rules apply from the next event, which only one process can tell."""
    events = _simulate(tmp_path, SMALL, False)
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([AUDITOR, "replay", str(events), "--jobs", "2", "-q",
                                 "--metrics-port", "0", "--metrics-host", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: b"serving metrics on" in log.read_bytes(), "the replay serving",
                 120, proc, log)
    finally:
        stop(proc)
    assert b"runs in one process (--jobs 1)" in log.read_bytes()
