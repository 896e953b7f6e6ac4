"""v2's bounded answers: a batchGet carries at most 16 MiB of states, the rest listed as `unprocessed`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.states.answers import MAX_ANSWER_BYTES
from support.api import batch_get, state_body, state_path
from support.services import ServiceFactory, own_table

TABLE = "bounded_answers"
LARGE_PAYLOAD_BYTES = 380_000  # under moto's item limit, which is below DynamoDB's
LARGE_STATES = 50  # 19 MB of states: more than one answer holds


@pytest.fixture(scope="module")
def service_url(backend: str, start_service: ServiceFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    with start_service(backend, **own_table(backend, request, TABLE)) as url:
        yield url


async def store_large_states(client: httpx.AsyncClient, persistence_ids: list[str]) -> None:
    for start in range(0, len(persistence_ids), 8):
        written = await asyncio.gather(
            *(
                client.put(state_path(i), json=state_body(1, i.encode().ljust(LARGE_PAYLOAD_BYTES, b"x")))
                for i in persistence_ids[start : start + 8]
            )
        )
        assert [response.status_code for response in written] == [200] * len(written)


async def test_an_answer_over_16_mib_leaves_the_rest_unprocessed_and_following_them_reads_all(
    client: httpx.AsyncClient, state_id: str
) -> None:
    stored = [f"{state_id}/{n}" for n in range(LARGE_STATES)]
    missing = [f"{state_id}/missing/{n}" for n in range(5)]
    await store_large_states(client, stored)
    asked = [*stored, *missing]
    answers: list[dict[str, Any]] = []
    while asked and len(answers) < 100:
        response = await batch_get(client, asked)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        asked = answers[-1]["unprocessed"]
    assert asked == []
    first = answers[0]
    assert first["unprocessed"], "19 MB of states cannot all fit in one answer"
    for answer in answers:
        assert sum(len(state["payload"]) * 3 // 4 for state in answer["states"]) <= MAX_ANSWER_BYTES
    read = [state["persistence_id"] for answer in answers for state in answer["states"]]
    assert sorted(read) == sorted(stored)
    assert [i for answer in answers for i in answer["missing"]] == missing


async def test_each_answer_keeps_the_order_of_the_request(client: httpx.AsyncClient, state_id: str) -> None:
    stored = [f"{state_id}/{n}" for n in range(LARGE_STATES)]
    await store_large_states(client, stored)
    asked = stored[::-1]
    response = await batch_get(client, asked)
    assert response.status_code == 200, response.text
    body = response.json()
    read = [state["persistence_id"] for state in body["states"]]
    assert read == [i for i in asked if i in read]
    assert body["unprocessed"] == [i for i in asked if i not in read]
