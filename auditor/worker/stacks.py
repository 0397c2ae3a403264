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
            threads: Callable[[], dict[str, asyncio.AbstractEventLoop]] | None = None,
            signum: int = signal.SIGUSR1) -> None:
    """On `signum` (replacing any handler of the loop's for it), log `state()`, then the
    `task_stacks` of `loop` and of the other threads' loops `threads()` names."""

    def dump() -> None:
        parts = []
        try:
            parts.append(state() if state is not None else "")
            others = threads() if threads is not None else {}
        except Exception as exc:  # a half-built or stopping app: the stacks still help
            parts.append(f"(state unavailable: {exc!r})")
            others = {}
        parts.append(task_stacks(loop))
        for name, other in others.items():
            # Read from this thread while that one runs: a snapshot, good enough to tell.
            try:
                parts.append(f"thread {name}: " + task_stacks(other))
            except RuntimeError as exc:  # its task set changed while being read
                parts.append(f"thread {name}: (tasks unavailable: {exc})")
        log.warning("task stacks on signal %s:\n%s", signal.Signals(signum).name,
                    "\n".join(p for p in parts if p))

    loop.add_signal_handler(signum, dump)


def client_loops(app: Any) -> dict[str, asyncio.AbstractEventLoop]:
    """The Kafka consumer's own thread's event loop (faust runs the client there)."""
    loop = getattr(getattr(app.consumer, "_thread", None), "thread_loop", None)
    return {"consumer": loop} if loop is not None else {}


def _tps(found: Any) -> str:
    return ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in found or ())) or "none"


def consumer_state(app: Any) -> str:
    """What faust's consumer fetches, what its streams hold, and where each assigned partition
    (changelogs aside) is read from, committed and fetched to (faust-streaming's and aiokafka's
    internals: a snapshot for a person to read, not an interface)."""
    consumer = app.consumer
    client = consumer._thread._consumer
    fetcher = client._fetcher
    assignment = client._subscription.subscription.assignment
    routed = app.topics._tp_index
    assigned = sorted(tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog"))
    lines = [f"rebalancing {app.rebalancing}, generation {app.consumer_generation_id}, flow "
             f"control active {app.flow_control.is_active()}, consumer flow active "
             f"{consumer.flow_active}",
             f"fetching: {_tps(consumer._active_partitions)}",
             f"paused: {_tps(consumer._paused_partitions)}",
             f"held while a stream buffer is full: {_tps(consumer._buffered_partitions)}",
             f"delivered to no stream: {_tps(tp for tp in assigned if not routed.get(tp))}",
             f"client: reassigning {client._subscription.reassignment_in_progress}, fetches in "
             f"flight to nodes {sorted(fetcher._in_flight)}",
             "partition: read from/committed (faust); position/highwater/fetched (client)"]
    for tp in assigned:
        state = assignment.state_value(tp)
        fetched = fetcher._records.get(tp)
        lines.append(f"  {tp.topic}:{tp.partition}: {consumer._read_offset.get(tp)}/"
                     f"{consumer._committed_offset.get(tp)}; {state._position}/{state.highwater}/"
                     f"{type(fetched).__name__ if fetched else 'none'}"
                     f"{' paused' if state.paused else ''}")
    for topic in app.topics:
        queue = topic.queue
        lines.append(f"stream buffer of {'+'.join(topic.topics)}: {queue.qsize()} of "
                     f"{queue.maxsize}")
    return "\n".join(lines)
