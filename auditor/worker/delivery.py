"""Getting the worker's outputs to the broker, with one policy for what cannot be sent.

Every output of a batch -- alerts, dead letters, facts, claims, changelog records -- is sent
and awaited before the batch's offsets may be committed (auditor/worker/commit_gate.py). A send
that fails is never a crash:
- a record too large for the broker can never be taken: it is handed to the shell's `divert`
  policy, which returns what to send instead (a bounded dead letter naming it) or None to give
  it up (counted and logged);
- any other error (the broker away, a timeout, a leader moving, a refusal that an operator can
  mend) is retried with capped exponential backoff for as long as it takes: the batch waits,
  its offsets stay uncommitted, and a stopped worker redoes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outgoing:
    output: str  # alerts, deadletters, facts, claims or state: for the policy, metrics, logs
    item: Any  # what the record says (an Alert, a DeadLetter, ...), for the policy
    topic: Any  # a faust topic (anything with `async send(...)` returning a future)
    key: Any
    value: Any
    partition: int | None = None
    key_serializer: str | None = None
    value_serializer: str | None = None


TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
Divert = Callable[[Outgoing, BaseException], "Outgoing | None"]


def too_large(exc: BaseException) -> bool:
    """The producer or the broker says the record exceeds its size limit (faust wraps the
    client's error in ProducerSendError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TOO_LARGE):
            return True
        seen = seen.__cause__
    return False


class Delivery:
    def __init__(self, divert: Divert, first_retry: float = 0.5, max_retry: float = 30.0,
                 log_every: float = 30.0, ack_timeout: float = 30.0) -> None:
        self.divert = divert
        # Longest wait for the broker to acknowledge a round of sends: past it, the whole round
        # is sent again (a send whose acknowledgement never comes must not hold the batch, and
        # so its agent, for ever; re-sending what did arrive is at-least-once, de-duplicated by
        # key downstream).
        self.ack_timeout = ack_timeout
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.log_every = log_every
        # (output, outcome): outcome retried, diverted or dropped.
        self.failures: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._last_log = 0.0

    async def deliver(self, records: Sequence[Outgoing]) -> None:
        """Return once every record (or what replaced it) is acknowledged by the broker."""
        pending = list(records)
        delay = self.first_retry
        while pending:
            again: list[Outgoing] = []
            retrying = False
            for record, exc in await self._send_within(pending):
                if not too_large(exc):
                    self.failures[record.output, "retried"] += 1
                    again.append(record)
                    retrying = True
                    continue
                replacement = self.divert(record, exc)
                outcome = "dropped" if replacement is None else "diverted"
                self.failures[record.output, outcome] += 1
                log.error("%s record to %s cannot be delivered (%s): %s", record.output,
                          _topic_name(record.topic), _reason(exc), outcome)
                if replacement is not None:
                    again.append(replacement)
            if not again:
                break
            if retrying:  # replacements alone go at once
                self._log_retry(len(again), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)
            pending = again

    async def _send_within(self, records: list[Outgoing]
                           ) -> list[tuple[Outgoing, BaseException]]:
        try:
            return await asyncio.wait_for(self._send(records), self.ack_timeout)
        except TimeoutError as exc:
            log.warning("%d records not acknowledged within %.0f s: sending them again",
                        len(records), self.ack_timeout)
            return [(record, exc) for record in records]

    async def _send(self, records: list[Outgoing]) -> list[tuple[Outgoing, BaseException]]:
        """Send them all, then wait for all: the failures, with their errors."""
        failed: list[tuple[Outgoing, BaseException]] = []
        sent: list[tuple[Outgoing, Any]] = []
        for record in records:
            try:
                future = await record.topic.send(
                    key=record.key, value=record.value, partition=record.partition,
                    key_serializer=record.key_serializer,
                    value_serializer=record.value_serializer)
            except Exception as exc:  # refused before sending: too large, no producer, ...
                failed.append((record, exc))
            else:
                sent.append((record, future))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        for (record, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                failed.append((record, result))
        return failed

    def _log_retry(self, count: int, delay: float) -> None:
        now = time.monotonic()
        if now - self._last_log >= self.log_every:  # one line per interval while it lasts
            self._last_log = now
            log.warning("%d records not delivered yet; retrying in %.1f s (offsets held)",
                        count, delay)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}"[:300]


def _topic_name(topic: Any) -> str:
    get = getattr(topic, "get_topic_name", None)
    return str(get()) if get is not None else str(topic)
