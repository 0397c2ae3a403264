"""Findings sink throughput: alerts per second from the alerts topic into PostgreSQL.

    python benchmarks/sink_throughput.py [--accounts N] [--batch-size B] [--fast]

Simulates N accounts (`auditor simulate`), replays them (`auditor replay`) for their alerts,
starts a throwaway PostgreSQL cluster (initdb + pg_ctl as in the tests, default durability:
fsync on; --fast turns it off; or AUDITOR_TEST_POSTGRES_DSN) and an in-memory Tansu broker (or
AUDITOR_TEST_KAFKA=host:port), produces every alert to the alerts topic keyed by alert_id, then
starts one `auditor sink postgres` and times it until the table holds every alert. For
comparison it also times `auditor findings load` of the same file into a fresh database.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import postgres, tansu  # noqa: E402

AUDITOR = str(Path(sys.executable).with_name("auditor"))
TOPIC = "audit.alerts"


def run(*args: str) -> None:
    subprocess.run([AUDITOR, *args], check=True, capture_output=True)


def produce(bootstrap: str, lines: list[bytes]) -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(TOPIC, 4, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=256 * 1024)
    for line in lines:
        producer.send(TOPIC, key=json.loads(line)["alert_id"].encode(), value=line)
    producer.flush(120)
    producer.close()


def time_sink(bootstrap: str, dsn: str, total: int, batch_size: int, tmp: Path
              ) -> tuple[float, float]:
    """(seconds from start, seconds from the first row) until `total` rows."""
    env = {**os.environ, "AUDITOR_BROKER": bootstrap}
    with open(tmp / "sink.log", "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([AUDITOR, "sink", "postgres", "--dsn", dsn, "--topic", TOPIC,
                                 "--batch-size", str(batch_size)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    first = None
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the sink exited:\n{(tmp / 'sink.log').read_text()}")
            try:
                rows = postgres.count(dsn)
            except Exception:  # the table is not there yet
                rows = 0
            now = time.perf_counter()
            if rows and first is None:
                first = now
            if rows >= total:
                assert first is not None
                return now - started, now - first
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--fast", action="store_true", help="PostgreSQL without fsync")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as name:
        tmp = Path(name)
        events, alerts = tmp / "events.jsonl", tmp / "alerts.jsonl"
        run("simulate", "--accounts", str(args.accounts), "--months", "24", "--seed", "7",
            "--out", str(events))
        run("replay", str(events), "--alerts-out", str(alerts), "-q")
        lines = alerts.read_bytes().splitlines()
        total = len(lines)
        print(f"{args.accounts:,} accounts: {total:,} alerts "
              f"({alerts.stat().st_size / total:,.0f} bytes each on average)")
        with postgres.cluster(fast=args.fast) as server, tansu.broker(tmp) as bootstrap:
            produce(bootstrap, lines)
            with postgres.database(server) as dsn:
                whole, steady = time_sink(bootstrap, dsn, total, args.batch_size, tmp)
            with postgres.database(server) as dsn:
                started = time.perf_counter()
                run("findings", "load", str(alerts), "--dsn", dsn)
                load = time.perf_counter() - started
        durability = "fsync off" if args.fast else "fsync on"
        print(f"PostgreSQL {durability}, batch size {args.batch_size}")
        print(f"auditor sink postgres: {total / steady:,.0f} alerts/s from the first row "
              f"({steady:.2f} s); {total / whole:,.0f} alerts/s from process start "
              f"({whole:.2f} s, with connecting, migrating and joining the group)")
        print(f"auditor findings load: {total / load:,.0f} alerts/s ({load:.2f} s, "
              f"process start included)")


if __name__ == "__main__":
    main()
