"""Create the worker's topics before faust starts, waiting for the broker as long as it takes.

faust declares its own changelog topics; the input, output, repartition and claims topics are
created here so their partition count is the one configured, not a broker's auto-create default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from auditor.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def worker_topics(settings: WorkerSettings) -> list[str]:
    t = settings.topics
    return [t.deals, t.churns, t.alerts, t.deadletter, settings.facts_topic,
            settings.claims_topic]


def ensure_topics(settings: WorkerSettings, names: Iterable[str] | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  attempts: int | None = None) -> list[str]:
    """Create the topics that are missing; return their names. Retries with capped exponential
    backoff while the broker is unreachable (forever unless `attempts` is given)."""
    wanted = list(names) if names is not None else worker_topics(settings)
    delay, attempt = 1.0, 0
    while True:
        attempt += 1
        try:
            return _create_missing(settings, wanted)
        except KafkaError as exc:
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("broker %s not reachable (%s); retrying in %.0f s",
                        ",".join(settings.brokers), exc, delay)
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


class PartitionCountError(ValueError):
    """An input or repartition topic exists with another partition count than configured."""


def _check_partitions(admin: KafkaAdminClient, settings: WorkerSettings,
                      existing: list[str]) -> None:
    """The join needs an account's deals and churns on the same partition number, and the
    worker checks each event's partition against its key (murmur2 over `partitions`): the
    input and repartition topics, and the claims topic that joins the inputs' partitions, must
    all have the configured count."""
    t = settings.topics
    keyed = [n for n in existing
             if n in (t.deals, t.churns, settings.facts_topic, settings.claims_topic)]
    if not keyed:
        return
    wrong = {}
    for described in admin.describe_topics(keyed):
        count = len(described.get("partitions") or [])
        if count and count != settings.partitions:
            wrong[described["topic"]] = count
    if wrong:
        raise PartitionCountError(
            "topics with another partition count than --partitions "
            f"{settings.partitions}: " + ", ".join(f"{n} has {c}" for n, c in sorted(wrong.items()))
            + "; set --partitions (AUDITOR_TOPIC_PARTITIONS) to match, or repartition them")


def _create_missing(settings: WorkerSettings, wanted: list[str]) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=list(settings.brokers),
                             client_id=f"{settings.group_id}-admin", request_timeout_ms=10_000,
                             **settings.security.kafka_python())
    try:
        existing = set(admin.list_topics())
        created = []
        for name in wanted:
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, num_partitions=settings.partitions,
                                              replication_factor=settings.replication_factor)])
                created.append(name)
            except TopicAlreadyExistsError:  # another worker was quicker
                pass
        if created:
            log.info("created topics %s with %d partitions", ", ".join(created),
                     settings.partitions)
        _check_partitions(admin, settings, [n for n in wanted if n in existing])
        return wanted
    finally:
        admin.close()
