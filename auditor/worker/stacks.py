"""What every asyncio task of the worker is waiting on, for an operator looking at a stuck worker.

`kill -USR1 <pid>` logs each task's whole await chain -- through the coroutines and async
generators it awaits, down to the future it is parked on -- so a worker that stalls tells where,
without a debugger. (Python's own task stacks stop at a task's outermost coroutine.)
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import logging
import re
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)
MAX_DEPTH = 100  # frames per task, at most
# What `await` and `async for` put between two frames: not worth a line of their own.
_WRAPPER = re.compile(r"coroutine_wrapper|async_generator_asend|async_generator_athrow|"
                      r"FutureIter")


def _inner(awaitable: Any) -> Any:
    """What `awaitable` (a coroutine, generator or async generator, suspended) is awaiting."""
    for attribute in ("cr_await", "ag_await", "gi_yieldfrom"):
        inner = getattr(awaitable, attribute, None)
        if inner is not None:
            return inner
    if isinstance(awaitable, asyncio.Future) or _frame_attribute(awaitable):
        return None  # parked on a future, or a coroutine not awaiting another
    # `async for` awaits the generator's __anext__, and `await x` of an object awaits its
    # __await__: wrappers that name what they wrap only to gc.
    for referent in gc.get_referents(awaitable):
        if any(hasattr(referent, a) for a in ("cr_await", "ag_await", "gi_yieldfrom")):
            return referent
    return None


def _frame_attribute(awaitable: Any) -> bool:
    return any(hasattr(awaitable, a) for a in ("cr_frame", "ag_frame", "gi_frame"))


def _frame(awaitable: Any) -> FrameType | None:
    for attribute in ("cr_frame", "ag_frame", "gi_frame"):
        frame = getattr(awaitable, attribute, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def await_chain(task: asyncio.Task[Any]) -> Iterator[str]:
    """`task`'s await chain, outermost first, one line per frame, then what it is parked on."""
    awaitable: Any = task.get_coro()
    for _ in range(MAX_DEPTH):
        if awaitable is None:
            break
        frame = _frame(awaitable)
        if frame is not None:
            code, number = frame.f_code, frame.f_lineno  # None: not started, or compiled code
            line = linecache.getline(code.co_filename, number).strip() if number else ""
            yield f"  {code.co_filename}:{number} in {code.co_name}: {line}"
        elif not _WRAPPER.search(type(awaitable).__name__):
            yield f"  awaiting {awaitable!r}"
        awaitable = _inner(awaitable)
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        yield f"  parked on {waiter!r}"


def task_stacks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every task of `loop` (the running loop by default) with its await chain."""
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    lines = [f"{len(tasks)} asyncio tasks"]
    for task in tasks:
        state = "done" if task.done() else "pending"
        lines.append(f"task {task.get_name()} ({state}): {task.get_coro()!r}")
        try:
            lines += await_chain(task)
        except Exception as exc:  # one odd awaitable must not cost the other tasks' stacks
            lines.append(f"  (stack unavailable: {exc!r})")
    return "\n".join(lines)


def install(loop: asyncio.AbstractEventLoop, state: Callable[[], str] | None = None,
            signum: int = signal.SIGUSR1) -> None:
    """Log `task_stacks`, and `state()` before them, on `signum` (replacing any handler of the
    loop's for it)."""

    def dump() -> None:
        try:
            described = state() + "\n" if state is not None else ""
        except Exception as exc:  # a half-built or stopping app: the stacks still help
            described = f"(state unavailable: {exc!r})\n"
        log.warning("task stacks on signal %s:\n%s%s", signal.Signals(signum).name,
                    described, task_stacks(loop))

    loop.add_signal_handler(signum, dump)
