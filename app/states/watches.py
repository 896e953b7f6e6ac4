"""Waiting for a state to change: one watch per id that clients wait on, shared by all its waiters.

A watch keeps the latest state known of its id. Three things move it on:
- this replica's own writes, at once (`StatesService` reports each write and delete);
- a waiter's own consistent read, when the watch did not already show what the waiter has;
- the poller: every interval it asks the store whether anything may have been written by another process
  (SQLite tells by `PRAGMA data_version`; DynamoDB cannot tell, so always), and if so reads every watched
  id in consistent batch reads. However many clients wait on an id, a process reads it once an interval.
Reads are in flight while writes are made, and may finish in any order: each observation carries a ticket
taken when its read began (a write's, when it is reported), and a watch takes none older than the one it
shows, so that a read begun before a write never undoes the write.

A watch outlives its last waiter by `LINGER_SECONDS`, so that clients which wait again straight after an
answer find it, and with it the state they were just given, without a read of their own.
Closing (the process is stopping) ends every wait at once, and every later one as soon as it begins.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from app.errors import ProblemError, TooManyWaiters
from app.states.model import StateRecord
from app.store import StateStore

logger = logging.getLogger("statestore.watches")

LINGER_SECONDS = 5.0
IDS_PER_POLL_READ = 1000  # what one batchGet reads; the store splits it into the backend's own calls

Wanted = Callable[[StateRecord | None], bool]


class WatchMeter(Protocol):
    """What the watches report: waiters now, ids read by the poller, and waits that ended with a change."""

    def waiters_changed(self, delta: int) -> None: ...
    def ids_polled(self, count: int) -> None: ...
    def change_delivered(self) -> None: ...


class Watch:
    """The latest known state of one id, and the waiters that wait for it to become what they want."""

    __slots__ = ("_changed", "idle_since", "known", "latest", "persistence_id", "ticket", "waiters")

    def __init__(self, persistence_id: str) -> None:
        self.persistence_id = persistence_id
        self.latest: StateRecord | None = None
        self.known = False
        self.ticket = 0  # of the observation `latest` comes from: an older one cannot undo it
        self.waiters = 0
        self.idle_since = 0.0
        self._changed = asyncio.Event()

    def shows(self, wanted: Wanted) -> bool:
        return self.known and wanted(self.latest)

    def observe(self, record: StateRecord | None, ticket: int) -> None:
        """Take `record` as the latest state, waking the waiters when it differs, unless the watch shows
        an observation newer than `ticket` (the ticket taken when the read of `record` began)."""
        if ticket < self.ticket:
            return
        self.ticket = ticket
        if not self.known or record != self.latest:
            self.latest, self.known = record, True
            self.wake()

    def wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()


class Watches:
    def __init__(self, store: StateStore, poll_seconds: float, max_waiters: int, meter: WatchMeter) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._max_waiters = max_waiters
        self._meter = meter
        self._watches: dict[str, Watch] = {}
        self._waiters = 0
        self._tickets = itertools.count(1)
        # A change the poller was told of but has not read in full yet (a failed round, or ids the store
        # left unread): the store tells of a change once (SQLite's `data_version`), so it is owed until read.
        self._poll_owed = False
        self.closing = False

    @asynccontextmanager
    async def watching(self, persistence_id: str) -> AsyncIterator[Watch]:
        """The watch of an id, counted as one more waiter for as long as the block runs; 503 beyond the
        limit."""
        if self._waiters >= self._max_waiters:
            raise TooManyWaiters(f"{self._max_waiters} requests are waiting already; retry later")
        watch = self._watches.get(persistence_id)
        if watch is None:
            watch = self._watches[persistence_id] = Watch(persistence_id)
        self._waiters += 1
        watch.waiters += 1
        self._meter.waiters_changed(1)
        try:
            yield watch
        finally:
            self._waiters -= 1
            watch.waiters -= 1
            watch.idle_since = asyncio.get_running_loop().time()
            self._meter.waiters_changed(-1)

    async def read(
        self, watch: Watch, read: Callable[[str], Awaitable[StateRecord | None]]
    ) -> StateRecord | None:
        """A waiter's own read of the watch's id: what it found, which the watch takes unless it has seen a
        newer state meanwhile (a write made while the read was in flight)."""
        ticket = next(self._tickets)
        record = await read(watch.persistence_id)
        watch.observe(record, ticket)
        return record

    async def wait(self, watch: Watch, wanted: Wanted, seconds: float) -> StateRecord | None:
        """The watch's latest state once it is `wanted`, or after `seconds`, or when closing: whichever
        comes first."""
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self.closing and not watch.shows(wanted):
                    await watch.changed()
        if watch.shows(wanted):
            self._meter.change_delivered()
        return watch.latest

    def written(self, record: StateRecord) -> None:
        """This replica stored `record`."""
        self._observe(record.persistence_id, record)

    def deleted(self, persistence_id: str) -> None:
        self._observe(persistence_id, None)

    def _observe(self, persistence_id: str, record: StateRecord | None) -> None:
        watch = self._watches.get(persistence_id)
        if watch is not None:
            watch.observe(record, next(self._tickets))

    def close(self) -> None:
        """End every wait now, and every later one as soon as it begins."""
        self.closing = True
        for watch in self._watches.values():
            watch.wake()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The poller, for as long as the block runs; every wait ends with it."""
        poller = asyncio.create_task(self._poll_forever(), name="watch-poller")
        try:
            yield
        finally:
            self.close()
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            self._forget_idle()
            try:
                await self.poll_round()
            except ProblemError as exc:  # the backend is down or throttling: the next round tries again
                logger.warning("a poll of the watched states failed: %s", exc.detail)
            except Exception:
                logger.exception("a poll of the watched states failed unexpectedly")

    async def poll_round(self) -> None:
        """One round of the poller: read the watched ids if anything may have changed since the last
        round, or if the last round did not read them all."""
        if not self._watches:
            return
        if await self._store.changed_since_last_check():
            self._poll_owed = True
        if self._poll_owed:
            self._poll_owed = await self.poll()

    async def poll(self) -> bool:
        """Read every watched id once, in batches, and move the watches on; whether some ids were left
        unread (for the next round)."""
        watched = list(self._watches)
        left_unread = False
        for start in range(0, len(watched), IDS_PER_POLL_READ):
            batch = watched[start : start + IDS_PER_POLL_READ]
            ticket = next(self._tickets)
            read = await self._store.get_many(batch)
            found = {record.persistence_id: record for record in read.found}
            unread = set(read.unprocessed)  # left for the next round, not taken for deleted
            left_unread = left_unread or bool(unread)
            self._meter.ids_polled(len(batch))
            for persistence_id in batch:
                watch = self._watches.get(persistence_id)
                if persistence_id not in unread and watch is not None:
                    watch.observe(found.get(persistence_id), ticket)
        return left_unread

    def _forget_idle(self) -> None:
        forget_before = asyncio.get_running_loop().time() - LINGER_SECONDS
        for persistence_id, watch in list(self._watches.items()):
            if watch.waiters == 0 and watch.idle_since < forget_before:
                del self._watches[persistence_id]
