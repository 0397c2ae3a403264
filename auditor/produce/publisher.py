"""Publish JSON Lines events to the topic of their event_type, keyed by account_id.

Each line is validated against the event contract first: an invalid line is reported with its
file and line and not sent, so producers catch their mistakes before the worker dead-letters
them. The original bytes are sent, never a re-serialisation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from kafka import KafkaProducer
from pydantic import ValidationError

from auditor.events.decode import non_json_constant
from auditor.events.models import EVENT_ADAPTER
from auditor.worker.settings import Security, Topics


@dataclass
class PublishReport:
    sent: dict[str, int] = field(default_factory=dict)  # by topic
    invalid: list[str] = field(default_factory=list)  # "file:line: problem"
    failed: int = 0  # acknowledged as failed by the broker

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


class Publisher:
    def __init__(self, brokers: Iterable[str], topics: Topics | None = None,
                 security: Security | None = None, **producer_options: Any) -> None:
        self.topics = topics or Topics()
        self.by_type = {"deal_closed": self.topics.deals, "account_churned": self.topics.churns}
        options: dict[str, Any] = {"acks": "all", "linger_ms": 20, "retries": 5,
                                   "batch_size": 256 * 1024, "max_request_size": 2 * 1024 * 1024}
        options.update(producer_options)
        self.producer = KafkaProducer(bootstrap_servers=list(brokers),
                                      **(security or Security()).kafka_python(), **options)
        self.report = PublishReport()

    def publish(self, stream: BinaryIO | Iterable[bytes], name: str,
                progress_every: float = 1.0) -> None:
        report, last = self.report, time.monotonic()
        for lineno, raw in enumerate(stream, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            constant = non_json_constant(line)  # the parser would take it; the contract not
            if constant is not None:
                report.invalid.append(f"{name}:{lineno}: {constant}")
                continue
            try:
                event = EVENT_ADAPTER.validate_json(line)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "event"
                report.invalid.append(f"{name}:{lineno}: {where}: {first['msg']}")
                continue
            topic = self.by_type[event.event_type]
            future = self.producer.send(topic, key=event.account_id.encode(), value=line)
            future.add_errback(self._failed)
            report.sent[topic] = report.sent.get(topic, 0) + 1
            if progress_every and time.monotonic() - last >= progress_every:
                last = time.monotonic()
                print(f"\r{name}: {report.total_sent:,} sent", end="", file=sys.stderr,
                      flush=True)

    def _failed(self, exc: BaseException) -> None:
        self.report.failed += 1
        if self.report.failed <= 10:
            print(f"send failed: {exc}", file=sys.stderr)

    def close(self) -> PublishReport:
        self.producer.flush()
        self.producer.close()
        return self.report
