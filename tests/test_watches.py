"""The watches themselves, without a server: observations that finish out of order.

A waiter's own read and the poller's reads are in flight while writes are made, and may take their
snapshot before or after a write commits and finish before or after it is reported; another program may
write between this replica's commit and its report. Whatever the order, once a write is reported (and so
acknowledged), no watch shows an older state, and a waiter that arrives afterwards does not wait on one.
Each test holds reads and writes on events, so the order is the test's, not the machine's.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from app.errors import BackendUnavailable
from app.states.answers import BatchRead
from app.states.model import StateRecord
from app.states.watches import Look, Unchanged, Version, Watch, Watches
from app.store import StateStore

ID = "watched"


def record(version: int, persistence_id: str = ID, payload: bytes = b"\x0a\x01") -> StateRecord:
    return StateRecord(persistence_id, version, "acme.State", payload, 1, 0)


def having(version: int) -> Callable[[Version], bool]:
    """What a waiter that has `version` wants: any other state."""
    return lambda shown: shown != version


class Meter:
    def waiters_changed(self, delta: int) -> None:
        pass

    def ids_polled(self, count: int) -> None:
        pass

    def change_delivered(self) -> None:
        pass


async def settle() -> None:
    """Let every task that can go on do so (none sleeps: the store's calls wait on events only)."""
    for _ in range(20):
        await asyncio.sleep(0)


class SteppedStore:
    """A store holding one id. A held read waits for `snapshot` before it takes what is stored, then for
    `finish` before it answers; other reads answer at once. `reads` counts point reads."""

    def __init__(self, stored: StateRecord | None) -> None:
        self.stored = stored
        self.hold = False
        self.reading = asyncio.Event()
        self.snapshot = asyncio.Event()
        self.finish = asyncio.Event()
        self.reads = 0

    async def _read(self) -> StateRecord | None:
        if not self.hold:
            return self.stored
        self.hold = False
        self.reading.set()
        await self.snapshot.wait()
        found = self.stored
        await self.finish.wait()
        return found

    async def get(self, persistence_id: str) -> StateRecord | None:
        self.reads += 1
        return await self._read()

    async def get_many(self, persistence_ids: Any) -> BatchRead:
        found = await self._read()
        return BatchRead([] if found is None else [found], [])

    async def changed_since_last_check(self) -> bool:
        return True


def watches_on(store: SteppedStore, poll_seconds: float = 60) -> Watches:
    return Watches(cast(StateStore, store), poll_seconds=poll_seconds, max_waiters=1000, meter=Meter())


async def answer(watches: Watches, watch: Watch, version: int, seconds: float = 10) -> Look:
    """What a waiter that has `version` answers: at once, or once it has waited."""
    found = await watches.look(watch, having(version))
    if isinstance(found, Unchanged):
        return await watches.wait(watch, having(version), found, seconds)
    return found


def version_answered(found: Look) -> Version | str:
    return (
        f"304 {found.version}"
        if isinstance(found, Unchanged)
        else None
        if found is None
        else found.version_number
    )


WRITE = ("write begins", "commit", "report")
READ = ("read begins", "snapshot", "read finishes")


def interleavings() -> Iterator[tuple[str, ...]]:
    """Every order of a write's three steps among a read's three steps."""
    for places in itertools.combinations(range(6), 3):
        writes, reads = iter(WRITE), iter(READ)
        yield tuple(next(writes) if step in places else next(reads) for step in range(6))


@pytest.mark.parametrize("reader", ["look", "poll"])
@pytest.mark.parametrize("order", list(interleavings()), ids=lambda order: " / ".join(order))
async def test_no_order_of_a_read_and_a_write_shows_the_older_state_after_the_report(
    order: tuple[str, ...], reader: str
) -> None:
    """A waiter's read or a poll, begun, snapshotted and finished at every point of a write of version 2
    over version 1: from the write's report on, the watch never shows version 1; once the reads are done
    it shows 2, a waiter on 1 is answered 2 and a waiter on 2 waits."""
    store = SteppedStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        if reader == "poll":
            assert version_answered(await watches.look(watch, having(1))) == "304 1"
        tickets: list[int] = []
        reading: asyncio.Future[Any] | None = None
        reported = False
        for step in order:
            if step == "write begins":
                tickets.append(watches.ticket())
            elif step == "commit":
                store.stored = record(2)
            elif step == "report":
                watches.written(record(2), tickets[0])
                reported = True
            elif step == "read begins":
                store.hold = True
                started = watches.poll() if reader == "poll" else answer(watches, watch, 1)
                reading = asyncio.ensure_future(started)
                await store.reading.wait()
            elif step == "snapshot":
                store.snapshot.set()
            else:
                store.finish.set()
            await settle()
            if reported:
                assert not (watch.known and watch.version == 1), f"version 1 shown after {step}"
        assert reading is not None
        await asyncio.wait_for(reading, 10)
        if reader == "look":
            assert version_answered(reading.result()) == 2
        await settle()
        assert watch.known
        assert watch.version == 2
        assert version_answered(await answer(watches, watch, 1)) == 2
        assert version_answered(await watches.look(watch, having(2))) == "304 2"


async def test_a_write_reported_after_another_programs_newer_write_was_polled_does_not_undo_it() -> None:
    """This replica's write of 2 commits; another program writes 3, which the poller reads; then the write
    of 2 is reported. Before, the watch went back to 2, and on SQLite nothing read the id again: a waiter
    on 2 waited its whole wait and was answered 304 while 3 was stored."""
    store = SteppedStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        assert version_answered(await watches.look(watch, having(1))) == "304 1"
        began = watches.ticket()
        store.stored = record(3)  # over the 2 this replica committed
        await watches.poll()
        assert watch.version == 3
        watches.written(record(2), began)
        await settle()
        assert (watch.known, watch.version) == (True, 3)
        assert version_answered(await answer(watches, watch, 2, seconds=10)) == 3
        assert version_answered(await watches.look(watch, having(3))) == "304 3"


async def test_writes_of_one_id_reported_out_of_order_leave_the_watch_on_the_stored_state() -> None:
    """Two writes in flight (2, then 3 over it), the answer of the later one arriving first, as concurrent
    PutItem calls may: before, the watch showed 2 after both, and woke a waiter on 3 with version 2."""
    store = SteppedStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        assert version_answered(await watches.look(watch, having(1))) == "304 1"
        first, second = watches.ticket(), watches.ticket()
        store.stored = record(3)
        waiter_on_3 = asyncio.ensure_future(watches.wait(watch, having(3), watch.unchanged(), 10))
        watches.written(record(3), second)
        watches.written(record(2), first)
        await settle()
        assert (watch.known, watch.version) == (True, 3)
        assert not waiter_on_3.done()
        watches.close()
        assert version_answered(await waiter_on_3) == "304 3"


async def test_waiters_arriving_together_on_an_id_nobody_watches_share_one_read() -> None:
    store = SteppedStore(record(1))
    store.hold = True
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        looks = [asyncio.ensure_future(watches.look(watch, having(1))) for _ in range(50)]
        await store.reading.wait()
        store.snapshot.set()
        store.finish.set()
        answers = await asyncio.gather(*looks)
    assert {version_answered(found) for found in answers} == {"304 1"}
    assert store.reads == 1


async def test_a_read_begun_after_another_is_the_one_that_stays() -> None:
    """Two polls in flight, the later-begun one answering first: the earlier one's answer is older."""
    store = SteppedStore(record(1))
    watches = watches_on(store)
    async with watches.watching(ID) as watch:
        store.hold = True
        first = asyncio.ensure_future(watches.poll())
        await store.reading.wait()
        store.snapshot.set()
        await settle()
        store.stored = record(2)
        await watches.poll()
        assert watch.version == 2
        store.finish.set()
        await first
        await settle()
        assert (watch.known, watch.version) == (True, 2)


async def test_a_watch_keeps_no_payload() -> None:
    """50 waiters on 50 states of 200 KB each: once they wait, the watches hold their versions only."""
    payload = b"\x0a" * 200_000
    stores = {f"big-{n}": record(1, f"big-{n}", payload + bytes([n])) for n in range(50)}

    class Many:
        async def get(self, persistence_id: str) -> StateRecord | None:
            return stores.get(persistence_id)

    watches = Watches(cast(StateStore, Many()), poll_seconds=60, max_waiters=1000, meter=Meter())

    async def waiter(persistence_id: str, waited: asyncio.Event) -> Look:
        async with watches.watching(persistence_id) as watch:
            found = await watches.look(watch, having(1))
            assert isinstance(found, Unchanged)
            waited.set()
            return await watches.wait(watch, having(1), found, 60)

    tracemalloc.start()
    try:
        ready = [asyncio.Event() for _ in stores]
        waiters = [asyncio.ensure_future(waiter(i, event)) for i, event in zip(stores, ready, strict=True)]
        for event in ready:
            await event.wait()
        stores.clear()
        del payload
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    watches.close()
    assert {version_answered(found) for found in await asyncio.gather(*waiters)} == {"304 1"}
    assert held < 1_000_000, f"{held} bytes held by 50 waiters"


class ToldOnceStore:
    """A store that tells of a change once, as SQLite's `data_version` does, whose first batch read fails
    (the backend busy) and whose second leaves the id unread; only the third reads it."""

    def __init__(self) -> None:
        self.told = False
        self.reads = 0

    async def get(self, persistence_id: str) -> StateRecord | None:
        return record(1)

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
        changed = await answer(watches, watch, 1)
    assert version_answered(changed) == 2
    assert store.reads == 3
