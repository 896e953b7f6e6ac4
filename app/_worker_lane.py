"""One protobuf worker process and the calls waiting for it, shared fairly between callers.

A caller is whoever `CALLER` names for the request: its API key when the service has keys, else its
connection (`app.http.middleware` sets it). The lane runs one call at a time and shares the worker by
cost (the bytes a call hands over), not by count: self-clocked fair queuing, each call tagged at arrival
with where its caller's share would end, `max(now, its caller's last tag) + cost`, and the waiting call
with the smallest tag going first (`now` is the tag of the call that last had its turn). A caller looping
over large decoded reads thus runs its next call only after the smaller calls of others that arrived
meanwhile, while a caller alone gets the whole worker. A
caller holds at most `MAX_CALLS_PER_CALLER` of the lane's `MAX_QUEUED_CALLS` places; one more call is a
503 with `Retry-After`, for that caller alone.

A worker that dies (killed, out of memory) is replaced, and the calls it held are made again on the new
one; a call that a second worker dies under too answers 503.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.errors import WorkerUnavailable

MAX_QUEUED_CALLS = 256  # the requests the service takes at once, by default: each may wait its turn
MAX_CALLS_PER_CALLER = 64
WORKER_ATTEMPTS = 2
REMEMBERED_CALLERS = 4096  # whose last call's end is kept, so that a caller gone a moment keeps its place

CALLER: ContextVar[Hashable] = ContextVar("statestore_protobuf_caller", default=None)
"""Who the current request's conversions are counted to."""

_Result = TypeVar("_Result")


@dataclass(slots=True)
class _Turn:
    ends: float
    given: asyncio.Future[None]


class WorkerLane:
    def __init__(
        self, initializer: Callable[[tuple[Path, ...]], None], descriptor_sets: tuple[Path, ...]
    ) -> None:
        self._initializer = initializer
        self._descriptor_sets = descriptor_sets
        self._executor: ProcessPoolExecutor | None = None
        self._waiting: dict[Hashable, deque[_Turn]] = {}
        self._ends: OrderedDict[Hashable, float] = OrderedDict()
        self._now = 0.0  # the tag of the call that had the last turn
        self._queued = 0
        self._running = False

    async def run(self, function: Callable[..., _Result], *arguments: Any, cost: float) -> _Result:
        """`function(*arguments)` in the lane's worker process, once it is this call's turn; `cost` is what
        the call weighs against the caller's share (the bytes it hands over)."""
        turn = self._queue(CALLER.get(), cost)
        try:
            await turn.given
            return await self._call(function, arguments)
        finally:
            self._leave(turn)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def _queue(self, caller: Hashable, cost: float) -> _Turn:
        if self._queued >= MAX_QUEUED_CALLS:
            raise WorkerUnavailable(
                f"{MAX_QUEUED_CALLS} protobuf conversions are waiting for the worker already; retry later"
            )
        turns = self._waiting.setdefault(caller, deque())
        if len(turns) >= MAX_CALLS_PER_CALLER:
            raise WorkerUnavailable(
                f"{MAX_CALLS_PER_CALLER} protobuf conversions of this client are waiting already; retry later"
            )
        ends = max(self._now, self._ends.get(caller, 0.0)) + max(cost, 1.0)
        self._ends[caller] = ends
        self._ends.move_to_end(caller)
        if len(self._ends) > REMEMBERED_CALLERS:
            self._ends.popitem(last=False)
        turn = _Turn(ends, asyncio.get_running_loop().create_future())
        turns.append(turn)
        self._queued += 1
        self._give_turn()
        return turn

    def _give_turn(self) -> None:
        """The waiting call with the smallest tag runs, when none does."""
        if self._running or not self._waiting:
            return
        caller = min(self._waiting, key=lambda waiting: self._waiting[waiting][0].ends)
        turns = self._waiting[caller]
        turn = turns.popleft()
        if not turns:
            del self._waiting[caller]
        self._queued -= 1
        self._now = turn.ends
        self._running = True
        turn.given.set_result(None)

    def _leave(self, turn: _Turn) -> None:
        if turn.given.done() and not turn.given.cancelled():
            self._running = False  # it had its turn (and may have been cancelled while it ran)
        else:
            turn.given.cancel()
            for caller, turns in list(self._waiting.items()):
                if turn in turns:
                    turns.remove(turn)
                    self._queued -= 1
                    if not turns:
                        del self._waiting[caller]
                    break
        self._give_turn()

    async def _call(self, function: Callable[..., _Result], arguments: tuple[Any, ...]) -> _Result:
        # A worker that died (idle, or under any call it held) is replaced and the call made again, once:
        # a call the new worker dies under too is most likely what kills it.
        for _ in range(WORKER_ATTEMPTS):
            executor = self._running_executor()
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, function, *arguments)
            except BrokenProcessPool:
                self._forget(executor)
        raise WorkerUnavailable("the protobuf worker process stopped under this call; retry later")

    def _running_executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                # A fresh interpreter: forking a process that runs an event loop and threads is unsafe.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=self._initializer,
                initargs=(self._descriptor_sets,),
            )
        return self._executor

    def _forget(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:
            self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
