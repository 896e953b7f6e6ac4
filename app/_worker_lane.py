"""One protobuf worker process and the calls waiting for it, taken in turn by caller.

A caller is whoever `CALLER` names for the request: its API key when the service has keys, else its
connection (`app.http.middleware` sets it). The lane runs one call at a time, and when several callers
wait it takes the next call from each in turn, so that a caller with many calls waiting (a client looping
over decoded batch reads on many connections under one key) delays another caller by one call at most,
not by all of its own. A caller holds at most `MAX_CALLS_PER_CALLER` of the lane's `MAX_QUEUED_CALLS`
places; one more call is a 503 with `Retry-After`, for that caller alone.

A worker that dies (killed, out of memory) is replaced, and the calls it held are made again on the new
one; a call that a second worker dies under too answers 503.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from app.errors import WorkerUnavailable

MAX_QUEUED_CALLS = 64
MAX_CALLS_PER_CALLER = 16
WORKER_ATTEMPTS = 2

CALLER: ContextVar[Hashable] = ContextVar("statestore_protobuf_caller", default=None)
"""Who the current request's conversions are counted to."""

_Result = TypeVar("_Result")


class WorkerLane:
    def __init__(
        self, initializer: Callable[[tuple[Path, ...]], None], descriptor_sets: tuple[Path, ...]
    ) -> None:
        self._initializer = initializer
        self._descriptor_sets = descriptor_sets
        self._executor: ProcessPoolExecutor | None = None
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}  # in turn order
        self._queued = 0
        self._running = False

    async def run(self, function: Callable[..., _Result], *arguments: Any) -> _Result:
        """`function(*arguments)` in the lane's worker process, once it is this call's turn."""
        turn = self._queue(CALLER.get())
        try:
            await turn
            return await self._call(function, arguments)
        finally:
            self._leave(turn)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def _queue(self, caller: Hashable) -> asyncio.Future[None]:
        if self._queued >= MAX_QUEUED_CALLS:
            raise WorkerUnavailable(
                f"{MAX_QUEUED_CALLS} protobuf conversions are waiting for the worker already; retry later"
            )
        calls = self._waiting.setdefault(caller, deque())
        if len(calls) >= MAX_CALLS_PER_CALLER:
            raise WorkerUnavailable(
                f"{MAX_CALLS_PER_CALLER} protobuf conversions of this client are waiting already; retry later"
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        calls.append(turn)
        self._queued += 1
        self._give_turn()
        return turn

    def _give_turn(self) -> None:
        """The next caller's first call runs, when none does; the caller goes to the end of the turns."""
        if self._running or not self._waiting:
            return
        caller = next(iter(self._waiting))
        calls = self._waiting.pop(caller)
        turn = calls.popleft()
        if calls:
            self._waiting[caller] = calls
        self._queued -= 1
        self._running = True
        turn.set_result(None)

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self._running = False  # it had its turn (and may have been cancelled while it ran)
        else:
            turn.cancel()
            for caller, calls in list(self._waiting.items()):
                if turn in calls:
                    calls.remove(turn)
                    self._queued -= 1
                    if not calls:
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
