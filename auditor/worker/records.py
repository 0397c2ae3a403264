"""The worker's own records on the broker -- aggregate facts, money claims, state and
watermarks -- in a versioned wire form.

Each carries `"v": FORMAT`. A record this worker cannot read (another version, or damaged) is
never a crash loop on every restart: reading it raises `UnreadableRecord`, and the caller's
policy decides (a facts or claims message becomes an `unreadable_record` dead letter; a state
record is reported and its key starts afresh).

They are JSON written and read with orjson: only workers read them, and a batch encodes
hundreds of states and facts (json.dumps was a quarter of the worker's time).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

from auditor.engine.facts import AggregateFact
from auditor.engine.join_stage import Claim

# 2: facts carry their measure contributions (`values`), aggregate state its sums. Records of
# format 1 are still read: their periods recompute the sums from the deals they keep.
FORMAT = 2
READABLE = (1, 2)


class UnreadableRecord(ValueError):
    pass


class FactsMessage(NamedTuple):
    """One message of the repartition topic: facts of one key from one source partition (or
    none: a watermark heartbeat), with that partition's watermark."""

    key: str | None  # the facts' key; None for a heartbeat, sent to an explicit partition
    partition: int | None
    value: bytes


class FactsRecord(NamedTuple):
    # The watermark of each input partition whose join stage sent it: the one whose facts it
    # carries (its watermark when the batch began), or several, in a heartbeat without facts.
    watermarks: dict[int, float]
    facts: list[AggregateFact]
    # Where each fact comes from: (input topic, offset) of the event that made it, in the
    # source partition; None for facts of the previous form, which did not say.
    positions: list[tuple[str, int]] | None = None


# The facts one event made for one destination, and where the event is: (topic, offset, facts).
EventFacts = tuple[str, int, list[AggregateFact]]


def _messages(head: dict[str, Any], name: str, groups: list[list[Any]],
              max_bytes: int) -> list[bytes]:
    """`head` and `name: items` (the groups' items, in order) as JSON, split in halves until
    each message is at most `max_bytes` (a batch can make many items for one key; the broker
    limits a message's size); a group is never split."""
    value = orjson.dumps({**head, name: [item for group in groups for item in group]})
    if len(value) <= max_bytes or len(groups) <= 1:
        return [value]
    half = len(groups) // 2
    return (_messages(head, name, groups[:half], max_bytes)
            + _messages(head, name, groups[half:], max_bytes))


def encode_facts(source: int, watermark: float, events: list[EventFacts],
                 max_bytes: int) -> list[bytes]:
    """The facts of a source's events for one destination, in the events' order, as one or
    more messages: each fact a row (`AggregateFact.to_row`) followed by its event's topic (an
    index into the message's `topics`) and offset. An event's facts stay in one message, so
    a message either holds all of an event's facts or none (the receiver skips an event it
    applied before by its offset: Pipeline.on_facts)."""
    topics = sorted({topic for topic, _, _ in events})
    index = {topic: i for i, topic in enumerate(topics)}
    groups = [[(*fact, index[topic], offset) for fact in facts]  # a fact is its row
              for topic, offset, facts in events]
    return _messages({"v": FORMAT, "source": source, "watermark": watermark,
                      "topics": topics}, "rows", groups, max_bytes)


def encode_beat(watermarks: dict[int, float]) -> bytes:
    """A heartbeat: how far each of several sources has got, in one message (to the
    repartition topic from join stages, to the claims topic from aggregate stages)."""
    return orjson.dumps({"v": FORMAT, "beats": {str(s): w for s, w in watermarks.items()}})


def _beats(data: dict[str, Any]) -> dict[int, float]:
    return {int(source): _number(watermark) for source, watermark in dict(data["beats"]).items()}


def decode_facts(value: bytes | None) -> FactsRecord:
    try:
        data = orjson.loads(value or b"")
        _check_format(data)
        if "beats" in data:
            return FactsRecord(_beats(data), [])
        watermarks = {int(data["source"]): float(data["watermark"])}
        if "topics" not in data:  # the previous forms: facts without their events' positions
            facts = ([AggregateFact.from_row(row) for row in data["rows"]] if "rows" in data
                     else [AggregateFact.from_dict(f) for f in data["facts"]])
            return FactsRecord(watermarks, facts)
        topics = [_text(t) for t in data["topics"]]
        facts, positions = [], []
        for row in data["rows"]:
            facts.append(AggregateFact.from_row(row[:-2]))
            topic, offset = row[-2:]
            if type(topic) is not int or not 0 <= topic < len(topics) or type(offset) is not int:
                raise ValueError(f"topic {topic!r} and offset {offset!r}")
            positions.append((topics[topic], offset))
        return FactsRecord(watermarks, facts, positions)
    except UnreadableRecord:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a facts record: {type(exc).__name__}: {exc}") from exc


class ClaimsMessage(NamedTuple):
    """One message of the claims topic: aggregate findings' money on deals of one account, to
    its ledger, on the account's partition (murmur2 of the key, as the input topics)."""

    key: str  # the account_id ("" for a LedgerBeat, sent to every partition)
    partition: int
    value: bytes


_CLAIM_FIELDS = ("deal_id", "money_class", "amount", "plan_id", "team", "time")


def encode_claims(account_id: str, claims: list[Claim], max_bytes: int) -> list[bytes]:
    """The claims of one account as one or more messages, each at most `max_bytes`."""
    return _messages({"v": FORMAT, "account_id": account_id}, "claims",
                     [[{f: getattr(c, f) for f in _CLAIM_FIELDS}] for c in claims], max_bytes)


class LedgerBeat(NamedTuple):
    """A claims-topic message without claims: how far aggregate stages have got. A join stage
    keeps its deals' ledger entries until every aggregate stage is past them, since until then
    a finding may still claim money on them."""

    watermarks: dict[int, float]  # repartition-topic partition of the stage -> its watermark


def decode_claims(value: bytes | None) -> tuple[str, list[Claim]] | LedgerBeat:
    """(account_id, its claims), or a LedgerBeat; every field is checked, so a damaged record
    is not applied."""
    try:
        data = orjson.loads(value or b"")
        _check_format(data)
        if "beats" in data:
            return LedgerBeat(_beats(data))
        if "account_id" not in data:  # a beat of one stage, as the previous version sent
            source = data["source"]
            if type(source) is not int:
                raise TypeError(f"source {source!r} is not an integer")
            return LedgerBeat({source: _number(data["watermark"])})
        account_id = _text(data["account_id"])
        claims = []
        for raw in data["claims"]:
            deal_id, money_class, plan_id, team = (
                _text(raw[f]) for f in ("deal_id", "money_class", "plan_id", "team"))
            amount = _number(raw["amount"])
            if amount < 0:
                raise ValueError(f"amount {amount!r} < 0")
            claims.append(Claim(account_id, deal_id, money_class, amount, plan_id, team,
                                _number(raw["time"])))
        return account_id, claims
    except UnreadableRecord:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a claims record: {type(exc).__name__}: {exc}") from exc


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def read_state_value(value: Any) -> tuple[int, dict[str, Any]]:
    """(partition, state dict) of a recovered state value."""
    _check_format(value)
    try:
        return int(value["p"]), dict(value["s"])
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a state record: {type(exc).__name__}: {exc}") from exc


def read_watermark_value(value: Any) -> float:
    _check_format(value)
    try:
        return float(value["w"])
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a watermark record: {type(exc).__name__}: {exc}") from exc


# A state log record (auditor/worker/state_log.py): the states of one partition that one batch
# changed, or all of them (a snapshot), in one or more parts; format 3 has no per-key records.
LOG_FORMAT = 3


class LogRecord(NamedTuple):
    seq: int  # the batch's number in its partition's log
    snapshot: bool  # every state of the partition, not only the changed ones
    part: int
    parts: int
    marks: dict[str, float]  # the partition's watermarks, all of them
    states: dict[str, Any]  # key -> state dict, or None for a key deleted


def encode_log_record(seq: int, snapshot: bool, part: int, parts: int,
                      marks: dict[str, float], states: list[bytes]) -> bytes:
    """`states`: `"key":value` members already in JSON (each encoded once, counted once)."""
    head = orjson.dumps({"v": LOG_FORMAT, "seq": seq, "snapshot": snapshot, "part": part,
                         "parts": parts, "marks": marks})
    return b"".join((head[:-1], b',"states":{', b",".join(states), b"}}"))


def read_log_record(value: Any) -> LogRecord:
    """A state log record as sent (bytes) or as recovered by the table (decoded JSON)."""
    try:
        data = orjson.loads(value) if isinstance(value, bytes | str) else value
        if type(data) is not dict or data.get("v") != LOG_FORMAT:
            raise UnreadableRecord(f"not a state log record of format {LOG_FORMAT}")
        seq, part, parts = (data[f] for f in ("seq", "part", "parts"))
        if not all(type(n) is int for n in (seq, part, parts)) or not 0 <= part < parts:
            raise ValueError(f"seq {seq!r}, part {part!r} of {parts!r}")
        marks = {str(k): _number(v) for k, v in dict(data["marks"]).items()}
        states = dict(data["states"])
        if not all(v is None or type(v) is dict for v in states.values()):
            raise TypeError("a state is neither an object nor null")
        return LogRecord(seq, bool(data["snapshot"]), part, parts, marks, states)
    except UnreadableRecord:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableRecord(f"not a state log record: {type(exc).__name__}: {exc}") from exc


def _check_format(data: Any) -> None:
    if type(data) is not dict:
        raise UnreadableRecord(f"expected an object, got {type(data).__name__}")
    version = data.get("v")
    if version not in READABLE:
        raise UnreadableRecord(f"format version {version!r}; this worker reads "
                               f"{', '.join(map(str, READABLE))}")
