"""The embedded store under crashes and sharing: `statestore serve` processes on one SQLite file."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import signal
from collections import Counter
from pathlib import Path

import httpx

from support.api import state_body, state_path
from support.processes import serving_sqlite

WRITERS = 64
ACKNOWLEDGED_BEFORE_KILL = 400
COUNTERS = 8
INCREMENTERS = 16
INCREMENTS_EACH = 8


def payload_of(version: int) -> bytes:
    return version.to_bytes(8, "big")


async def write_until_killed(url: str, acknowledged: dict[str, int], enough: asyncio.Event) -> None:
    """Each writer moves its own state forward one version at a time until the server dies."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def writer(key: str) -> None:
            for version in itertools.count(1):
                try:
                    response = await client.put(
                        state_path(key), json=state_body(version, payload_of(version))
                    )
                except httpx.TransportError:
                    return
                assert response.status_code == 200, response.text
                acknowledged[key] = version
                if sum(acknowledged.values()) >= ACKNOWLEDGED_BEFORE_KILL:
                    enough.set()

        await asyncio.gather(*(writer(f"crash-{number}") for number in range(WRITERS)))


async def test_kill_9_during_concurrent_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "states.db"
    acknowledged: dict[str, int] = {}
    with serving_sqlite(path) as (url, server):
        enough = asyncio.Event()
        writing = asyncio.create_task(write_until_killed(url, acknowledged, enough))
        await asyncio.wait_for(enough.wait(), 30)
        server.send_signal(signal.SIGKILL)
        await asyncio.wait_for(writing, 15)
    assert sum(acknowledged.values()) >= ACKNOWLEDGED_BEFORE_KILL
    with serving_sqlite(path) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for key, version in acknowledged.items():
                stored = (await client.get(state_path(key))).json()
                # The write in flight at the kill may have committed without its answer arriving.
                assert stored["version_number"] in (str(version), str(version + 1)), key
                assert base64.b64decode(stored["payload"]) == payload_of(int(stored["version_number"]))


async def increment(
    read_from: httpx.AsyncClient, write_to: httpx.AsyncClient, key: str, writer: int, statuses: Counter[int]
) -> None:
    """Compare-and-set the counter one version forward, reading on one server and writing on the other.

    The payload names the writer, so that a lost update shows in the payloads too; two writers racing with
    the same state and no Idempotency-Key are refused all the same (tests/test_contract_idempotency.py)."""
    while True:
        read = await read_from.get(state_path(key))
        statuses[read.status_code] += 1
        current = int(read.json()["version_number"])
        written = await write_to.put(
            state_path(key),
            json=state_body(current + 1, payload_of(writer)),
            headers={"If-Match": f'"{current}"'},
        )
        statuses[written.status_code] += 1
        if written.status_code == 200:
            seen = int((await read_from.get(state_path(key))).json()["version_number"])
            assert seen >= current + 1, "a write acknowledged by one process is not seen by the other"
            return
        assert written.status_code == 412, written.text


async def test_two_processes_on_one_file_give_consistent_answers(tmp_path: Path) -> None:
    path = tmp_path / "states.db"
    keys = [f"counter-{number}" for number in range(COUNTERS)]
    statuses: Counter[int] = Counter()
    with serving_sqlite(path) as (first_url, _), serving_sqlite(path) as (second_url, _):
        async with (
            httpx.AsyncClient(base_url=first_url, timeout=10) as first,
            httpx.AsyncClient(base_url=second_url, timeout=10) as second,
        ):
            for key in keys:
                assert (await first.put(state_path(key), json=state_body(0))).status_code == 200
            increments: Counter[str] = Counter()
            rng = random.Random(7)

            async def worker(number: int) -> None:
                pair = (first, second) if number % 2 else (second, first)
                for _ in range(INCREMENTS_EACH):
                    key = rng.choice(keys)
                    await increment(*pair, key, number, statuses)
                    increments[key] += 1

            await asyncio.wait_for(asyncio.gather(*(worker(number) for number in range(INCREMENTERS))), 60)
            for key in keys:
                for client in (first, second):
                    stored = (await client.get(state_path(key))).json()["version_number"]
                    assert stored == str(increments[key]), f"{key}: lost updates"
    assert set(statuses) <= {200, 412}, statuses
