"""Waiting for a state to change: one watch per id that clients wait on, shared by all its waiters.

A watch keeps what its waiters decide on: the version of the latest state known of its id (or that there
is none), never the state itself. Three things move it on:
- this replica's own writes, at once (`StatesService` reports each write and delete);
- reads of the id, which the waiters that arrive together share (one read however many arrive);
- the poller: every interval it asks the store whether anything may have been written by another process
  (SQLite tells by `PRAGMA data_version`; DynamoDB cannot tell, so always), and if so reads every watched
  id in consistent batch reads. However many clients wait on an id, a process reads it once an interval.

Reads and writes are in flight together and finish in any order, so each observation is known only to
have happened somewhere between two tickets: one taken when its call began, one when it finished (a
write's when it is reported). An observation begun after everything the watch has taken had finished is
newer than all of it, and is taken. One that overlaps them and agrees changes nothing; one that overlaps
and disagrees cannot be placed (a read begun before a write may answer after it; another program's
write may land between this replica's commit and its report): the watch then shows nothing until a read
begun afterwards settles it, and new waiters read for themselves. Whoever an acknowledged write was
acknowledged to, no watch shows an older state afterwards, and a waiter that arrives after it does not
wait on the older one.

A change wakes the waiters with the state it brought; they hold it until they answer, the watch does
not. A watch outlives its last waiter by `LINGER_SECONDS`, so that clients which wait again straight
after an answer find it, and with it the version they were just given, without a read of their own.
Closing (the process is stopping) ends every wait at once, and every later one as soon as it begins.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from app.errors import ProblemError, TooManyWaiters
from app.states.model import StateRecord
from app.store import StateStore

logger = logging.getLogger("statestore.watches")

LINGER_SECONDS = 5.0
IDS_PER_POLL_READ = 1000  # what one batchGet reads; the store splits it into the backend's own calls
# Reads one look makes while writes keep overlapping them before it answers from the last one, which
# began after the waiter arrived (so after any write acknowledged before it arrived).
MAX_READS_PER_LOOK = 3

Version = int | None
"""A state's version number, None when there is none."""
Wanted = Callable[[Version], bool]


def version_of(record: StateRecord | None) -> Version:
    return None if record is None else record.version_number


class WatchMeter(Protocol):
    """What the watches report: waiters now, ids read by the poller, and waits that ended with a change."""

    def waiters_changed(self, delta: int) -> None: ...
    def ids_polled(self, count: int) -> None: ...
    def change_delivered(self) -> None: ...


class _Change:
    """A change of a watch, once it happens: the state it brought, for the waiters it wakes. `newer` is
    the watch's next change, so that a waiter woken late answers the latest."""

    __slots__ = ("happened", "newer", "record", "version")

    def __init__(self) -> None:
        self.happened = asyncio.Event()
        self.newer: _Change | None = None
        self.record: StateRecord | None = None
        self.version: Version = None

    def latest(self) -> _Change:
        """The latest change that has happened, this one's or a later one's (this one has happened)."""
        change = self
        while change.newer is not None and change.newer.newer is not None:
            change = change.newer
        return change


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The state is still the version the waiter has (its answer would be 304); `awaiting` is the
    watch's next change, from the moment that was decided."""

    version: int
    awaiting: _Change


Look = StateRecord | None | Unchanged
"""What a waiter answers: the state it wanted (None: deleted), or that it has not changed."""


class Watch:
    """What is known of one id: its version, between which tickets that was seen, and its waiters."""

    __slots__ = (
        "_next",
        "horizon",
        "idle_since",
        "known",
        "persistence_id",
        "reading",
        "version",
        "waiters",
    )

    def __init__(self, persistence_id: str) -> None:
        self.persistence_id = persistence_id
        self.version: Version = None
        self.known = False  # False until the first observation, and while two cannot be placed
        self.horizon = 0  # the last ticket of every observation taken: one begun later is newer
        self.waiters = 0
        self.idle_since = 0.0
        self.reading: asyncio.Future[StateRecord | None] | None = None  # the read its waiters share
        self._next = _Change()

    @property
    def next_change(self) -> _Change:
        return self._next

    def unchanged(self) -> Unchanged:
        assert self.version is not None  # a waiter waits only on a state it has
        return Unchanged(self.version, self._next)

    def observe(self, record: StateRecord | None, began: int, ended: int) -> bool:
        """Take what an observation found between the tickets `began` and `ended` (now), when it is
        newer than all the watch has taken; whether it left the watch unsettled (a read must place it)."""
        version = version_of(record)
        if began <= self.horizon:
            self.horizon = ended
            if self.known and version == self.version:
                return False
            self.known = False
            return True
        self.horizon = ended
        if not self.known or version != self.version:
            self.version, self.known = version, True
            self._change(record)
        return False

    def _change(self, record: StateRecord | None) -> None:
        change = self._next
        change.record, change.version = record, self.version
        self._next = change.newer = _Change()
        change.happened.set()

    def interrupt(self) -> None:
        """Wake every waiter without a change (the process is stopping)."""
        self._next.happened.set()


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

    def ticket(self) -> int:
        """Taken by a write as it begins, and given back with its report."""
        return next(self._tickets)

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

    async def look(self, watch: Watch, wanted: Wanted) -> Look:
        """What a waiter that arrives now answers: the state when it is `wanted`, or `Unchanged` when the
        watch shows the one the waiter has. The state is read (a read shared with the waiters beside it)
        unless the watch shows what the waiter has."""
        record: StateRecord | None = None
        for _ in range(MAX_READS_PER_LOOK):
            if watch.known and not wanted(watch.version):
                return watch.unchanged()
            record = await self._read(watch)
            if watch.known and version_of(record) == watch.version:
                break
        if wanted(version_of(record)):
            return record
        assert record is not None  # not wanted: the version the waiter has
        return Unchanged(record.version_number, watch.next_change)

    async def wait(self, watch: Watch, wanted: Wanted, since: Unchanged, seconds: float) -> Look:
        """The state once the watch shows it `wanted`, from `since` (what `look` answered), or after
        `seconds`, or when closing: whichever comes first."""
        change = since.awaiting
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self.closing:
                    await change.happened.wait()
                    if self.closing:
                        break
                    latest = change.latest()
                    if watch.known and latest.version == watch.version and wanted(latest.version):
                        self._meter.change_delivered()
                        return latest.record
                    found = await self._look_again(watch, wanted)
                    if not isinstance(found, Unchanged):
                        return found
                    change = found.awaiting
        return await self._look_again(watch, wanted)

    async def _look_again(self, watch: Watch, wanted: Wanted) -> Look:
        """`look`, for a waiter that waited: a state it answers with is a change delivered."""
        found = await self.look(watch, wanted)
        if not isinstance(found, Unchanged):
            self._meter.change_delivered()
        return found

    def written(self, record: StateRecord, began: int) -> None:
        """This replica stored `record`, in a write that took the ticket `began` as it began."""
        self._observe(record.persistence_id, record, began)

    def deleted(self, persistence_id: str, began: int) -> None:
        self._observe(persistence_id, None, began)

    def _observe(self, persistence_id: str, record: StateRecord | None, began: int) -> None:
        watch = self._watches.get(persistence_id)
        if watch is not None:
            self._take(watch, record, began)

    def _take(self, watch: Watch, record: StateRecord | None, began: int) -> None:
        if watch.observe(record, began, next(self._tickets)) and watch.waiters:
            self._start_read(watch)  # its waiters must not wait on a state that may be gone

    async def _read(self, watch: Watch) -> StateRecord | None:
        """The id read, by a read begun now or already in flight: either one moves the watch on."""
        return await asyncio.shield(self._start_read(watch))

    def _start_read(self, watch: Watch) -> asyncio.Future[StateRecord | None]:
        if watch.reading is None:
            watch.reading = asyncio.ensure_future(self._read_now(watch))
            watch.reading.add_done_callback(self._read_done)
        return watch.reading

    async def _read_now(self, watch: Watch) -> StateRecord | None:
        began = next(self._tickets)
        try:
            record = await self._store.get(watch.persistence_id)
        finally:
            watch.reading = None
        self._take(watch, record, began)
        return record

    def _read_done(self, reading: asyncio.Future[StateRecord | None]) -> None:
        if not reading.cancelled() and reading.exception() is not None:
            self._poll_owed = True  # the waiters it failed see the error; the poller reads again

    def close(self) -> None:
        """End every wait now, and every later one as soon as it begins."""
        self.closing = True
        for watch in self._watches.values():
            watch.interrupt()

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
            began = next(self._tickets)
            read = await self._store.get_many(batch)
            found = {record.persistence_id: record for record in read.found}
            unread = set(read.unprocessed)  # left for the next round, not taken for deleted
            left_unread = left_unread or bool(unread)
            self._meter.ids_polled(len(batch))
            for persistence_id in batch:
                watch = self._watches.get(persistence_id)
                if persistence_id not in unread and watch is not None:
                    self._take(watch, found.get(persistence_id), began)
        return left_unread

    def _forget_idle(self) -> None:
        forget_before = asyncio.get_running_loop().time() - LINGER_SECONDS
        for persistence_id, watch in list(self._watches.items()):
            if watch.waiters == 0 and watch.idle_since < forget_before and watch.reading is None:
                del self._watches[persistence_id]
