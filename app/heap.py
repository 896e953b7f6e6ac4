"""The process's heap: the start-up heap frozen out of garbage collection, and freed memory handed back to
the system once enough of it is resident.

glibc keeps freed memory for later, so that memory held for slow readers stays resident after they leave.
Serving every block above 128 KiB from a mapping of its own would give it back at once, but maps, faults
in and unmaps every large payload's buffers on every request. So glibc keeps its own threshold, and
`handing_back_freed_memory` watches what is resident but not in use, once a second, and runs `malloc_trim`
when that has grown by `TRIM_AFTER_BYTES` since the last time (docs/bounded-answers.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

# Collect the youngest generation after 10,000 net allocations, not 700: with many requests in flight,
# most young objects are still alive at a collection, so frequent ones rescan the same objects.
YOUNG_GENERATION_THRESHOLD = 10_000
# What may stay resident, freed but kept by the allocator, before it is handed back: a trim costs the
# page faults of whatever of it the next requests take again, so not after every large answer.
TRIM_AFTER_BYTES = 32 * 1024 * 1024
CHECK_SECONDS = 1.0


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (2.33 and later): the allocator's totals over all its arenas."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True)
class _Glibc:
    malloc_trim: Callable[[int], int]
    mallinfo2: Callable[[], _MallInfo2]

    def bytes_in_use(self) -> int:
        """What the program holds: blocks in the arenas and blocks mapped on their own."""
        info = self.mallinfo2()
        return int(info.uordblks + info.hblkhd)


def _glibc() -> _Glibc | None:
    """glibc's allocator calls, or None under another C library (which decides for itself) or without
    Linux's `/proc` to read the resident set from."""
    if not os.path.exists("/proc/self/statm"):
        return None
    try:
        libc = ctypes.CDLL(None)
        malloc_trim, mallinfo2 = libc.malloc_trim, libc.mallinfo2
    except AttributeError:
        return None
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    mallinfo2.argtypes, mallinfo2.restype = [], _MallInfo2
    return _Glibc(malloc_trim, mallinfo2)


_GLIBC = _glibc()
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def settle_heap() -> None:
    """Freeze what start-up allocated (modules, models, clients) out of every later collection.

    Without this each full collection walks again the objects that FastAPI, pydantic, protobuf and
    botocore leave behind, a cost that every request shares (docs/design.md).
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def release_freed_memory() -> None:
    """The memory freed so far handed back to the system now (the protobuf worker, after a large parse)."""
    if _GLIBC is not None:
        _GLIBC.malloc_trim(0)


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


class FreedMemory:
    """Resident memory that the allocator's blocks in use do not account for, against what it was after
    the last trim: memory freed but kept, whether the blocks in use shrank or the resident set grew."""

    def __init__(
        self,
        in_use: Callable[[], int],
        hand_back: Callable[[], object],
        resident: Callable[[], int] = resident_bytes,
    ) -> None:
        self._in_use = in_use
        self._hand_back = hand_back
        self._resident = resident
        self._kept_after_trim = self._kept()

    def _kept(self) -> int:
        return self._resident() - self._in_use()

    def worth_trimming(self) -> bool:
        return self._kept() - self._kept_after_trim >= TRIM_AFTER_BYTES

    def trim(self) -> None:
        self._hand_back()
        self._kept_after_trim = self._kept()


@contextlib.asynccontextmanager
async def handing_back_freed_memory(every: float = CHECK_SECONDS) -> AsyncIterator[None]:
    """While entered, freed memory is handed back once `TRIM_AFTER_BYTES` of it are kept (glibc only)."""
    if _GLIBC is None:
        yield
        return
    freed = FreedMemory(_GLIBC.bytes_in_use, release_freed_memory)

    async def watch() -> None:
        while True:
            await asyncio.sleep(every)
            if freed.worth_trimming():  # in a thread: glibc walks every free block of every arena
                await asyncio.to_thread(freed.trim)

    task = asyncio.create_task(watch(), name="hand-back-freed-memory")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
