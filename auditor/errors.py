"""One root error for everything the auditor refuses, knowing where the bad input was."""

from __future__ import annotations


class AuditorError(Exception):
    """Root of the auditor's own errors; `source` and `line` point at the offending input."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line

    def location(self) -> str:
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class RuleError(AuditorError):
    """A rule file that cannot be loaded; the rules already running stay in force."""


class RuleErrors(AuditorError):
    """Every error found while checking a rules directory (the collect-all mode)."""

    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
