"""The watches themselves, without a server: observations that finish out of order.

A waiter's own read and the poller's reads are in flight while writes are made, and a backend (DynamoDB,
dynalite) may answer a read begun before a write after the write is reported. Such a read must not undo
the write: a waiter would wait on a state already gone, until a poll (or, without one, its whole wait).
Each test holds a read in flight with an event, so the order is the test's, not the machine's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast

from app.errors import BackendUnavailable
from app.states.answers import BatchRead
from app.states.model import StateRecord
from app.states.watches import Watches
from app.store import StateStore

ID = "watched"


def record(version: int) -> StateRecord:
    return StateRecord(ID, version, "acme.State", b"\x0a\x01", 1, 0)


class Meter:
    def waiters_changed(self, delta: int) -> None:
        pass

    def ids_polled(self, count: int) -> None:
        pass

    def change_delivered(self) -> None:
        pass


class HeldStore:
    """Reads that answer `found` only once `release` is set; `reading` is set once one is in flight."""

    def __init__(self, found: StateRecord | None) -> None:
        self.found = found
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def get(self, persistence_id: str) -> StateRecord | None:
        self.reading.set()
        await self.release.wait()
        return self.found

    async def get_many(self, persistence_ids: Any) -> BatchRead:
        found = await self.get(ID)
        return BatchRead([] if found is None else [found], [])


def watches_on(store: HeldStore) -> Watches:
    return Watches(cast(StateStore, store), poll_seconds=60, max_waiters=10, meter=Meter())


async def overtaken_by_a_write(store: HeldStore, watches: Watches, reading: Awaitable[Any]) -> None:
    """Starts `reading`, and reports a write of version 2 while it is in flight; then lets it finish."""
    task = asyncio.ensure_future(reading)
    await store.reading.wait()
    watches.written(record(2))
    store.release.set()
    await task


async def test_a_waiters_read_begun_before_a_write_does_not_undo_it() -> None:
    store = HeldStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        await overtaken_by_a_write(store, watches, watches.read(watch, store.get))
        assert watch.latest == record(2)
        # The waiter has version 1: the write it would otherwise wait for is shown at once.
        changed = await watches.wait(watch, lambda latest: latest != record(1), seconds=5)
    assert changed == record(2)


async def test_a_poll_begun_before_a_write_does_not_undo_it() -> None:
    store = HeldStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        watch.observe(record(1), 0)
        await overtaken_by_a_write(store, watches, watches.poll())
        assert watch.latest == record(2)


async def test_a_read_begun_after_another_is_the_one_that_stays() -> None:
    """Two reads in flight, the later-begun one answering first: the earlier one's answer is older."""
    older, newer = HeldStore(record(1)), HeldStore(record(2))
    watches = watches_on(older)
    async with watches.watching(ID) as watch:
        first = asyncio.ensure_future(watches.read(watch, older.get))
        await older.reading.wait()
        newer.release.set()
        assert await watches.read(watch, newer.get) == record(2)
        older.release.set()
        assert await first == record(1)
        assert watch.latest == record(2)


class ToldOnceStore:
    """A store that tells of a change once, as SQLite's `data_version` does, whose first batch read fails
    (the backend busy) and whose second leaves the id unread; only the third reads it."""

    def __init__(self) -> None:
        self.told = False
        self.reads = 0

    async def changed_since_last_check(self) -> bool:
        told, self.told = self.told, True
        return not told

    async def get_many(self, persistence_ids: Any) -> BatchRead:
        self.reads += 1
        if self.reads == 1:
            raise BackendUnavailable("the SQLite file is busy or unavailable")
        if self.reads == 2:
            return BatchRead([], list(persistence_ids))
        return BatchRead([record(2)], [])


async def test_a_change_told_once_is_read_even_when_the_first_polls_fail_or_leave_it_unread() -> None:
    """The poller learns of a change once; a round that fails, or reads only some ids, leaves it owed."""
    store = ToldOnceStore()
    watches = Watches(cast(StateStore, store), poll_seconds=0.01, max_waiters=10, meter=Meter())
    async with watches.running(), watches.watching(ID) as watch:
        watch.observe(record(1), 0)
        changed = await watches.wait(watch, lambda latest: latest != record(1), seconds=10)
    assert changed == record(2)
    assert store.reads == 3
