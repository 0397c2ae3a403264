"""A stopped worker resumes from its committed offsets with its tables recovered; a killed one's
partitions move to the survivor. Either way the alerts are replay's, nothing lost or invented.

The workers take state snapshots every few KiB, so recovery reads snapshots, the records after
them and the tombstones of what they replaced, as a long-running worker's would."""

import json

from kafka_helpers import per_deal, replay_alerts, simulate, wait_for_alerts, wait_until


def _split(events, first, second, at_fraction):
    """The first part of the file, and the rest: deals in the first part with churns in the
    second still have to meet, through the recovered table state."""
    lines = events.read_text().splitlines(keepends=True)
    cut = int(len(lines) * at_fraction)
    first.write_text("".join(lines[:cut]))
    second.write_text("".join(lines[cut:]))
    return lines[:cut], lines[cut:]


# A snapshot once 4 KiB were logged since the last (and twice its size): many in these runs.
SNAPSHOTS_OFTEN = {"AUDITOR_STATE_SNAPSHOT_MIN_BYTES": "4096"}


def _state_log(stack, table):
    """(snapshot parts, deltas, tombstones) on a table's changelog topic."""
    counts = [0, 0, 0]
    for _, value in stack.read(f"{stack.group}-{table}-changelog"):
        if value is None:
            counts[2] += 1
        else:
            counts[0 if json.loads(value)["snapshot"] else 1] += 1
    return tuple(counts)


def _joins_across(head, tail, expected):
    """Alerts whose deal is in the head and whose churn is in the tail."""
    head_ids = {json.loads(line)["event_id"] for line in head}
    tail_ids = {json.loads(line)["event_id"] for line in tail}
    return [a for a in expected.values()
            if a["evidence"].get("deal_event_id") in head_ids
            and a["evidence"].get("churn_event_id") in tail_ids]


def test_restart_resumes_with_recovered_state(stack, tmp_path):
    events = simulate(tmp_path / "events.jsonl", accounts=1500, seed=5)
    expected = per_deal(replay_alerts(events, tmp_path / "replay.jsonl"))
    head, tail = _split(events, tmp_path / "head.jsonl", tmp_path / "tail.jsonl", 0.5)
    across = _joins_across(head, tail, expected)
    assert len(across) > 10, "the split must leave joins that need the recovered state"

    worker = stack.worker(**SNAPSHOTS_OFTEN).start()
    worker.wait_ready()
    # The first half in three goes, each processed before the next: batches enough for each
    # partition to log a delta, a snapshot (with tombstones), and deltas after it.
    sent = 0
    for n, third in enumerate((head[:len(head) // 3], head[len(head) // 3:2 * len(head) // 3],
                               head[2 * len(head) // 3:])):
        (part := tmp_path / f"head-{n}.jsonl").write_text("".join(third))
        sent += stack.produce(part)
        wait_until(lambda total=sent: worker.events_total() == total,
                   what="the first half processed")
    assert worker.stop() == 0, worker.tail()
    for table in ("accounts", "aggregates"):
        snapshots, deltas, tombstones = _state_log(stack, table)
        assert snapshots and deltas and tombstones, (table, snapshots, deltas, tombstones)

    sent += stack.produce(tmp_path / "tail.jsonl")
    worker.start()  # same group, same data dir: committed offsets and table changelogs
    worker.wait_ready()
    got = wait_until(lambda: (a := per_deal(stack.alerts())).keys() >= expected.keys() and a,
                     what="every replay alert on the alerts topic")
    assert got.keys() == expected.keys()  # none lost, none spurious
    assert all(got[a["alert_id"]] == a for a in across)
    # It resumed from its committed offsets: the second half, plus at most what it processed
    # after its last commit before the stop (at-least-once), not the whole first half again.
    total = wait_until(lambda: (n := worker.events_total()) >= len(tail) and n,
                       what="the second half processed")
    assert total - len(tail) < len(head) * 0.1, (total, len(tail))


def test_survivor_takes_over_a_killed_workers_partitions(stack, tmp_path):
    events = simulate(tmp_path / "events.jsonl", accounts=4000, seed=9)
    expected = per_deal(replay_alerts(events, tmp_path / "replay.jsonl"))

    first = stack.worker("w1", **SNAPSHOTS_OFTEN).start()
    second = stack.worker("w2", **SNAPSHOTS_OFTEN).start()
    first.wait_ready()
    second.wait_ready()
    # Both in the group: the 8 input partitions (4 per topic) are split between them.
    def split():
        a, b = first.assigned_inputs(), second.assigned_inputs()
        return (a, b) if a and b and not a & b and len(a | b) == 8 else None

    wait_until(split, what="the input partitions split between two workers")

    sent = stack.produce(events)
    wait_until(lambda: first.events_total() > sent * 0.2, what="the first worker under way")
    first.kill()  # SIGKILL mid-stream: no commit, no goodbye to the group
    wait_until(lambda: len(second.assigned_inputs()) == 8, what="the survivor owning everything")
    got = wait_for_alerts(stack, expected, [second])
    # Redelivered alerts are allowed, with the same id and content (per_deal checks that).
    assert got.keys() == expected.keys()
    # The survivor recovered the killed worker's partitions from snapshots and what followed.
    snapshots, deltas, tombstones = _state_log(stack, "accounts")
    assert snapshots and deltas and tombstones, (snapshots, deltas, tombstones)
