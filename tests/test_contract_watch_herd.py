"""Herds of waiters, on every backend, over HTTP: each waiter whose state changes while it waits is answered
with the change, every round (a 304 where a change happened is a failure, never a flake); a herd on an
id nobody watches costs one read; and waiters whose clients hang up give their places back.

Each round writes as soon as every waiter is registered (the waiters gauge), so rounds take a fraction
of a second; the waits are long (30 s), so a lost wake-up shows as a 304 after them or a timeout.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from support.api import state_body, state_path
from support.herd import Answer, hang_up_after_waiting, until_waiters, wait_on
from support.metrics import sample_value
from support.services import ServiceFactory

ROUNDS = 20
WAITERS = 300
WAIT = 30
NEVER_POLLS = 60_000  # ms
READS = {"sqlite": ("sqlite", "get"), "moto": ("dynamodb", "GetItem"), "dynalite": ("dynamodb", "GetItem")}


async def point_reads(client: httpx.AsyncClient, backend: str) -> float:
    label, operation = READS[backend]
    text = (await client.get("/metrics")).text
    return sample_value(
        text, "statestore_backend_call_duration_seconds_count", backend=label, operation=operation
    )


async def herd_round(url: str, client: httpx.AsyncClient, ids: list[str]) -> list[Answer]:
    """WAITERS waiters spread over `ids`, all on version 1; once all wait, each id is written to 2."""
    await asyncio.gather(*(client.put(state_path(i), json=state_body(1)) for i in ids))
    herd = [asyncio.ensure_future(wait_on(url, ids[n % len(ids)], 1, WAIT)) for n in range(WAITERS)]
    await until_waiters(client, WAITERS)
    written = await asyncio.gather(*(client.put(state_path(i), json=state_body(2)) for i in ids))
    assert {response.status_code for response in written} == {200}
    return await asyncio.wait_for(asyncio.gather(*herd), WAIT / 2)


@pytest.mark.parametrize("ids", [1, 50])
async def test_every_waiter_of_a_herd_is_answered_with_the_write_every_round(
    ready_backend: str, start_service: ServiceFactory, ids: int
) -> None:
    """300 waiters on one id, or over 50 ids, written through their replica once they all wait: 20
    rounds, every waiter answered 200 with version 2."""
    with start_service(ready_backend, max_concurrent_requests=WAITERS + 64) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for _ in range(ROUNDS):
                round_ids = [f"herd-{uuid.uuid4().hex}" for _ in range(ids)]
                answers = await herd_round(url, client, round_ids)
                assert answers == [Answer(200, '"2"')] * WAITERS
                await until_waiters(client, 0)


async def test_a_herd_on_an_id_nobody_watches_costs_one_read(
    backend: str, ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    """300 waiters arriving on a new id, then a write: one read in all, the waiters woken by the write
    (the poller kept out). Before, on DynamoDB each waiter that arrived while the first read was in
    flight read for itself: 300 reads on moto and on dynalite."""
    settings = {"max_concurrent_requests": WAITERS + 64, "watch_poll_ms": NEVER_POLLS}
    with start_service(ready_backend, **settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(state_path(state_id), json=state_body(1))
            before = await point_reads(client, backend)
            herd = [asyncio.ensure_future(wait_on(url, state_id, 1, WAIT)) for _ in range(WAITERS)]
            await until_waiters(client, WAITERS)
            for _ in range(1000):  # the waiters count from their arrival, the read ends a little later
                if await point_reads(client, backend) > before:
                    break
                await asyncio.sleep(0.01)
            await client.put(state_path(state_id), json=state_body(2))
            answers = await asyncio.wait_for(asyncio.gather(*herd), WAIT / 2)
            reads = await point_reads(client, backend) - before
    assert reads == 1
    assert answers == [Answer(200, '"2"')] * WAITERS


async def test_waiters_that_hang_up_give_their_places_back_within_a_second(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    """1,000 waiters (the limit) whose clients hang up, then 1,000 new ones: none is refused."""
    limit = 1000
    with start_service(ready_backend, max_waiters=limit, max_concurrent_requests=limit + 64) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(state_path(state_id), json=state_body(1))
            hang_up = asyncio.Event()
            leaving = [
                asyncio.ensure_future(hang_up_after_waiting(url, state_id, 1, hang_up)) for _ in range(limit)
            ]
            await until_waiters(client, limit)
            refused = await client.get(
                state_path(state_id), params={"wait": 1}, headers={"If-None-Match": '"1"'}
            )
            hang_up.set()
            await asyncio.gather(*leaving)
            await until_waiters(client, 0, attempts=100)  # a second
            herd = [asyncio.ensure_future(wait_on(url, state_id, 1, WAIT)) for _ in range(limit)]
            await until_waiters(client, limit)
            await client.put(state_path(state_id), json=state_body(2))
            answers = await asyncio.wait_for(asyncio.gather(*herd), WAIT / 2)
    assert refused.status_code == 503
    assert answers == [Answer(200, '"2"')] * limit
