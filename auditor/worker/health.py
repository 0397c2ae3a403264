"""Whether the worker can reach its broker, and logs that stay readable while it cannot.

`BrokerHealth` keeps the time of the broker's last answer (the background lag refresh asks
every few seconds): `auditor_broker_connected` says whether the last question was answered,
and /readyz fails once no answer came for the grace period (`--broker-grace-seconds`).

`RedactFilter` keeps secrets out of every log line, whoever logs them.

`RepeatFilter` bounds the logs of a broker outage: the Kafka clients log each failed connect,
metadata update, coordinator request and fetch, about 60 lines a second with one broker gone
(loggers `aiokafka`, `aiokafka.consumer.group_coordinator`, `aiokafka.consumer.fetcher`;
`kafka` while the topics are created). Of the warnings and errors of one logger and one kind
(the message template), one line per interval goes through; the next one that does says how
many were held back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("auditor.worker")

Clock = Callable[[], float]
REPEAT_SECONDS = 10.0


class BrokerHealth(Collector):
    """The broker's last answer; exported as `auditor_broker_connected`."""

    def __init__(self, grace_seconds: float, clock: Clock = time.monotonic) -> None:
        self.grace = grace_seconds
        self.clock = clock
        # Start-up counts as an answer: the worker has just created or found its topics.
        self.last_answer = clock()
        self.connected = False  # until the first answer of the refresh loop
        self.lost_since: float | None = None

    def answered(self) -> None:
        now = self.clock()
        if self.lost_since is not None:
            log.warning("broker reachable again after %.0f s", now - self.lost_since)
            self.lost_since = None
        self.last_answer = now
        self.connected = True

    def lost(self, reason: str) -> None:
        self.connected = False
        if self.lost_since is None:
            self.lost_since = self.clock()
            log.error("broker not reachable (%s); /readyz fails if it stays away %.0f s",
                      reason, self.grace)

    @property
    def silent_seconds(self) -> float:
        """Seconds since the broker last answered."""
        return max(0.0, self.clock() - self.last_answer)

    def within_grace(self) -> bool:
        return self.silent_seconds <= self.grace

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("auditor_broker_connected",
                                "1 if the broker answered the worker's last request (every few "
                                "seconds), else 0.", value=1.0 if self.connected else 0.0)


class RepeatFilter(logging.Filter):
    """One record per (logger, level, kind) per `interval` seconds, for WARNING and above.

    A record let through after others were held back gets `[N more like this in the last S s
    not logged]` appended. Install one instance on every handler (`install`): the decision is
    made once per record, so two handlers show the same lines."""

    def __init__(self, interval: float = REPEAT_SECONDS, level: int = logging.WARNING,
                 clock: Clock = time.monotonic, max_kinds: int = 1000) -> None:
        super().__init__()
        self.interval = interval
        self.level = level
        self.clock = clock
        self.max_kinds = max_kinds
        self._windows: dict[tuple[str, int, str], list[float]] = {}  # [start, held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        decided = record.__dict__.get("_auditor_repeat")
        if isinstance(decided, bool):
            return decided
        key = (record.name, record.levelno, _kind(record.msg))
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window[0] < self.interval:
                window[1] += 1
                allow = False
            else:
                if window is not None and window[1]:
                    record.msg = (f"{record.msg} [{int(window[1])} more like this in the last "
                                  f"{now - window[0]:.0f} s not logged]")
                self._forget_old(now)
                self._windows[key] = [now, 0]
                allow = True
        record.__dict__["_auditor_repeat"] = allow
        return allow

    def _forget_old(self, now: float) -> None:
        if len(self._windows) < self.max_kinds:
            return
        for key, (start, held) in list(self._windows.items()):
            if now - start >= self.interval and not held:
                del self._windows[key]
        if len(self._windows) >= self.max_kinds:  # many kinds at once: start over
            self._windows.clear()

    def install(self, handlers: Iterable[logging.Handler]) -> None:
        for handler in handlers:
            if self not in handler.filters:
                handler.addFilter(self)


class RedactFilter(logging.Filter):
    """Replaces the given secrets in every record's message by `**********`: some client
    libraries log their whole configuration at debug level (kafka-python's admin client
    does, SASL password included)."""

    MASK = "**********"

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format: left to the handler to report
            return True
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, self.MASK)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

    def install(self, handlers: Iterable[logging.Handler]) -> None:
        for handler in handlers:
            if self not in handler.filters:
                handler.addFilter(self)


def _kind(msg: object) -> str:
    """A record's kind: its message template, numbers aside (ids, ports, counts)."""
    return re.sub(r"\d+", "#", str(msg))[:200]
