"""What happens to input that is not a valid event: it becomes a dead letter, never an exception."""

from __future__ import annotations

import json
from dataclasses import dataclass

# Every reason a dead letter can carry, known in advance so its counter is exported at 0 from the
# start. Replay uses the first six; the worker adds the Kafka-only ones.
REASONS = (
    "bad_json", "not_object", "unknown_event_type", "schema", "too_large", "unsupported_currency",
    "empty", "null_key", "key_mismatch", "wrong_partition", "unreadable_record", "internal_error",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str  # a short stable code: bad_json, not_object, schema, ...
    detail: str  # the human message, naming the field
    source: str  # file:line, or topic/partition/offset
    original: str  # the input text, invalid UTF-8 replaced
    event_type: str = "unknown"  # for the events counter, when the input said which

    def to_json(self) -> str:
        return json.dumps(
            {
                "reason": self.reason,
                "detail": self.detail,
                "source": self.source,
                "original": self.original,
            },
            ensure_ascii=False,
        )
