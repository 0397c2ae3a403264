"""Poison input never loses valid events: near-1 MiB messages that are not events, beside valid
events on every partition of both input topics, become dead letters small enough for the
dead-letter topic (saying they were cut), the worker never stops on its own, and across a stop
and a restart every valid event's alerts arrive, exactly replay's."""

import json
import re

from kafka_helpers import (
    MIB,
    caught_up,
    churn_event,
    confluent_producer,
    deal_event,
    exited,
    murmur2_partition,
    offsets_report,
    per_deal,
    read_records,
    replay_alerts,
    wait_until,
    write_jsonl,
)

from auditor.events.deadletter import REASONS

PARTITIONS = 2
KIB = 1024
INVALID_UTF8 = b"\xff\xfe" * (450 * KIB)  # 900 KiB; each byte becomes U+FFFD, 3 bytes in UTF-8
NULS = b"\x00" * (200 * KIB)  # 200 KiB; each byte becomes "\u0000", 6 bytes in JSON


def _accounts(prefix, per_partition):
    """Account ids, `per_partition` on each partition (murmur2, as the worker expects)."""
    by_partition = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(ids) < per_partition for ids in by_partition.values()):
        account = f"{prefix}-{n:03d}"
        ids = by_partition[murmur2_partition(account.encode(), PARTITIONS)]
        if len(ids) < per_partition:
            ids.append(account)
        n += 1
    return by_partition


def _deal(account, day):
    """A new-logo deal with no clawback: a churn within 90 days is a critical finding."""
    return deal_event(f"{account}-d", account=account, deal_id=f"deal-{account}",
                      closed_at=f"2026-01-{day:02d}T00:00:00Z")


def _churn(account, day):
    return churn_event(account, account=account, churned_at=f"2026-02-{day:02d}T00:00:00Z")


def _last_error(worker):
    errors = [line for line in worker.tail(400).splitlines() if "[ERROR]" in line]
    return errors[0][:300] if errors else "no error logged"


def _flat(by_partition):
    return [a for p in sorted(by_partition) for a in by_partition[p]]


def test_poison_messages_are_dead_lettered_small_and_lose_no_valid_event(stack, tmp_path):
    before = _accounts("before", 2)  # deals before the poison, churned after it
    after = _accounts("after", 2)  # deals after the poison, churned after the restart
    late = _accounts("late", 1)  # deals and churns after the restart
    phases = {
        "before the poison": [_deal(a, 5) for a in _flat(before)],
        "after the poison": [_deal(a, 6) for a in _flat(after)]
        + [_churn(a, 4) for a in _flat(before)],
        "after the restart": [_churn(a, 5) for a in _flat(after)]
        + [_deal(a, 7) for a in _flat(late)] + [_churn(a, 6) for a in _flat(late)],
    }
    valid = [event for events in phases.values() for event in events]
    expected = per_deal(replay_alerts(write_jsonl(tmp_path / "valid.jsonl", valid),
                                      tmp_path / "replay.jsonl"))
    assert len(expected) == len(_flat(before)) + len(_flat(after)) + len(_flat(late))

    inputs = ["deals.closed", "accounts.churned"]
    env = {"AUDITOR_TOPIC_PARTITIONS": str(PARTITIONS)}
    worker = stack.worker("w1", **env).start()
    worker.wait_ready()  # it created the topics, with PARTITIONS partitions
    producer = confluent_producer(stack, partitioner="murmur2_random",
                                  **{"message.max.bytes": 2 * MIB})
    problems: list[str] = []

    def wait_processed(phase):
        """Until the group committed every input record, or the worker exited."""
        try:
            wait_until(lambda: exited(worker) is not None or caught_up(stack, inputs),
                       timeout=120, what=f"the input {phase} processed and committed")
        except AssertionError as timeout:
            raise AssertionError("\n".join([*problems, str(timeout), offsets_report(
                stack, inputs), worker.tail()])) from None

    def settle(phase):
        wait_processed(phase)
        code = exited(worker)
        if code is not None:
            problems.append(f"the worker exited on its own (code {code}) {phase}: "
                            f"{_last_error(worker)}; {offsets_report(stack, inputs)}")
            worker.start()  # as an orchestrator would: it resumes from the committed offsets
            worker.wait_ready()
            wait_processed(f"{phase}, restarted")
            if exited(worker) is not None:
                problems.append(f"it exited again after that restart (code {exited(worker)})")

    for event in phases["before the poison"]:
        sent = producer.send_event(stack, event)
        assert sent.partition == murmur2_partition(event["account_id"].encode(), PARTITIONS)
    deals = stack.topics["deals.closed"]
    poison = {  # keyed by account ids, one on each partition, between valid deals
        producer.send(deals, before[0][0].encode(), INVALID_UTF8).source: ("\ufffd", 0),
        producer.send(deals, before[1][0].encode(), NULS).source: ("\x00", 1),
    }
    assert {source.split("/")[1] for source in poison} == {"0", "1"}
    for event in phases["after the poison"]:
        producer.send_event(stack, event)
    settle("after the poison")

    if exited(worker) is None:
        code = worker.stop()
        if code != 0:
            problems.append(f"the worker did not stop cleanly on SIGTERM (code {code})")
    worker.start()
    worker.wait_ready()
    for event in phases["after the restart"]:
        producer.send_event(stack, event)
    settle("after the restart")
    if exited(worker) is not None:
        problems.append(f"the worker exited on its own (code {exited(worker)}) at the end")

    # Every valid event's alerts: replay's, field for field, none missing, none invented.
    got = per_deal(stack.alerts())
    missing = sorted(expected.keys() - got.keys())
    if missing:
        lost = sorted({expected[a]["account_id"] for a in missing})
        problems.append(f"{len(missing)} of {len(expected)} alerts of valid events never "
                        f"arrived (accounts {', '.join(lost)})")
    if got.keys() - expected.keys():
        problems.append(f"alerts replay does not give: {sorted(got.keys() - expected.keys())}")
    changed = [a for a in expected.keys() & got.keys() if got[a] != expected[a]]
    if changed:
        problems.append(f"alerts that differ from replay's: {changed}")

    # The poison as dead letters: small enough for the topic, saying they were cut.
    letters = {}
    for record in read_records(stack, "audit.deadletter"):
        letter = json.loads(record.value)
        letters.setdefault(letter["source"], (letter, len(record.value)))
    if set(letters) != set(poison):
        problems.append(f"dead letters {sorted(letters)}, expected those of the poison "
                        f"messages {sorted(poison)}")
    for source, (letter, size) in sorted(letters.items()):
        if source not in poison:
            continue
        head, _ = poison[source]
        if size >= MIB:
            problems.append(f"the dead letter of {source} is {size} bytes, not under 1 MiB")
        if letter["reason"] not in REASONS:
            problems.append(f"the dead letter of {source} has an unknown reason "
                            f"{letter['reason']!r}")
        if not re.search(r"truncat|\bcut\b", letter["detail"], re.IGNORECASE):
            problems.append(f"the dead letter of {source} does not say it was cut: "
                            f"{letter['detail']!r}")
        if not letter["original"].startswith(head * 16):
            problems.append(f"the dead letter of {source} does not keep the head of the "
                            f"message: {letter['original'][:40]!r}")
    assert not problems, "\n".join(problems)
