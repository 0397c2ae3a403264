"""'did you mean ...?' for a misspelt name, when a known one is close to it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """"; did you mean 'x'?" when a candidate is close to `word` (ignoring case: `TCV` is
    `tcv` misspelt), else ''."""
    by_lower = {c.lower(): c for c in sorted(set(candidates), reverse=True)}
    close = difflib.get_close_matches(word.lower(), sorted(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""
