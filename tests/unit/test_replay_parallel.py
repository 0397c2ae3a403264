"""`ParallelReplay` (`auditor replay --jobs N`) gives what `Replay` gives, in the same order: alerts
and dead letters byte for byte, the summary, the metrics but for timings, and every counter --
on a simulated stream, and on one made of what is hard for it: duplicates newer than the
watermark, invalid lines that look like events from the future, late and very late events, a
jump in time, lines only the decoder can route, and aggregate periods that leave the horizon
(their findings claiming money in the deals' ledgers) mid-stream, each in tiny blocks and in
one block, over 2 and 3 processes."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from auditor.engine.aggregate_stage import AggregateStage
from auditor.engine.engine import AuditEngine
from auditor.engine.facts import CHURNED, DEAL, AggregateFact
from auditor.engine.join_stage import JoinStage
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.metrics.collector import build_registry
from auditor.metrics.counters import RunCounters
from auditor.replay.parallel import (
    ParallelReplay,
    ShardFailed,
    account_key,
    default_jobs,
    make_replay,
    owner_of_account,
    resolve_jobs,
)
from auditor.replay.runner import Replay
from auditor.replay.summary import FindingsDigest, summary_data
from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.rules.pack import RulePack
from auditor.simulate.generator import Simulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

# Aggregate rules by month and by year whose findings claim money, beside the default pack's
# quarters, and a monthly one grouped by an optional field.
EXTRA_RULES = """
rules:
  - id: team-early-churn-month
    kind: aggregate
    description: Acquisition deals of a team's month fully churned within 60 days.
    measure: early_churn_share
    group_by: team
    period: month
    deal: {deal_type: {in_list: acquisition_deal_types}}
    churn: {churn_type: full}
    churn_within_days: 60
    min_deals: 2
    threshold: {at_least: 0.02}
    severity: warning
    at_risk: churned_paid_upfront
    money_class: {otherwise: unrecovered, clawback_covers: recoverable}
  - id: plan-early-churn-year
    kind: aggregate
    description: Acquisition deals of a plan's year fully churned within 120 days.
    measure: early_churn_share
    group_by: plan_id
    period: year
    deal: {deal_type: {in_list: acquisition_deal_types}}
    churn: {churn_type: full}
    churn_within_days: 120
    min_deals: 2
    threshold: {at_least: 0.01}
    severity: critical
    at_risk: churned_paid_upfront
    money_class: {otherwise: unrecovered, clawback_covers: recoverable}
  - id: region-discounts-month
    kind: aggregate
    description: A region's deals of the month were discounted by more than 20% on average.
    measure:
      describe: average discount
      numerator: {sum: discount_pct}
      denominator: {count: deals}
    group_by: region
    period: month
    min_deals: 2
    threshold: {above: 0.2}
    severity: warning
"""


@pytest.fixture(scope="module")
def default_pack() -> RulePack:
    return load_rule_pack(default_rules_dir())


@pytest.fixture(scope="module")
def wide_pack(tmp_path_factory: pytest.TempPathFactory) -> RulePack:
    """The default pack and EXTRA_RULES: periods of a month, a quarter and a year."""
    directory = tmp_path_factory.mktemp("rules") / "rules"
    shutil.copytree(default_rules_dir(), directory, ignore=shutil.ignore_patterns("tests"))
    (directory / "extra.yaml").write_text(EXTRA_RULES, encoding="utf-8")
    return load_rule_pack(directory)


# ---------------------------------------------------------------------------- the streams


def _time_of(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event.get("closed_at") or event.get("churned_at")))


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def _deal(n: int, account: str, when: datetime, **fields: Any) -> dict[str, Any]:
    return {"event_type": "deal_closed", "event_id": f"edge-evt-{n}", "schema_version": 1,
            "deal_id": f"edge-deal-{n}", "account_id": account, "rep_id": "rep-edge-1",
            "team": "edge-team", "plan_id": "hunter-2026", "deal_type": "new_logo",
            "closed_at": _stamp(when), "term_months": 12, "acv": 10000.0, "tcv": 10000.0,
            "discount_pct": 0.3, "currency": "USD", "region": "emea",
            "commission": {"amount": 1000.0, "paid_upfront": 800.0, "basis": "acv",
                           "rate": 0.1, "clawback_days": 0}, **fields}


def _churn(n: int, account: str, when: datetime) -> dict[str, Any]:
    return {"event_type": "account_churned", "event_id": f"edge-churn-{n}",
            "schema_version": 1, "account_id": account, "churned_at": _stamp(when),
            "churn_type": "full", "arr_lost": 10000.0, "currency": "USD"}


def edge_stream(accounts: int = 700, seed: int = 11) -> list[bytes]:
    """A simulated stream with what is hard for a parallel replay put in along the way."""
    lines = [line.encode() for line in Simulator(accounts=accounts, months=24,
                                                  seed=seed).lines()]
    events = [json.loads(line) for line in lines]
    out: list[bytes] = []
    newest = datetime.min.replace(tzinfo=_time_of(events[0]).tzinfo)
    n = 0
    for index, (line, event) in enumerate(zip(lines, events, strict=True)):
        out.append(line)
        newest = max(newest, _time_of(event))
        step = index % 97
        if index < 20 or step not in (0, 13, 29, 41, 58, 77):
            continue
        n += 1
        ahead = newest + timedelta(days=3)
        earlier = events[max(0, index - 40)]
        if step == 0:
            # A duplicate newer than the watermark: same event id, a later time; and one
            # newer still in the very next line (the same block).
            copy = {**earlier, ("closed_at" if "closed_at" in earlier else "churned_at"):
                    _stamp(ahead)}
            out += [_dumps(copy), _dumps({**copy, "event_id": earlier["event_id"]})]
            if earlier["event_type"] == "deal_closed":  # same deal id, a new event id
                out.append(_dumps({**copy, "event_id": f"edge-redeal-{n}",
                                   "closed_at": _stamp(ahead + timedelta(days=1))}))
        elif step == 13:
            # Invalid lines that read like events from the future; and some invalid JSON.
            bad = _deal(n, f"acct-{index:06d}", ahead + timedelta(days=400))
            out += [_dumps({**bad, "acv": -1.0}),
                    _dumps({**_churn(n, "acct-000001", ahead + timedelta(days=300)),
                            "currency": "XTS"}),
                    b'{"event_type":"deal_closed","closed_at":"2031-01-01T00:00:00Z"',
                    b"", b"   ", b"[1, 2]", b"\xff\xfe not UTF-8",
                    b'{"account_id": "acct-000002", "closed_at": NaN}']
        elif step == 29:
            # Late (older than the watermark - 30 days), and an exact copy of a line long
            # gone from state (processed again, late).
            late = _deal(n, earlier["account_id"], newest - timedelta(days=45),
                         deal_type="expansion")
            out += [_dumps(late), lines[max(0, index - 900)]]
        elif step == 41:
            # Very late: acquisition deals of one rep in a quarter long past the horizon,
            # most of them churned, then one more that moves the watermark: the periods
            # they open are evaluated (and claim their money) at once.
            old = newest - timedelta(days=500)
            for k in range(5):
                account = f"acct-late-{n}-{k}"
                out.append(_dumps(_deal(n * 10 + k, account, old + timedelta(days=k),
                                        rep_id=f"rep-late-{n}")))
                if k < 4:
                    out.append(_dumps(_churn(n * 10 + k, account,
                                             old + timedelta(days=20 + k))))
        elif step == 58:
            # Lines a scan cannot route: escapes, spaces, a repeated key, a nested key.
            account = earlier["account_id"]
            escaped = account.replace("-", "\\u002d")
            churn = _churn(n, account, newest - timedelta(hours=1))
            text = _dumps(churn).decode().replace(f'"{account}"', f'"{escaped}"')
            out += [text.encode(),
                    _dumps(_churn(n + 50_000, account, newest)).replace(
                        b'"account_id":', b'"account_id" :  '),
                    _dumps(_deal(n, "acct-first", newest)).replace(
                        b'"schema_version"', b'"account_id":"acct-second","schema_version"'),
                    b'{"event_type":"account_churned","commission":{"account_id":"x"}}']
        else:  # step == 77: line ends
            out.append(lines[index - 1] + b"\r")
    # A jump in time: everything still held is evaluated, and what follows is late.
    last = _time_of(events[-1]) + timedelta(days=800)
    out.append(_dumps(_churn(999_999, events[-1]["account_id"], last)))
    out += lines[-30:]
    return out


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


# ---------------------------------------------------------------------------- running


@dataclass
class Outcome:
    alerts: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    summary: str = ""
    summary_json: str = ""
    metrics: list[str] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)


# Metrics of time, not of the input: by the wall clock, or how long processing took.
_TIMING = ("auditor_event_processing_seconds", "auditor_event_lag_seconds",
           "auditor_last_alert_timestamp_seconds", "auditor_rules_last_reload_timestamp_seconds")


def replay(pack: RulePack, paths: list[Path], jobs: int, block_bytes: int = 4096) -> Outcome:
    outcome = Outcome()
    digest = FindingsDigest()
    counters = RunCounters()

    def on_alert(alert: Any) -> None:
        digest.add(alert)
        outcome.alerts.append(alert.to_json())

    runner: Replay | ParallelReplay
    if jobs == 1:
        runner = Replay(pack, counters, on_alert, lambda d: outcome.dead.append(d.to_json()))
    else:
        runner = ParallelReplay(pack, counters, on_alert,
                                lambda d: outcome.dead.append(d.to_json()), jobs=jobs,
                                block_bytes=block_bytes)
    runner.run_files([str(p) for p in paths])
    retention = runner.engine.aggregate.retention_values
    outcome.summary = digest.render(counters, retention)
    outcome.summary_json = json.dumps(summary_data(counters, digest, retention))
    text = generate_latest(build_registry(counters, runner.engine.live_values)).decode()
    outcome.metrics = [line for line in text.splitlines() if not line.startswith(_TIMING)]
    outcome.counters = {
        name: getattr(counters, name) for name in (
            "events", "deadletters", "alerts", "trial_alerts", "trial_at_risk",
            "excepted_findings", "at_risk", "paid", "flagged", "money_by_quarter",
            "retained", "watermark", "teams")}
    outcome.counters["timed"] = (sum(counters.processing.counts), sum(counters.lag.counts))
    return outcome


def assert_same(one: Outcome, many: Outcome) -> None:
    assert len(many.alerts) == len(one.alerts)
    assert many.alerts == one.alerts  # byte for byte, in the same order
    assert many.dead == one.dead
    assert many.summary == one.summary
    assert many.summary_json == one.summary_json
    assert many.metrics == one.metrics
    for name, value in one.counters.items():
        assert many.counters[name] == value, name
        if isinstance(value, dict):  # and in the same order (it shows in exports)
            assert list(many.counters[name]) == list(value), name


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The edge stream, in two files (the watermark and state carry over)."""
    lines = edge_stream()
    folder = tmp_path_factory.mktemp("edge")
    half = len(lines) // 2
    return [_write(folder / "a.jsonl", lines[:half]), _write(folder / "b.jsonl", lines[half:])]


@pytest.fixture(scope="module")
def edge_one(wide_pack: RulePack, edge_files: list[Path]) -> Outcome:
    return replay(wide_pack, edge_files, 1)


def test_the_edge_stream_has_what_it_is_for(edge_one: Outcome) -> None:
    by_outcome: dict[str, int] = {}
    for (_, outcome), n in edge_one.counters["events"].items():
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
    assert by_outcome["duplicate"] > 20 and by_outcome["late"] > 20
    assert by_outcome["invalid"] > 50
    rules = {json.loads(a)["rule"] for a in edge_one.alerts}
    assert {"team-early-churn-month", "plan-early-churn-year", "rep-early-churn-rate",
            "region-discounts-month"} <= rules
    claimed = [a for a in map(json.loads, edge_one.alerts) if a["evidence"].get("money_by_deal")]
    assert claimed
    reps = {a["group"] for a in map(json.loads, edge_one.alerts)
            if a["rule"] == "rep-early-churn-rate"}
    assert any(rep.startswith("rep-late-") for rep in reps)  # very late periods evaluated


@pytest.mark.parametrize(("jobs", "block_bytes"), [(2, 2048), (3, 700), (2, 1 << 30)])
def test_the_edge_stream_comes_out_as_from_one_process(
        wide_pack: RulePack, edge_files: list[Path], edge_one: Outcome, jobs: int,
        block_bytes: int) -> None:
    assert_same(edge_one, replay(wide_pack, edge_files, jobs, block_bytes))


def test_a_simulated_stream_comes_out_as_from_one_process(
        default_pack: RulePack, tmp_path: Path) -> None:
    lines = [line.encode() for line in Simulator(accounts=2500, months=24, seed=5).lines()]
    path = _write(tmp_path / "events.jsonl", lines)
    assert_same(replay(default_pack, [path], 1), replay(default_pack, [path], 2, 64 * 1024))


def test_nothing_in_comes_out_as_from_one_process(default_pack: RulePack,
                                                  tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.jsonl", [])
    blank = _write(tmp_path / "blank.jsonl", [b"", b"  ", b"\r"])
    assert_same(replay(default_pack, [empty, blank], 1), replay(default_pack, [empty, blank], 2))


# ---------------------------------------------------------------------------- failures


def test_an_unreadable_file_ends_the_input_as_in_one_process(
        default_pack: RulePack, edge_files: list[Path], tmp_path: Path) -> None:
    """What was read before is audited and written out, not flushed; then the error."""
    outputs: list[list[str]] = [[], []]
    for jobs, alerts in zip((1, 2), outputs, strict=True):
        runner = make_replay(default_pack, jobs, on_alert=lambda a, out=alerts: out.append(
            a.to_json()))
        with pytest.raises(FileNotFoundError):
            runner.run_files([str(edge_files[0]), str(tmp_path / "missing.jsonl")])
    assert outputs[0] and outputs[1] == outputs[0]


def test_an_event_the_engine_fails_on_is_dead_lettered_as_in_one_process(
        default_pack: RulePack, edge_files: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, apply = JoinStage.process, AggregateStage.apply

    def join_fails_sometimes(self: JoinStage, event: Any) -> Any:
        joined = process(self, event)  # as a rule would fail: the watermark has moved
        if event.event_id.endswith("7"):
            raise RuntimeError("join boom")
        return joined

    def aggregate_fails_on_renewals(self: AggregateStage, fact: Any) -> Any:
        if fact.deal_type == "renewal" and fact.rule == "renewal-rate-gap":
            raise RuntimeError("aggregate boom")
        return apply(self, fact)

    monkeypatch.setattr(JoinStage, "process", join_fails_sometimes)  # forked shards too
    monkeypatch.setattr(AggregateStage, "apply", aggregate_fails_on_renewals)
    one = replay(default_pack, edge_files[:1], 1)
    assert sum("join boom" in d for d in one.dead) > 10
    assert sum("aggregate boom" in d for d in one.dead) > 10
    many = replay(default_pack, edge_files[:1], 2)
    assert many.dead == one.dead
    assert many.counters["events"] == one.counters["events"]
    assert many.counters["deadletters"] == one.counters["deadletters"]


def test_a_shard_that_dies_fails_the_run(default_pack: RulePack, edge_files: list[Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    process = JoinStage.process

    def dies(self: JoinStage, event: Any) -> Any:
        if event.event_id.endswith("00"):
            os._exit(3)
        return process(self, event)

    monkeypatch.setattr(JoinStage, "process", dies)
    with pytest.raises(ShardFailed, match="exited"):
        replay(default_pack, edge_files[:1], 2)


class Fatal(BaseException):
    """Not an Exception: nothing dead-letters it."""


def test_a_shard_that_raises_fails_the_run_with_its_traceback(
        default_pack: RulePack, edge_files: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def breaks(self: Any, *args: Any) -> Any:
        raise Fatal("out of it")

    monkeypatch.setattr(JoinStage, "report", breaks)
    with pytest.raises(ShardFailed, match="Fatal: out of it"):
        replay(default_pack, edge_files[:1], 2)


def test_a_fact_is_made_again_from_its_arguments(default_pack: RulePack) -> None:
    """How facts cross to the shard holding their period (AggregateFact.to_row)."""
    engine, decoder = AuditEngine(default_pack), EventDecoder(default_pack.currency)
    facts = []
    for line in Simulator(accounts=600, months=24, seed=3).lines():
        event = decoder.decode(line.encode(), "test")
        assert not isinstance(event, DeadLetter)
        facts += engine.join.audit(event).facts
    assert {fact.kind for fact in facts} == {DEAL, CHURNED}
    for fact in facts:
        again = AggregateFact(*fact.to_row())
        assert again.to_dict() == fact.to_dict()
        assert (again.key, again.member, again.entry) == (fact.key, fact.member, fact.entry)


# ---------------------------------------------------------------------------- routing


@pytest.mark.parametrize(("line", "key"), [
    (b'{"account_id":"acct-1","x":1}', b"acct-1"),
    (b'{"event_type":"deal_closed", "account_id" :\t "a b", "n": 2}', b"a b"),
    (b'{"x": "y"}', b""),  # no account: not an event
    (b"not json at all", b""),
    (b'{"account_id":"acct\\u002d1"}', None),  # an escape: only the decoder can tell
    (b'{"x":"\\"","account_id":"acct-1"}', None),
    (b'{"account_id":"a","account_id":"b"}', None),  # which one counts is the decoder's
    (b'{"account_id": 12}', None),
    (b'{"account_id":"unclosed', None),
    (b'{"account_id"', None),
])
def test_a_line_is_routed_by_its_account_when_a_scan_can_tell_it(line: bytes,
                                                                 key: bytes | None) -> None:
    assert account_key(line) == key


def test_an_account_has_one_shard_however_its_id_is_written() -> None:
    for jobs in (2, 3, 7):
        owners = {owner_of_account(f"acct-{n}", jobs) for n in range(100)}
        assert owners == set(range(jobs))
    assert owner_of_account("acct-\u00e9", 5) == owner_of_account("acct-\u00e9", 5)


def test_jobs_default_to_the_cores_for_large_files_on_more_than_two_cores(tmp_path: Path) -> None:
    small = _write(tmp_path / "small.jsonl", [b"{}"])
    assert default_jobs([str(small)]) == 1
    assert default_jobs(["-"]) == 1
    large = tmp_path / "large.jsonl"
    with open(large, "wb") as f:
        f.truncate(32 * 1024 * 1024)  # sparse
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_jobs([str(large)]) == cores
    assert default_jobs([str(large), "-"]) == 1
    assert resolve_jobs(3, ["-"]) == 3  # as asked
    assert resolve_jobs(None, [str(small)]) == 1
    assert isinstance(make_replay(load_rule_pack(default_rules_dir()), 1), Replay)
