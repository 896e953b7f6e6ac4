"""A service whose request slots are all held, for the tests of its concurrency limit: its writes to the
SQLite file wait on a lock the test takes, so each write holds a slot until the lock goes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.api import state_body, state_path
from support.services import ServiceFactory

HELD_WRITES = 2
READ_ID = "first"  # stored before the slots are held: what `refused_read` asks for


@dataclass
class FullService:
    client: httpx.AsyncClient
    held: list[asyncio.Task[httpx.Response]]
    _blocker: sqlite3.Connection

    async def refused_read(self) -> httpx.Response:
        """A read sent until it is refused once the held writes fill every slot (a read before they arrive
        is served); the refusal comes while they are still held, not queued behind them."""
        while (response := await self.client.get(state_path(READ_ID))).status_code == 200:
            assert not any(task.done() for task in self.held), "the writes finished before a read was refused"
            await asyncio.sleep(0.05)
        assert not any(task.done() for task in self.held), "the read was answered only once a slot was free"
        return response

    async def release(self) -> None:
        """Lets the held writes go on, and waits for their answers."""
        if self._blocker.in_transaction:
            self._blocker.execute("ROLLBACK")
        await asyncio.gather(*self.held, return_exceptions=True)


@asynccontextmanager
async def full_service(start_service: ServiceFactory, directory: Path) -> AsyncIterator[FullService]:
    """A SQLite service of HELD_WRITES slots, each held by a write (`held-0`, `held-1`, …), and a client."""
    path = directory / "states.db"
    with start_service("sqlite", sqlite_path=path, max_concurrent_requests=HELD_WRITES) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            assert (await client.put(state_path(READ_ID), json=state_body(1))).status_code == 200
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            held = [
                asyncio.create_task(client.put(state_path(f"held-{number}"), json=state_body(1)))
                for number in range(HELD_WRITES)
            ]
            service = FullService(client, held, blocker)
            try:
                yield service
            finally:
                await service.release()
                blocker.close()
