"""One thread that applies every write to the SQLite file, committing the writes that queue up together.

The whole group shares one `BEGIN IMMEDIATE` ... `COMMIT` and so one fsync: under load, a disk sync
per group instead of per write; alone, a write commits as soon as it is applied. A write must leave
the file as it found it when it fails: one statement does (SQLite undoes a failed statement), and a
write of several statements wraps them in `savepoint`. A failure that makes SQLite abandon the whole
transaction (a full disk, an I/O error) fails the whole group, since none of it is then durable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

MAX_GROUP = 128


class _Write(NamedTuple):
    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class _Outcome(NamedTuple):
    value: Any
    error: BaseException | None


class GroupCommitWriter:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Apply `work` with the writes queued with it; its result once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Write(work, future, loop))
        return await future

    def close(self) -> None:
        """Finish the queued writes, then stop the thread and close the connection."""
        self._queue.put(None)
        self._thread.join()
        self._connection.close()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    self._queue.put(None)
                    break
                group.append(queued)
            for write, outcome in zip(group, self._commit(group), strict=True):
                _deliver(write, outcome)

    def _commit(self, group: list[_Write]) -> list[_Outcome]:
        try:
            self._connection.execute("BEGIN IMMEDIATE")
            outcomes = [self._apply(write) for write in group]
            self._connection.execute("COMMIT")
        except sqlite3.Error as exc:
            # Nothing of the group is durable, whatever each write returned.
            with suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")
            return [_Outcome(None, exc)] * len(group)
        return outcomes

    def _apply(self, write: _Write) -> _Outcome:
        try:
            return _Outcome(write.work(self._connection), None)
        except Exception as exc:  # handed to the waiting request, which re-raises it
            if not self._connection.in_transaction:
                raise sqlite3.OperationalError("SQLite rolled back the transaction") from exc
            return _Outcome(None, exc)


@contextmanager
def savepoint(connection: sqlite3.Connection) -> Iterator[None]:
    """Make several statements of one write atomic within the group's transaction."""
    connection.execute("SAVEPOINT write")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK TO write")
        connection.execute("RELEASE write")
        raise
    connection.execute("RELEASE write")


def _deliver(write: _Write, outcome: _Outcome) -> None:
    def resolve() -> None:
        if write.future.cancelled():
            return
        if outcome.error is not None:
            write.future.set_exception(outcome.error)
        else:
            write.future.set_result(outcome.value)

    with suppress(RuntimeError):  # the loop closed while the write ran: nobody waits any more
        write.loop.call_soon_threadsafe(resolve)
