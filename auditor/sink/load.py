"""`auditor findings load`: alerts files (JSON Lines) into the findings table.

Each file is loaded in one transaction, in batches, so a file is in the table whole or not at
all; loading it again changes nothing (rows are upserted by alert_id, refused lines by their
`file:line`). A line that is not an alert is kept in `findings_rejected` and reported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import BinaryIO

from auditor.sink.rows import Refused, Rejected, Row, parse
from auditor.sink.store import Conn, Written, write

BATCH = 5000


def load_stream(conn: Conn, lines: Iterable[bytes], name: str, batch_size: int = BATCH,
                warn: Callable[[str], None] | None = None) -> Written:
    """Loads one alerts file (its lines as bytes), named `name` in sources, in a transaction."""
    total = Written()
    rows: list[Row] = []
    rejected: list[Rejected] = []
    with conn.transaction():
        for number, raw in enumerate(lines, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            source = f"{name}:{number}"
            try:
                rows.append(parse(line, source))
            except Refused as exc:
                rejected.append(Rejected(source, exc.reason, exc.detail, line))
                if warn is not None:
                    warn(f"{source}: {exc.reason}: {exc.detail}")
            if len(rows) + len(rejected) >= batch_size:
                total.add(write(conn, rows, rejected))
                rows, rejected = [], []
        total.add(write(conn, rows, rejected))
    return total


def load_path(conn: Conn, path: str, batch_size: int = BATCH,
              warn: Callable[[str], None] | None = None) -> Written:
    """`path`, or standard input for `-`; OSError when it cannot be read."""
    if path == "-":
        return load_stream(conn, sys.stdin.buffer, "-", batch_size, warn)
    stream: BinaryIO
    with open(path, "rb") as stream:
        return load_stream(conn, stream, path, batch_size, warn)
