"""Everything the worker can be told, from flags or `AUDITOR_*` environment variables.

Flags win over the environment, the environment over the defaults, so one container image
serves every deployment.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "AUDITOR_"


@dataclass(frozen=True)
class Security:
    """Kafka client security, in the words both client libraries understand."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (admin, producer)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if self.uses_ssl and self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def faust(self) -> Any:
        """faust's `broker_credentials`, or None for plaintext."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username, password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_ssl else None,
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None


@dataclass(frozen=True)
class Topics:
    deals: str = "deals.closed"
    churns: str = "accounts.churned"
    alerts: str = "audit.alerts"
    deadletter: str = "audit.deadletter"

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.deals, self.churns)


@dataclass(frozen=True)
class WorkerSettings:
    brokers: tuple[str, ...] = ("localhost:9092",)
    rules_dir: Path | None = None  # None: the repo's rules/
    group_id: str = "comp-auditor"  # also the prefix of the worker's internal topics
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    replication_factor: int = 1
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    data_dir: Path | None = None  # None: var/worker-<web_port>
    lateness_days: float = 30.0
    reload_seconds: float = 2.0  # how often the rules directory is checked for changes; 0: never
    session_timeout: float = 10.0
    security: Security = field(default_factory=Security)
    log_level: str = "info"

    @property
    def facts_topic(self) -> str:
        """The repartition topic between the join and the aggregate stage."""
        return f"{self.group_id}-aggregate-facts"

    @property
    def state_dir(self) -> Path:
        return self.data_dir or Path("var") / f"worker-{self.web_port}"

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b}" for b in self.brokers)


def parse_brokers(value: str) -> tuple[str, ...]:
    """`kafka://host:port`, `host:port`, comma-separated -> ("host:port", ...)."""
    brokers = []
    for part in value.split(","):
        part = part.strip().removeprefix("kafka://").rstrip("/")
        if not part:
            continue
        if ":" not in part:
            part += ":9092"
        brokers.append(part)
    if not brokers:
        raise ValueError(f"no broker in {value!r}")
    return tuple(brokers)


# (setting, environment variable, converter); a flag of the same name overrides each.
_ENV: tuple[tuple[str, str, Any], ...] = (
    ("brokers", "BROKER", parse_brokers),
    ("rules_dir", "RULES", Path),
    ("group_id", "GROUP_ID", str),
    ("partitions", "TOPIC_PARTITIONS", int),
    ("replication_factor", "REPLICATION_FACTOR", int),
    ("web_host", "WEB_HOST", str),
    ("web_port", "WEB_PORT", int),
    ("data_dir", "DATA_DIR", Path),
    ("lateness_days", "ALLOWED_LATENESS_DAYS", float),
    ("reload_seconds", "RULES_RELOAD_SECONDS", float),
    ("session_timeout", "SESSION_TIMEOUT", float),
    ("log_level", "LOG_LEVEL", str),
)
_TOPIC_ENV = {"deals": "TOPIC_DEALS", "churns": "TOPIC_CHURNS", "alerts": "TOPIC_ALERTS",
              "deadletter": "TOPIC_DEADLETTER"}
_SECURITY_ENV = {"protocol": "SECURITY_PROTOCOL", "sasl_mechanism": "SASL_MECHANISM",
                 "sasl_username": "SASL_USERNAME", "sasl_password": "SASL_PASSWORD",
                 "ssl_cafile": "SSL_CAFILE"}


def from_environment(overrides: dict[str, Any] | None = None,
                     env: dict[str, str] | None = None) -> WorkerSettings:
    """Settings from `env` (default os.environ), then `overrides` (flags given, not None)."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    for name, var, convert in _ENV:
        raw = env.get(ENV_PREFIX + var)
        if raw:
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{var}={raw!r}: {exc}") from exc
    topics = {k: env[ENV_PREFIX + v] for k, v in _TOPIC_ENV.items() if env.get(ENV_PREFIX + v)}
    security = {k: env[ENV_PREFIX + v] for k, v in _SECURITY_ENV.items()
                if env.get(ENV_PREFIX + v)}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in _TOPIC_ENV:
            topics[key] = value
        elif key in _SECURITY_ENV:
            security[key] = value
        else:
            values[key] = value
    known = {f.name for f in fields(WorkerSettings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    if "protocol" in security:
        security["protocol"] = security["protocol"].upper()
    return WorkerSettings(**values, topics=Topics(**topics), security=Security(**security))
