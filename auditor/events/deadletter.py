"""What happens to input that is not a valid event: it becomes a dead letter, never an exception.

A dead letter goes where a message's size is limited (a Kafka broker refuses records over
`message.max.bytes`, 1 MiB by default), and its JSON can be several times the size of the input
it carries: invalid UTF-8 becomes U+FFFD (three bytes for one), a NUL becomes `\\u0000` (six).
So it is serialised within a limit on its own size in bytes: `original` is cut first (then
`detail`, then `source`, should even that not do), never inside a character or an escape, and
the dead letter says so with `"truncated": true` and `"original_bytes"`, the size of the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Every reason a dead letter can carry, known in advance so its counter is exported at 0 from the
# start. Replay uses the first six; the worker adds the Kafka-only ones.
REASONS = (
    "bad_json", "not_object", "unknown_event_type", "schema", "too_large", "unsupported_currency",
    "empty", "null_key", "key_mismatch", "wrong_partition", "unreadable_record", "internal_error",
    "undeliverable_output",
)

# The default bound on a serialised dead letter, in bytes: half a Kafka broker's default maximum
# message size (1 MiB), leaving room for the key, headers and record overhead.
DEADLETTER_MAX_BYTES = 512 * 1024
# The smallest bound accepted: room for the fields' names, the truncation fields and a reason.
DEADLETTER_MIN_BYTES = 256

_FRAME = b'{"reason": %s, "detail": %s, "source": %s, "original": %s%s}'
_FRAME_BYTES = len(_FRAME) - 10  # without the five %s
_CUT_ORDER = (3, 1, 2, 0)  # original, then detail, then source, then reason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str  # a short stable code: bad_json, not_object, schema, ...
    detail: str  # the human message, naming the field
    source: str  # file:line, or topic/partition/offset
    original: str  # the input text, invalid UTF-8 replaced
    event_type: str = "unknown"  # for the events counter, when the input said which
    # The size of the input in bytes, when known (else that of `original` in UTF-8).
    original_bytes: int | None = None
    # `original` is already only the head of the input (a too_large event).
    truncated: bool = False

    def to_bytes(self, max_bytes: int = DEADLETTER_MAX_BYTES) -> bytes:
        """The dead letter as one JSON object in UTF-8, at most `max_bytes` long.

        `{reason, detail, source, original}`; when `original` is not the whole input, also
        `"truncated": true` and `"original_bytes"`, and a cut made here is noted in `detail`.
        """
        if max_bytes < DEADLETTER_MIN_BYTES:
            raise ValueError(f"max_bytes must be at least {DEADLETTER_MIN_BYTES}, not {max_bytes}")
        parts = [_quoted(self.reason), _quoted(self.detail), _quoted(self.source),
                 _quoted(self.original)]
        size = _FRAME_BYTES + sum(map(len, parts))
        if size <= max_bytes and not self.truncated:
            return _FRAME % (*parts, b"")  # the common case: json.dumps' output, byte for byte
        size_in = self.original_bytes
        if size_in is None:
            size_in = len(self.original.encode("utf-8", "surrogatepass"))
        tail = b', "truncated": true, "original_bytes": %d' % size_in
        if size + len(tail) > max_bytes:  # a cut made here, said in the detail
            parts[1] = _quoted(f"{self.detail}; original truncated to fit the dead-letter limit "
                               f"of {max_bytes} bytes")
        fixed = _FRAME_BYTES + len(tail)
        for index in _CUT_ORDER:
            excess = fixed + sum(map(len, parts)) - max_bytes
            if excess <= 0:
                break
            text = parts[index][1:-1]
            parts[index] = b'"' + _cut(text, max(0, len(text) - excess)) + b'"'
        return _FRAME % (*parts, tail)

    def to_json(self, max_bytes: int = DEADLETTER_MAX_BYTES) -> str:
        """`to_bytes` as text: at most `max_bytes` once encoded in UTF-8."""
        return self.to_bytes(max_bytes).decode("utf-8")


def _quoted(text: str) -> bytes:
    """`text` as a JSON string in UTF-8, as `json.dumps(ensure_ascii=False)` writes it; a lone
    surrogate (which UTF-8 cannot carry) as its `\\uXXXX` escape."""
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _cut(content: bytes, limit: int) -> bytes:
    """The longest head of a JSON string's content (UTF-8, escaped, without its quotes) of at
    most `limit` bytes that splits neither a character nor an escape sequence."""
    if len(content) <= limit:
        return content
    end = max(limit, 0)
    while end > 0 and 0x80 <= content[end] < 0xC0:  # content[end] is the first byte left out
        end -= 1  # off a UTF-8 continuation byte, back to the start of its character
    # Escapes are ASCII and at most 6 bytes (\uXXXX); every backslash starts one, except the
    # second of an escaped backslash (\\). The last backslash of the last 6 bytes tells.
    last = content.rfind(b"\\", max(0, end - 6), end)
    if last >= 0:
        head = content[:last + 1]
        run = len(head) - len(head.rstrip(b"\\"))  # backslashes ending at `last`
        if run % 2:  # `last` starts an escape: keep it only if it is whole
            length = 6 if content[last + 1:last + 2] == b"u" else 2
            if last + length > end:
                end = last
    return content[:end]
