"""The serving app freezes its start-up heap out of garbage collection and hands freed memory back to the
system while it serves; `create_app` alone does neither."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.heap import TRIM_AFTER_BYTES, YOUNG_GENERATION_THRESHOLD, FreedMemory, _glibc
from app.main import create_app
from app.settings import Settings
from scripts.servers import REPO

MiB = 2**20
glibc = _glibc()
needs_glibc = pytest.mark.skipif(glibc is None, reason="freed memory is handed back under glibc only")


@pytest.fixture
def untouched_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def handing_back_task() -> bool:
    return any(task.get_name() == "hand-back-freed-memory" for task in asyncio.all_tasks())


@pytest.mark.usefixtures("untouched_collector")
@pytest.mark.parametrize("settle", [True, False])
async def test_the_heap_is_settled_once_the_serving_app_has_started(tmp_path: Path, settle: bool) -> None:
    app = create_app(Settings(sqlite_path=tmp_path / "s.db"), settle_heap_when_ready=settle)
    before = gc.get_threshold()[0]
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is settle
        assert gc.get_threshold()[0] == (YOUNG_GENERATION_THRESHOLD if settle else before)
        assert handing_back_task() is (settle and glibc is not None)
    assert not handing_back_task()


@dataclass
class Figures:
    resident: int = 300 * MiB
    in_use: int = 200 * MiB

    def trim(self) -> None:
        self.resident = self.in_use + 100 * MiB


@pytest.mark.parametrize(
    ("resident_change", "in_use_change", "worth_it"),
    [
        (TRIM_AFTER_BYTES, 0, True),  # grown, then freed again: kept by the allocator
        (TRIM_AFTER_BYTES - MiB, 0, False),
        (TRIM_AFTER_BYTES, TRIM_AFTER_BYTES, False),  # grown and still in use
        (0, -TRIM_AFTER_BYTES, True),  # freed, still resident
        (-TRIM_AFTER_BYTES, -TRIM_AFTER_BYTES, False),  # freed and handed back already
    ],
)
def test_memory_is_worth_trimming_once_enough_is_resident_but_not_in_use(
    resident_change: int, in_use_change: int, worth_it: bool
) -> None:
    figures = Figures()
    freed = FreedMemory(lambda: figures.in_use, figures.trim, lambda: figures.resident)
    assert not freed.worth_trimming()
    figures.resident += resident_change
    figures.in_use += in_use_change
    assert freed.worth_trimming() is worth_it
    freed.trim()
    assert not freed.worth_trimming()  # counted from what is kept after the trim, not from the start


FRAGMENTED_HEAP = """
import asyncio, os
from app.heap import handing_back_freed_memory, resident_bytes

async def main() -> None:
    async with handing_back_freed_memory(every=0.01):
        mapped = [bytes(400_000) for _ in range(4)]
        del mapped  # mapped blocks freed: glibc raises its mmap threshold to their size
        states = [os.urandom(400_000) for _ in range(500)]  # from the heap now
        kept = states[::20]  # one in twenty still held: the heap's top cannot shrink
        del states
        freed = resident_bytes()
        await asyncio.sleep(0.5)
        print(freed, resident_bytes(), len(kept))

asyncio.run(main())
"""


@needs_glibc
def test_freed_memory_the_heap_keeps_is_handed_back_while_serving() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    freed, after, _ = map(int, ran.stdout.split())
    assert freed - after > 150 * MiB, (freed, after)
