"""An event on a partition other than its key's murmur2 partition would meet the wrong account
state, so the worker dead-letters it (`wrong_partition`, naming the partition expected and the
producer setting that fixes it) and counts it; events on the right partition, whichever
producer sent them, are audited as replay audits them."""

import json
import re

from kafka_helpers import (
    caught_up,
    churn_event,
    confluent_producer,
    crc32_partition,
    deal_event,
    event_time,
    metric,
    murmur2_partition,
    offsets_report,
    per_deal,
    read_records,
    replay_alerts,
    topic_partitions,
    wait_until,
    write_jsonl,
)


def _accounts(prefix, count, partitions, agree):
    """Account ids on which librdkafka's default partitioner (crc32) and murmur2 agree, or
    not."""
    found, n = [], 0
    while len(found) < count:
        account = f"{prefix}-{n:03d}"
        key = account.encode()
        if (crc32_partition(key, partitions) == murmur2_partition(key, partitions)) == agree:
            found.append(account)
        n += 1
    return found


def _pair(account, day):
    """A new-logo deal with no clawback and a full churn 30 days later: a critical finding."""
    return [deal_event(f"{account}-d", account=account, deal_id=f"deal-{account}",
                       closed_at=f"2026-01-{day:02d}T00:00:00Z"),
            churn_event(account, account=account, churned_at=f"2026-02-{day:02d}T00:00:00Z")]


def test_events_on_the_wrong_partition_are_dead_lettered(stack, tmp_path):
    worker = stack.worker().start()
    worker.wait_ready()  # it created the topics
    partitions = topic_partitions(stack, "deals.closed")
    assert partitions > 1

    right = [e for i, a in enumerate(_accounts("right", 6, partitions, agree=True))
             for e in _pair(a, 5 + i)]  # sent by murmur2_random and by the default partitioner
    lucky = [e for i, a in enumerate(_accounts("lucky", 2, partitions, agree=True))
             for e in _pair(a, 12 + i)]  # the default partitioner, right by chance
    stray = [e for i, a in enumerate(_accounts("stray", 6, partitions, agree=False))
             for e in _pair(a, 15 + i)]  # the default partitioner, the wrong partition
    expected = per_deal(replay_alerts(write_jsonl(tmp_path / "valid.jsonl", right + lucky),
                                      tmp_path / "replay.jsonl"))
    assert len(expected) == (len(right) + len(lucky)) // 2

    murmur2 = confluent_producer(stack, partitioner="murmur2_random")
    default = confluent_producer(stack)  # partitioner consistent_random: crc32 of the key
    wrong = {}  # dead-letter source -> the partition the worker must name
    for i, event in enumerate(right + lucky + stray):
        producer = murmur2 if event in right and i % 2 == 0 else default
        sent = producer.send_event(stack, event)
        key = event["account_id"].encode()
        expected_partition = murmur2_partition(key, partitions)
        if event in stray:
            assert sent.partition == crc32_partition(key, partitions) != expected_partition
            wrong[sent.source] = expected_partition
        else:
            assert sent.partition == expected_partition
    total = len(right) + len(lucky) + len(stray)

    inputs = ["deals.closed", "accounts.churned"]
    wait_until(lambda: worker.events_total() == total, timeout=120,
               what=f"{total} events counted\n{worker.tail()}")
    wait_until(lambda: caught_up(stack, inputs), timeout=60,
               what=f"every input committed; {offsets_report(stack, inputs)}")

    problems = []
    letters = {}
    for record in read_records(stack, "audit.deadletter"):
        letter = json.loads(record.value)
        letters.setdefault(letter["source"], letter)
    reasons = sorted({letter["reason"] for letter in letters.values()})
    if set(letters) != set(wrong):
        problems.append(f"dead letters for {len(letters)} messages (reasons {reasons}); "
                        f"expected one for each of the {len(wrong)} messages on the wrong "
                        f"partition: {sorted(wrong)}")
    for source, partition in sorted(wrong.items()):
        letter = letters.get(source)
        if letter is None:
            continue
        if letter["reason"] != "wrong_partition":
            problems.append(f"{source}: reason {letter['reason']!r}, not 'wrong_partition'")
        if not re.search(rf"\b{partition}\b", letter["detail"]):
            problems.append(f"{source}: the detail does not name partition {partition}: "
                            f"{letter['detail']!r}")
        if "partitioner=murmur2_random" not in letter["detail"]:
            problems.append(f"{source}: the detail does not name the producer setting "
                            f"partitioner=murmur2_random: {letter['detail']!r}")
        if json.loads(letter["original"])["account_id"] not in {e["account_id"] for e in stray}:
            problems.append(f"{source}: the original is not the event sent: "
                            f"{letter['original'][:80]!r}")
    counted = metric(worker, "auditor_deadletters_total", reason="wrong_partition")
    if counted != len(wrong):
        problems.append(f'auditor_deadletters_total{{reason="wrong_partition"}} is {counted}, '
                        f"expected {len(wrong)}")
    invalid = metric(worker, "auditor_events_total", outcome="invalid")
    if invalid != len(wrong):
        problems.append(f'auditor_events_total{{outcome="invalid"}} is {invalid}, '
                        f"expected {len(wrong)}")

    # The watermark gauge is set in the worker: at most the newest event time audited.
    watermark = metric(worker, "auditor_watermark_timestamp_seconds")
    newest = max(event_time(e) for e in right + lucky)
    if not 0 < watermark <= newest:
        problems.append(f"auditor_watermark_timestamp_seconds is {watermark}, expected in "
                        f"(0, {newest}]")

    got = per_deal(stack.alerts())
    if got.keys() - expected.keys():
        accounts = sorted({got[a]["account_id"] for a in got.keys() - expected.keys()})
        problems.append(f"alerts from events on the wrong partition (accounts {accounts})")
    if expected.keys() - got.keys():
        problems.append(f"alerts of events on the right partition missing: "
                        f"{sorted(expected.keys() - got.keys())}")
    changed = [a for a in expected.keys() & got.keys() if got[a] != expected[a]]
    if changed:
        problems.append(f"alerts that differ from replay's: {changed}")
    assert not problems, "\n".join(problems)
