"""A service's request slots held full, for the tests of its concurrency limit: its writes to the SQLite
file wait on a lock the test takes, so each write holds a slot until the lock goes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from support.api import state_body, state_path

HELD_WRITES = 2
READ_ID = "first"  # what `refused_while_held` reads: written by the test before the slots are held


@asynccontextmanager
async def held_writes(
    client: httpx.AsyncClient, sqlite_path: Path
) -> AsyncIterator[list[asyncio.Task[httpx.Response]]]:
    """HELD_WRITES writes (`held-0`, `held-1`, …) waiting for the lock, released on exit, when they finish."""
    blocker = sqlite3.connect(sqlite_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    held = [
        asyncio.create_task(client.put(state_path(f"held-{number}"), json=state_body(1)))
        for number in range(HELD_WRITES)
    ]
    try:
        yield held
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.gather(*held, return_exceptions=True)


async def refused_while_held(
    client: httpx.AsyncClient, held: list[asyncio.Task[httpx.Response]]
) -> httpx.Response:
    """A read sent until it is refused once the held writes fill every slot (a read before they arrive is
    served); the refusal comes while they are still held, not queued behind them."""
    while (response := await client.get(state_path(READ_ID))).status_code == 200:
        assert not any(task.done() for task in held), "the held writes finished before any read was refused"
        await asyncio.sleep(0.05)
    assert not any(task.done() for task in held), "the read was answered only once a slot was free"
    return response
