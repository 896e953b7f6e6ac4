"""Compare-and-set under contention, on every backend: no acknowledged update may be lost."""

from __future__ import annotations

import asyncio
import time

import httpx

from support.api import state_body, state_path

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


async def test_concurrent_compare_and_set_loses_no_update(service_url: str, state_id: str) -> None:
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=service_url, limits=limits, timeout=30) as client:
        assert (await client.put(state_path(state_id), json=state_body(0))).status_code == 200
        deadline = time.monotonic() + DEADLINE_SECONDS
        landed = await asyncio.gather(*(increment(client, state_id, n, deadline) for n in range(CLIENTS)))
        final = (await client.get(state_path(state_id))).json()["version_number"]
    assert landed == [INCREMENTS_PER_CLIENT] * CLIENTS
    assert final == str(sum(landed))
