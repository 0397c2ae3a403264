"""What happens to input that is not a valid event: it becomes a dead letter, never an exception."""

from __future__ import annotations

import json
from dataclasses import dataclass


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
