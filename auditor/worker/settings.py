"""Everything the worker can be told, from flags or `AUDITOR_*` environment variables.

Flags win over the environment, the environment over the defaults, so one container image
serves every deployment. The settings are frozen pydantic models: a wrong value stops start-up
with the variable (or flag) that gave it and what is allowed, and secrets (the SASL password,
the SSL key password) are `SecretStr`, so no repr, log line or error message shows them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "AUDITOR_"

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)

# Frozen; unknown fields refused; a validation error never echoes its input (a password).
_MODEL = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class Security(BaseModel):
    """Kafka client security, in the words both client libraries understand."""

    model_config = _MODEL

    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None  # None: the system's trusted CAs
    ssl_certfile: Path | None = None  # client certificate (mTLS), PEM, may hold the chain
    ssl_keyfile: Path | None = None  # its private key, PEM; None: in the certificate file
    ssl_key_password: SecretStr | None = None  # of an encrypted private key

    @field_validator("protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Security:
        p = f"AUDITOR_SECURITY_PROTOCOL={self.protocol}"
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"{p} needs AUDITOR_SASL_USERNAME and AUDITOR_SASL_PASSWORD")
        if not self.uses_ssl:
            given = [name for name, value in (("AUDITOR_SSL_CAFILE", self.ssl_cafile),
                                              ("AUDITOR_SSL_CERTFILE", self.ssl_certfile),
                                              ("AUDITOR_SSL_KEYFILE", self.ssl_keyfile),
                                              ("AUDITOR_SSL_KEY_PASSWORD", self.ssl_key_password))
                     if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} given but {p} does not use SSL "
                                 "(use SSL or SASL_SSL)")
        if self.ssl_certfile is None and (self.ssl_keyfile or self.ssl_key_password):
            raise ValueError("AUDITOR_SSL_KEYFILE and AUDITOR_SSL_KEY_PASSWORD need "
                             "AUDITOR_SSL_CERTFILE (the client certificate)")
        return self

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
                           sasl_plain_password=_secret(self.sasl_password))
        if self.uses_ssl:
            if self.ssl_cafile:
                options["ssl_cafile"] = str(self.ssl_cafile)
            if self.ssl_certfile:
                options["ssl_certfile"] = str(self.ssl_certfile)
                if self.ssl_keyfile:
                    options["ssl_keyfile"] = str(self.ssl_keyfile)
                if self.ssl_key_password:
                    options["ssl_password"] = _secret(self.ssl_key_password)
        return options

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=_secret(self.sasl_password))
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """The CA to trust and, for mTLS, the client certificate chain and key."""
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            context.load_cert_chain(str(self.ssl_certfile),
                                    str(self.ssl_keyfile) if self.ssl_keyfile else None,
                                    password=_secret(self.ssl_key_password))
        return context

    def secrets(self) -> list[str]:
        """The secrets in the clear, for a log filter that masks them."""
        return [v for v in (_secret(self.sasl_password), _secret(self.ssl_key_password)) if v]

    def check(self) -> None:
        """Loads the SSL files now, so a missing file, a key that does not match its
        certificate or a wrong key password stop start-up with a clear ValueError."""
        if not self.uses_ssl:
            return
        files = ", ".join(f"{name}={str(path)!r}" for name, path in (
            ("AUDITOR_SSL_CAFILE", self.ssl_cafile), ("AUDITOR_SSL_CERTFILE", self.ssl_certfile),
            ("AUDITOR_SSL_KEYFILE", self.ssl_keyfile)) if path) or "the system's CAs"
        try:
            self.ssl_context()
        except (OSError, ssl.SSLError) as exc:  # neither carries the key password
            raise ValueError(f"cannot load the SSL files ({files}): {exc}") from None

    def faust(self) -> Any:
        """faust's `broker_credentials`, or None for plaintext."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username, password=_secret(self.sasl_password),
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_ssl else None,
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None


class Topics(BaseModel):
    model_config = _MODEL

    deals: str = Field("deals.closed", min_length=1)
    churns: str = Field("accounts.churned", min_length=1)
    alerts: str = Field("audit.alerts", min_length=1)
    deadletter: str = Field("audit.deadletter", min_length=1)

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.deals, self.churns)


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


class WorkerSettings(BaseModel):
    model_config = _MODEL

    brokers: tuple[str, ...] = Field(("localhost:9092",), min_length=1)
    rules_dir: Path | None = None  # None: the repo's rules/
    group_id: str = Field("comp-auditor", min_length=1)  # also the internal topics' prefix
    topics: Topics = Field(default_factory=Topics)
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    web_host: str = "0.0.0.0"
    web_port: int = Field(6066, ge=1, le=65535)
    data_dir: Path | None = None  # None: var/worker-<web_port>
    lateness_days: float = Field(30.0, ge=0)
    reload_seconds: float = Field(2.0, ge=0)  # how often rules are checked for changes; 0: never
    session_timeout: float = Field(10.0, gt=0)
    # Without an answer from the broker for this long, /readyz fails (503).
    broker_grace_seconds: float = Field(30.0, gt=0)
    # A partition's state log takes a snapshot once twice its size, and at least this many
    # bytes, were logged since the last (auditor/worker/state_log.py): smaller means fewer
    # bytes to read at recovery, larger fewer messages.
    snapshot_min_bytes: int = Field(1024 * 1024, ge=1)
    security: Security = Field(default_factory=Security)
    log_level: LogLevel = "info"

    @field_validator("brokers", mode="before")
    @classmethod
    def _brokers(cls, value: Any) -> Any:
        return parse_brokers(value) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def facts_topic(self) -> str:
        """The repartition topic between the join and the aggregate stage."""
        return f"{self.group_id}-aggregate-facts"

    @property
    def claims_topic(self) -> str:
        """The internal topic that takes aggregate findings' money per deal back to the deals'
        accounts (keyed by account_id, on the account's partition), for their ledgers."""
        return f"{self.group_id}-money-claims"

    @property
    def state_dir(self) -> Path:
        return self.data_dir or Path("var") / f"worker-{self.web_port}"

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b}" for b in self.brokers)


# Setting -> environment variable (after the prefix); a flag of the same setting overrides it.
_ENV: dict[str, str] = {
    "brokers": "BROKER", "rules_dir": "RULES", "group_id": "GROUP_ID",
    "partitions": "TOPIC_PARTITIONS", "replication_factor": "REPLICATION_FACTOR",
    "web_host": "WEB_HOST", "web_port": "WEB_PORT", "data_dir": "DATA_DIR",
    "lateness_days": "ALLOWED_LATENESS_DAYS", "reload_seconds": "RULES_RELOAD_SECONDS",
    "session_timeout": "SESSION_TIMEOUT", "broker_grace_seconds": "BROKER_GRACE_SECONDS",
    "snapshot_min_bytes": "STATE_SNAPSHOT_MIN_BYTES", "log_level": "LOG_LEVEL",
}
_TOPIC_ENV = {"deals": "TOPIC_DEALS", "churns": "TOPIC_CHURNS", "alerts": "TOPIC_ALERTS",
              "deadletter": "TOPIC_DEADLETTER"}
_SECURITY_ENV = {"protocol": "SECURITY_PROTOCOL", "sasl_mechanism": "SASL_MECHANISM",
                 "sasl_username": "SASL_USERNAME", "sasl_password": "SASL_PASSWORD",
                 "ssl_cafile": "SSL_CAFILE", "ssl_certfile": "SSL_CERTFILE",
                 "ssl_keyfile": "SSL_KEYFILE", "ssl_key_password": "SSL_KEY_PASSWORD"}
_SECRETS = {"sasl_password", "ssl_key_password"}
# The flags whose name is not the setting's (for messages).
_FLAGS = {"brokers": "--broker", "rules_dir": "--rules",
          "lateness_days": "--allowed-lateness-days", "deals": "--topic-deals",
          "snapshot_min_bytes": "--state-snapshot-min-bytes",
          "churns": "--topic-churns"}
# What is allowed, said in a refusal instead of pydantic's wording.
_ALLOWED = {"protocol": PROTOCOLS, "sasl_mechanism": MECHANISMS, "log_level": LOG_LEVELS}


def from_environment(overrides: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Settings from `env` (default os.environ), then `overrides` (flags given, not None).

    A wrong value raises ValueError naming the variable or flag, the value (never a secret's)
    and what is allowed, one line per problem."""
    env = os.environ if env is None else env
    groups: dict[str, dict[str, Any]] = {"": {}, "topics": {}, "security": {}}
    given: dict[tuple[str, ...], tuple[str, Any]] = {}  # loc -> (source, raw value)
    for group, names in (("", _ENV), ("topics", _TOPIC_ENV), ("security", _SECURITY_ENV)):
        for name, var in names.items():
            raw = env.get(ENV_PREFIX + var)
            if raw:
                groups[group][name] = raw
                given[(group, name) if group else (name,)] = (ENV_PREFIX + var, raw)
    unknown: list[str] = []
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in _ENV and name not in _TOPIC_ENV and name not in _SECURITY_ENV:
            unknown.append(name)
            continue
        group = "topics" if name in _TOPIC_ENV else "security" if name in _SECURITY_ENV else ""
        groups[group][name] = value
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        given[(group, name) if group else (name,)] = (flag, value)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    try:
        return WorkerSettings(**groups[""], topics=groups["topics"],
                              security=groups["security"])
    except ValidationError as exc:
        raise ValueError(_explain(exc, given)) from None


def _explain(exc: ValidationError, given: dict[tuple[str, ...], tuple[str, Any]]) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        name = loc[-1] if loc else ""
        if name in _ALLOWED:
            message = f"must be one of {', '.join(_ALLOWED[name])}"
        key = next((loc[:n] for n in range(len(loc), 0, -1) if loc[:n] in given), None)
        if key is None:
            problems.append(message)
            continue
        source, raw = given[key]
        shown = "<hidden>" if key[-1] in _SECRETS else repr(str(raw))
        problems.append(f"{source}={shown}: {message}")
    return "; ".join(problems)
