"""A partition's state logged one record per batch: rebuilt exactly from what reached the
changelog, whatever was cut short."""

from __future__ import annotations

import json
from typing import Any

import pytest

from auditor.worker import state_log
from auditor.worker.state_log import Changelog, PartitionLog


class Box:
    """A state: what a key holds, as its dict."""

    def __init__(self, n: int) -> None:
        self.n = n

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Box:
        return cls(int(data["n"]))


def make(table: dict, problems: list | None = None, max_bytes: int = 256 * 1024,
         partition: int = 0) -> PartitionLog:
    report = (lambda what, why: problems.append(what)) if problems is not None else (
        lambda what, why: pytest.fail(f"{what}: {why}"))
    return PartitionLog(table, Changelog("t"), partition, Box.from_dict, report, max_bytes)


def recover(records, table: dict | None = None) -> dict:
    """As faust recovers a table: records in order, values decoded, tombstones delete."""
    table = {} if table is None else table
    for r in records:
        if r.value is None:
            table.pop(r.key, None)
        else:
            table[r.key] = json.loads(r.value)
    return table


def contents(log: PartitionLog) -> dict[str, int]:
    return {k: log[k].n for k in log}


def run(batches: int, max_bytes: int = 256 * 1024) -> tuple[PartitionLog, list[list]]:
    """`batches` batches over 30 keys, some deleted, a watermark moving; the records of each."""
    log = make({}, max_bytes=max_bytes)
    per_batch = []
    for b in range(batches):
        for k in range(b % 7, 30, 3):
            log[f"k{k}"] = Box(b * 100 + k)
        if b % 4 == 3:
            for k in list(log)[:2]:
                del log[k]
        log.set_mark("w", float(b))
        log.flush()
        per_batch.append(log.changelog.drain())
    return log, per_batch


@pytest.fixture(autouse=True)
def _often(monkeypatch):
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 400)


def test_rebuilt_from_the_records_it_wrote():
    log, per_batch = run(40)
    records = [r for batch in per_batch for r in batch]
    assert any(r.cleanup for r in records)  # snapshots were taken
    rebuilt = make(recover(records))
    assert contents(rebuilt) == contents(log) and rebuilt.marks == {"w": 39.0}
    # The next record continues the sequence, and a later rebuild still agrees.
    rebuilt["k1"] = Box(-1)
    rebuilt.flush()
    again = make(recover(rebuilt.changelog.drain(), recover(records)))
    assert contents(again) == {**contents(log), "k1": -1}


def test_a_snapshot_whose_tombstones_never_went_leaves_nothing_wrong():
    log, per_batch = run(40)
    records = [r for batch in per_batch for r in batch if not r.cleanup]
    assert contents(make(recover(records))) == contents(log)


def test_an_unfinished_snapshot_falls_back_on_the_one_before():
    # Small parts: each snapshot is several records. The last snapshot lost one part (a crash
    # mid-delivery: its tombstones were never sent, they go after it), then batches went on.
    _, per_batch = run(40, max_bytes=120)
    snapshots = [n for n, batch in enumerate(per_batch) if any(r.cleanup for r in batch)]
    assert len(snapshots) >= 2
    last = snapshots[-1]
    cut = [r for r in per_batch[last] if not r.cleanup]
    assert len(cut) > 1
    records = [r for batch in per_batch[:last] for r in batch] + cut[1:]
    rebuilt = make(recover(records), max_bytes=120)
    # What the lost batch changed is missing (as a lost record of it would be); the rest is
    # the state before it: nothing older than the snapshot before came back.
    before, _ = run(last, max_bytes=120)
    assert contents(rebuilt) == contents(before)


def test_parts_stay_under_the_limit():
    _, per_batch = run(10, max_bytes=200)
    values = [r.value for batch in per_batch for r in batch if r.value]
    assert max(len(v) for v in values) <= 200 + 120  # a part's members, and its head
    assert len({json.loads(v)["seq"] for v in values}) == 10


def test_previous_format_records_are_read_and_replaced_by_a_snapshot():
    def state_value(partition: int, state: dict) -> dict:  # as the previous format wrote
        return {"v": 2, "p": partition, "s": state}

    table = {"a": state_value(0, {"n": 1}), "b": state_value(0, {"n": 2}),
             "c": state_value(1, {"n": 3})}  # another partition's
    log = make(table)
    assert contents(log) == {"a": 1, "b": 2}
    log["a"] = Box(5)
    log.flush()
    records = log.changelog.drain()
    assert [(r.key, r.value) for r in records if r.cleanup] == [("a", None), ("b", None)]
    [snapshot] = [json.loads(r.value) for r in records if not r.cleanup]
    assert snapshot["snapshot"] and snapshot["states"] == {"a": {"n": 5}, "b": {"n": 2}}
    assert contents(make(recover(records, dict(table)))) == {"a": 5, "b": 2}


def test_records_that_cannot_be_read_are_reported_and_the_rest_used(monkeypatch):
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 10**9)  # no snapshot
    _, per_batch = run(3)
    table = recover([r for batch in per_batch for r in batch])
    table["~log/0/1/0"] = {"v": 99}
    table["~log/0/5/0"] = "not json"
    table["~log/0/0/0"]["states"]["k0"] = {"n": "x"}  # a state that cannot be read
    problems: list = []
    rebuilt = make(table, problems)
    assert sorted(problems) == ["t log record '~log/0/1/0'", "t log record '~log/0/5/0'"]
    assert "k0" not in contents(rebuilt)  # read lazily: reported then, and dropped
    assert problems[-1] == "t state 'k0'"
    assert rebuilt.dirty == {"k0"}  # logged as gone at the next flush


def test_a_period_changed_in_place_is_logged_as_what_it_gained(monkeypatch):
    from auditor.engine.state import AggregateState, Churned

    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 10**9)  # no snapshot
    log = PartitionLog({}, Changelog("aggregates"), 0, AggregateState.from_dict,
                       lambda what, why: pytest.fail(f"{what}: {why}"),
                       merge=AggregateState.merge_changes)
    period = AggregateState("r", "team-a", "2026-Q1", 1.7e9)
    for n in range(300):
        period.add_deal("new_logo", 10.0 + n, 100.0, (1.0,) * 6)
        if n % 3 == 0:
            period.add_churned(f"a\x1fd{n}", Churned(12.0, "recoverable", "plan", "team-a",
                                                      1.6e9, 10.0 + n, 5.0), (1.0,) * 6)
    log["p"] = period
    log.flush()
    period.add_deal("renewal", 7.0, 70.0, (1.0,) * 6)
    period.add_churned("a\x1fd-new", Churned(2.0, None, "plan", "team-a", 1.6e9, 7.0, 0.0),
                       (1.0,) * 6)
    period.settled = True
    log["p"] = period  # the same object, changed in place
    log.flush()
    whole, patch = log.changelog.drain()
    assert len(patch.value) < len(whole.value) / 10  # what it gained, not its 100 churned
    gained = json.loads(patch.value)["states"]["p"]["+"]
    assert gained["+churned"] == {"a\x1fd-new": [2.0, None, "plan", "team-a", 1.6e9, 7.0, 0.0]}
    assert gained["count"] == 301 and gained["churned_count"] == 101
    rebuilt = PartitionLog(recover([whole, patch]), Changelog("aggregates"), 0,
                           AggregateState.from_dict, pytest.fail,
                           merge=AggregateState.merge_changes)
    assert rebuilt["p"].to_dict() == period.to_dict()
    # Another object under the key is logged whole.
    log["p"] = AggregateState("r", "team-a", "2026-Q1", 1.7e9)
    log.flush()
    [again] = log.changelog.drain()
    assert "+" not in json.loads(again.value)["states"]["p"]


def test_a_record_cut_short_applies_not_at_all(monkeypatch):
    """A crash between the parts of a batch's record: none of that batch's changes, nor its
    marks, are rebuilt (a mark says which facts the states hold: it must not run ahead)."""
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 10**9)  # deltas only
    log = make({}, max_bytes=30)
    for k in range(6):
        log[f"k{k}"] = Box(k)
    log.set_mark("applied", 10.0)
    log.flush()
    complete = log.changelog.drain()
    for k in range(6):
        log[f"k{k}"] = Box(100 + k)
    log.set_mark("applied", 20.0)
    log.flush()
    cut = log.changelog.drain()
    assert len(cut) > 1
    for missing in range(len(cut)):
        rebuilt = make(recover(complete + cut[:missing] + cut[missing + 1:]))
        assert contents(rebuilt) == {f"k{k}": k for k in range(6)}
        assert rebuilt.marks == {"applied": 10.0}
    whole = make(recover(complete + cut))
    assert contents(whole) == {f"k{k}": 100 + k for k in range(6)}
    assert whole.marks == {"applied": 20.0}


def test_a_state_larger_than_a_part_is_logged_in_pieces(monkeypatch):
    """One state (a period with thousands of churned deals, an account with thousands of
    deals) larger than a part: logged as pieces over several parts of the record, each under
    the limit, and rebuilt whole; with a part missing, the record applies not at all."""
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 10**9)  # deltas only

    class Big(Box):
        def to_dict(self) -> dict[str, Any]:
            return {"n": self.n, "pad": "x\"y" * 400}  # quotes: escaped in the JSON

    log = PartitionLog({}, Changelog("t"), 0, Box.from_dict, pytest.fail, 300)
    log["small"] = Box(1)
    log.flush()
    first = log.changelog.drain()
    log["big"] = Big(7)
    log["small"] = Box(2)
    log.flush()
    records = log.changelog.drain()
    assert len(records) > 3 and all(len(r.value) <= 300 + 200 for r in records)
    rebuilt = make(recover(first + records))
    assert rebuilt.states["big"]["pad"] == "x\"y" * 400  # as logged, before it is read
    assert contents(rebuilt) == {"big": 7, "small": 2}
    for missing in range(len(records)):
        problems: list = []
        partial = make(recover(first + records[:missing] + records[missing + 1:]), problems)
        assert contents(partial) == {"small": 1} and problems == []


def test_a_damaged_piece_is_reported_and_its_key_starts_afresh(monkeypatch):
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", 10**9)
    table = {"~log/0/0/0": {"v": 3, "seq": 0, "snapshot": False, "part": 0, "parts": 1,
                            "marks": {}, "states": {"k": {"~piece": [0, 1], "b64": "!!"}}}}
    problems: list = []
    rebuilt = make(table, problems)
    assert problems == ["t state 'k'"] and contents(rebuilt) == {}
