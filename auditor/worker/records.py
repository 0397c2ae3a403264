"""The worker's own records on the broker -- aggregate facts, state and watermarks -- in a
versioned wire form.

Each carries `"v": FORMAT`. A record this worker cannot read (another version, or damaged) is
never a crash loop on every restart: reading it raises `UnreadableRecord`, and the caller's
policy decides (a facts message becomes an `unreadable_record` dead letter; a state record is
reported and its key starts afresh).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from auditor.engine.facts import AggregateFact

FORMAT = 1


class UnreadableRecord(ValueError):
    pass


class FactsMessage(NamedTuple):
    """One message of the repartition topic: facts of one key from one source partition (or
    none: a watermark heartbeat), with that partition's watermark."""

    key: str | None  # the facts' key; None for a heartbeat, sent to an explicit partition
    partition: int | None
    value: bytes


class FactsRecord(NamedTuple):
    source: int  # the input partition whose join stage sent it
    watermark: float  # that join stage's watermark when it sent it
    facts: list[AggregateFact]


def encode_facts(key: str | None, source: int, watermark: float,
                 facts: list[AggregateFact], max_bytes: int) -> list[bytes]:
    """The facts as one or more messages, each at most `max_bytes` (a batch can make many facts
    of one key; the broker limits a message's size)."""
    head = {"v": FORMAT, "source": source, "watermark": watermark}
    value = json.dumps({**head, "facts": [f.to_dict() for f in facts]},
                       separators=(",", ":")).encode()
    if len(value) <= max_bytes or len(facts) <= 1:
        return [value]
    half = len(facts) // 2
    return (encode_facts(key, source, watermark, facts[:half], max_bytes)
            + encode_facts(key, source, watermark, facts[half:], max_bytes))


def decode_facts(value: bytes | None) -> FactsRecord:
    try:
        data = json.loads(value or b"")
        _check_format(data)
        return FactsRecord(int(data["source"]), float(data["watermark"]),
                           [AggregateFact.from_dict(f) for f in data["facts"]])
    except UnreadableRecord:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a facts record: {type(exc).__name__}: {exc}") from exc


def state_value(partition: int, state: dict[str, Any]) -> dict[str, Any]:
    """A state table's value: the key's state and the partition it belongs to."""
    return {"v": FORMAT, "p": partition, "s": state}


def read_state_value(value: Any) -> tuple[int, dict[str, Any]]:
    """(partition, state dict) of a recovered state value."""
    _check_format(value)
    try:
        return int(value["p"]), dict(value["s"])
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a state record: {type(exc).__name__}: {exc}") from exc


def watermark_value(watermark: float) -> dict[str, Any]:
    return {"v": FORMAT, "w": watermark}


def read_watermark_value(value: Any) -> float:
    _check_format(value)
    try:
        return float(value["w"])
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a watermark record: {type(exc).__name__}: {exc}") from exc


def _check_format(data: Any) -> None:
    if type(data) is not dict:
        raise UnreadableRecord(f"expected an object, got {type(data).__name__}")
    version = data.get("v")
    if version != FORMAT:
        raise UnreadableRecord(f"format version {version!r}; this worker reads {FORMAT}")
