"""What the end-to-end tests share: the installed console script, free ports, waiting with a
deadline, a replay serving its metrics, and stopping the processes they start."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

T = TypeVar("T")


def console_script(name: str = "auditor") -> str:
    """The console script as pip installed it, beside the interpreter running the tests."""
    found = shutil.which(name, path=str(BIN))
    if found is None:
        raise AssertionError(f"no {name} console script in {BIN}: pip install -e '.[test]'")
    return found


AUDITOR = console_script()


def auditor(*args: str, stdin: bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """Runs `auditor ARGS...` to completion, as a user does from a shell."""
    return subprocess.run([AUDITOR, *args], input=stdin, capture_output=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T | None], what: str, timeout: float = 60.0,
             proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
             interval: float = 0.25) -> T:
    """Polls `predicate` until it returns something truthy; connection errors count as "not
    yet". Fails at the deadline, or at once if `proc` has exited (with its log)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited ({proc.returncode}) while waiting for "
                                 f"{what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 f"{_tail(log)}")
        time.sleep(interval)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill what does not stop within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def serving_replay(events: Path, rules: Path, log: Path,
                   timeout: float = 180.0) -> Iterator[str]:
    """`auditor replay --metrics-port 0 -q` of `events` on loopback, until the block ends; the
    `host:port` it serves its metrics on."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [AUDITOR, "replay", str(events), "--rules", str(rules), "--metrics-port", "0",
             "--metrics-host", "127.0.0.1", "-q"],
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        match = wait_for(
            lambda: re.search(r"serving metrics on http://(127\.0\.0\.1:\d+)/metrics",
                              log.read_text(errors="replace")),
            "the replay serving its metrics", timeout, proc, log)
        yield match.group(1)
    finally:
        stop(proc)


def _tail(log: Path | None, chars: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-chars:]
