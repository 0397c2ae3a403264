"""Hot reload: notice a change in the rules directory, validate it, and hand over a new pack.

Polling, not inotify: it works the same on every filesystem, including the symlink swaps of a
Kubernetes ConfigMap volume, and a check costs one stat per file. A change that does not load
is refused as a whole: the rules in force stay, the errors are logged, and the caller's
`on_refused` sets auditor_rules_reload_success to 0 until a good change arrives.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from auditor.errors import RuleError, RuleErrors
from auditor.rules.exceptions import expired_warning
from auditor.rules.loader import load_rule_pack
from auditor.rules.pack import RulePack

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 2.0


def fingerprint(directory: Path) -> str:
    """Changes whenever a YAML file at the top of `directory` is added, removed or edited."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.y*ml")):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:  # removed between glob and read: the next poll sees the new state
            digest.update(path.name.encode() + b"\0?")
    return digest.hexdigest()


class RuleReloader:
    def __init__(self, directory: Path, on_loaded: Callable[[RulePack], None],
                 on_refused: Callable[[RuleErrors], None] | None = None) -> None:
        self.directory = directory
        self.on_loaded = on_loaded
        self.on_refused = on_refused or (lambda errors: None)
        self._seen = fingerprint(directory)

    def poll(self) -> bool | None:
        """Reload if the directory changed: True when a new pack is in force, False when the
        change was refused, None when nothing changed."""
        current = fingerprint(self.directory)
        if current == self._seen:
            return None
        self._seen = current  # a refused change is not retried until the files change again
        try:
            pack = load_rule_pack(self.directory)
        except RuleErrors as exc:
            return self._refuse(exc)
        except Exception as exc:  # a loader bug must not take the running rules down with it
            log.exception("rules reload failed unexpectedly")
            return self._refuse(RuleErrors([RuleError(f"cannot load: {exc!r}",
                                                      str(self.directory))]))
        self.on_loaded(pack)
        log.info("rules reloaded from %s: %d rules", self.directory, pack.rule_count)
        for rule_id, exception in pack.expired_exceptions(datetime.now(UTC).date()):
            log.warning("%s", expired_warning(rule_id, exception))
        return True

    def _refuse(self, exc: RuleErrors) -> bool:
        for error in exc.errors:
            log.error("rules reload refused: %s", error)
        log.error("rules reload refused; the rules loaded before stay in force")
        self.on_refused(exc)
        return False
