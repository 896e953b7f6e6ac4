"""Compare-and-set under contention: no acknowledged update may be lost.

On every backend through one service; on dynalite also through two service processes at once, with
nothing serialising the requests, as two replicas behind a load balancer would send them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack

import httpx
import pytest

from scripts.servers import serving_process
from support.api import state_body, state_path
from support.services import TABLE

CLIENTS = 8
INCREMENTS_PER_CLIENT = 8
DEADLINE_SECONDS = 60


async def increment(client: httpx.AsyncClient, persistence_id: str, worker: int, deadline: float) -> int:
    """Add versions by If-Match on the version just read until enough land; returns how many did."""
    landed = 0
    while landed < INCREMENTS_PER_CLIENT and time.monotonic() < deadline:
        current = int((await client.get(state_path(persistence_id))).json()["version_number"])
        # Each writer's state differs, so two writers can never both succeed by writing "the same" state.
        body = state_body(current + 1, f"worker {worker} step {landed}".encode())
        response = await client.put(
            state_path(persistence_id), json=body, headers={"If-Match": f'"{current}"'}
        )
        assert response.status_code in (200, 412), response.text
        landed += response.status_code == 200
    return landed


async def assert_no_update_lost(service_urls: Sequence[str], persistence_id: str) -> None:
    """CLIENTS workers increment at once, worker n through service n modulo the number of services."""
    limits = httpx.Limits(max_connections=CLIENTS)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, limits=limits, timeout=30))
            for url in service_urls
        ]
        first = clients[0]
        assert (await first.put(state_path(persistence_id), json=state_body(0))).status_code == 200
        deadline = time.monotonic() + DEADLINE_SECONDS
        landed = await asyncio.gather(
            *(increment(clients[n % len(clients)], persistence_id, n, deadline) for n in range(CLIENTS))
        )
        final = int((await first.get(state_path(persistence_id))).json()["version_number"])
    assert landed == [INCREMENTS_PER_CLIENT] * CLIENTS
    assert final == sum(landed)


async def test_concurrent_compare_and_set_loses_no_update(service_url: str, state_id: str) -> None:
    await assert_no_update_lost([service_url], state_id)


@pytest.fixture(scope="module")
def two_replicas(dynalite_endpoint: str) -> Iterator[list[str]]:
    """Two `statestore serve` processes on one dynalite table."""
    env = {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_ENDPOINT_URL": dynalite_endpoint,
        "STATESTORE_DYNAMODB_TABLE": TABLE,
        "STATESTORE_LOG_LEVEL": "warning",
    }
    with ExitStack() as stack:
        yield [stack.enter_context(serving_process(env=env))[0] for _ in range(2)]


async def test_two_replicas_on_dynalite_lose_no_update(two_replicas: list[str], state_id: str) -> None:
    await assert_no_update_lost(two_replicas, state_id)
